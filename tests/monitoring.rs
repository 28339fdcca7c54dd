//! The dashboard and alarms of template.yaml read metrics that exist: every custom metric they name
//! is in `plan::metrics::CATALOG`, in the namespace the functions publish to, with exactly the
//! dimension set the code publishes (`function` + `Metric::dimensions`) and a statistic that fits
//! its kind; every AWS metric is one the service publishes, with its dimension pointing at a
//! resource of this template of the right type (the HTTP API, a function, the mapping's function,
//! a queue) that exists whenever the widget or alarm does. Every function is on the dashboard and
//! under an errors and a throttles alarm. The local Grafana dashboard reads catalog metrics with
//! catalog labels and shows the CloudWatch panels it can, docker compose mounts those files and
//! scrapes plan-local's default metrics address, and the README's metric table is the catalog.

use std::collections::{BTreeMap, BTreeSet};

use plan::metrics::{self, FUNCTION_DIMENSION, Kind, Metric};
use plan_e2e::sam::{self, untag};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// The condition under which the dashboard's second part (search and indexing) exists.
const INDEXING: &str = "IndexingEnabled";

/// AWS metrics the dashboard and alarms may read: namespace, metric, its one dimension, what that
/// dimension names, and the statistics that make sense for it.
struct AwsMetric {
    namespace: &'static str,
    names: &'static [&'static str],
    dimension: &'static str,
    target: Target,
    stats: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `ApiId`: the HTTP API (`!Ref` gives its id).
    HttpApi,
    /// `FunctionName`: a function (`!Ref` gives its name).
    Function,
    /// `FunctionName` of a function fed by an MSK event source mapping (`OffsetLag`).
    MskMappedFunction,
    /// `QueueName`: a queue (`!GetAtt Queue.QueueName`).
    QueueName,
}

const PERCENTILES: &[&str] = &["p50", "p90", "p95", "p99", "p99.9", "Average", "Maximum"];
const AWS_METRICS: &[AwsMetric] = &[
    // HTTP API metrics (API Gateway developer guide, "CloudWatch metrics for HTTP APIs"): 4xx, 5xx,
    // Count, Latency, IntegrationLatency by ApiId.
    AwsMetric {
        namespace: "AWS/ApiGateway",
        names: &["Count", "4xx", "5xx"],
        dimension: "ApiId",
        target: Target::HttpApi,
        stats: &["Sum"],
    },
    AwsMetric {
        namespace: "AWS/ApiGateway",
        names: &["Latency", "IntegrationLatency"],
        dimension: "ApiId",
        target: Target::HttpApi,
        stats: PERCENTILES,
    },
    AwsMetric {
        namespace: "AWS/Lambda",
        names: &["Errors", "Throttles"],
        dimension: "FunctionName",
        target: Target::Function,
        stats: &["Sum"],
    },
    AwsMetric { namespace: "AWS/Lambda", names: &["Duration"], dimension: "FunctionName", target: Target::Function, stats: PERCENTILES },
    AwsMetric {
        namespace: "AWS/Lambda",
        names: &["ConcurrentExecutions"],
        dimension: "FunctionName",
        target: Target::Function,
        stats: &["Maximum", "Average"],
    },
    AwsMetric {
        namespace: "AWS/Lambda",
        names: &["OffsetLag"],
        dimension: "FunctionName",
        target: Target::MskMappedFunction,
        stats: &["Maximum", "Average"],
    },
    AwsMetric {
        namespace: "AWS/SQS",
        names: &["ApproximateNumberOfMessagesVisible"],
        dimension: "QueueName",
        target: Target::QueueName,
        stats: &["Maximum"],
    },
];

/// One metric read by a dashboard widget or an alarm.
#[derive(Debug, Clone)]
struct MetricUse {
    /// Widget title or alarm id, for messages.
    place: String,
    namespace: String,
    name: String,
    /// Dimension names and their values (None: a SEARCH schema dimension, every value).
    dimensions: Vec<(String, Option<String>)>,
    stat: String,
    search: bool,
}

/// Renders a template value the way the tests compare it: `!Ref X` and `${X}` become `@X@`
/// (`${X.Attr}` and `!GetAtt X.Attr` become `@X.Attr@`), so a reference can be told apart from a
/// literal and followed to its resource.
fn render(value: &Yaml) -> String {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" || tagged.tag == "GetAtt" => {
            format!("@{}@", untag(&tagged.value).as_str().unwrap_or_else(|| panic!("!{}: a scalar", tagged.tag)))
        }
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => {
            substitute(tagged.value.as_str().unwrap_or_else(|| panic!("!Sub with a list is not used here: {value:?}")))
        }
        Yaml::String(text) => text.clone(),
        Yaml::Number(number) => number.to_string(),
        other => panic!("cannot render {other:?}"),
    }
}

fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).unwrap_or_else(|| panic!("unclosed ${{ in {text}"));
        out.push('@');
        out.push_str(&rest[start + 2..end]);
        out.push('@');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `@X@` -> `X`; `@X.Attr@` -> (`X`, `Attr`).
fn reference(value: &str) -> Option<(&str, Option<&str>)> {
    let inner = value.strip_prefix('@')?.strip_suffix('@')?;
    if inner.contains('@') {
        return None;
    }
    Some(match inner.split_once('.') {
        Some((resource, attribute)) => (resource, Some(attribute)),
        None => (inner, None),
    })
}

struct Template {
    yaml: Yaml,
    /// The namespace every function publishes to (Globals METRICS_NAMESPACE), rendered.
    namespace: String,
}

impl Template {
    fn load() -> Self {
        let yaml = sam::template();
        let namespace = yaml["Globals"]["Function"]["Environment"]["Variables"]
            .get("METRICS_NAMESPACE")
            .map(render)
            .expect("Globals pass METRICS_NAMESPACE to every function");
        Template { yaml, namespace }
    }

    fn resources(&self) -> &serde_norway::Mapping {
        self.yaml["Resources"].as_mapping().expect("Resources")
    }

    fn resource(&self, id: &str) -> Option<&Yaml> {
        self.resources().get(id)
    }

    fn resource_type(&self, id: &str) -> Option<&str> {
        self.resource(id).and_then(|r| untag(&r["Type"]).as_str())
    }

    fn condition_of(&self, id: &str) -> Option<&str> {
        self.resource(id).and_then(|r| r.get("Condition")).and_then(|c| untag(c).as_str())
    }

    /// Whether condition `a` being true makes `b` true (equal, or `b` one of `a`'s `!And` terms).
    fn implies(&self, a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let definition = &self.yaml["Conditions"][a];
        match definition {
            Yaml::Tagged(tagged) if tagged.tag == "And" => tagged.value.as_sequence().into_iter().flatten().any(|term| match term {
                Yaml::Tagged(t) if t.tag == "Condition" => t.value.as_str().is_some_and(|c| self.implies(c, b)),
                _ => false,
            }),
            _ => false,
        }
    }

    /// The crates the template's functions build.
    fn function_binaries(&self) -> BTreeSet<String> {
        sam::functions(&self.yaml).into_iter().filter_map(|f| f.binary).collect()
    }

    fn has_msk_event(&self, id: &str) -> bool {
        self.resource(id)
            .and_then(|r| r["Properties"]["Events"].as_mapping())
            .into_iter()
            .flatten()
            .any(|(_, event)| untag(&event["Type"]).as_str() == Some("MSK"))
    }

    /// The dashboard body as CloudWatch receives it, with the indexing part in or out, and the
    /// condition each widget's references must hold under.
    fn dashboards(&self) -> Vec<(Option<&'static str>, Json)> {
        let body = &self.resource("Dashboard").expect("a Dashboard resource")["Properties"]["DashboardBody"];
        let Yaml::Tagged(join) = body else { panic!("DashboardBody is a !Join") };
        assert!(join.tag == "Join", "DashboardBody is a !Join");
        let parts = join.value.as_sequence().expect("!Join [delimiter, parts]");
        assert_eq!(parts[0].as_str(), Some(""), "joined without a delimiter");
        [true, false]
            .into_iter()
            .map(|indexing| {
                let mut text = String::new();
                for part in parts[1].as_sequence().expect("parts") {
                    match part {
                        Yaml::Tagged(tagged) if tagged.tag == "If" => {
                            let branches = tagged.value.as_sequence().expect("!If [condition, then, else]");
                            assert_eq!(branches[0].as_str(), Some(INDEXING), "the dashboard's optional part follows {INDEXING}");
                            text.push_str(&render(&branches[if indexing { 1 } else { 2 }]));
                        }
                        other => text.push_str(&render(other)),
                    }
                }
                let json: Json =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard body (indexing={indexing}) is not JSON: {e}\n{text}"));
                (indexing.then_some(INDEXING), json)
            })
            .collect()
    }

    fn alarms(&self) -> Vec<(String, &Yaml)> {
        self.resources()
            .iter()
            .filter(|(_, r)| untag(&r["Type"]).as_str() == Some("AWS::CloudWatch::Alarm"))
            .map(|(id, r)| (id.as_str().unwrap().to_owned(), r))
            .collect()
    }
}

/// The widgets of a dashboard body that graph metrics, with their titles.
fn metric_widgets(body: &Json) -> Vec<&Json> {
    body["widgets"].as_array().expect("widgets").iter().filter(|w| w["type"] == "metric").collect()
}

fn titles(body: &Json) -> BTreeSet<String> {
    metric_widgets(body).iter().map(|w| w["properties"]["title"].as_str().expect("every graph has a title").to_owned()).collect()
}

/// Parses `SEARCH('{Namespace,dim,...} MetricName="m" dim="v"', 'Stat', period)` calls.
fn searches(expression: &str, place: &str) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    for piece in expression.split("SEARCH(").skip(1) {
        let query = piece.strip_prefix('\'').and_then(|p| p.split_once('\'')).unwrap_or_else(|| panic!("{place}: SEARCH('...')"));
        let (query, after) = query;
        let stat = after.split('\'').nth(1).unwrap_or_else(|| panic!("{place}: SEARCH(..., 'Stat')"));
        let schema = query.trim().strip_prefix('{').and_then(|q| q.split_once('}')).unwrap_or_else(|| panic!("{place}: a {{schema}}"));
        let (schema, terms) = schema;
        let mut parts = schema.split(',').map(|p| p.trim().trim_matches('"').to_owned());
        let namespace = parts.next().unwrap();
        let mut dimensions: Vec<(String, Option<String>)> = parts.map(|d| (d, None)).collect();
        let mut name = None;
        for term in terms.split_whitespace() {
            let (key, value) = term.split_once('=').unwrap_or_else(|| panic!("{place}: only key=\"value\" terms: {term}"));
            let value = value.trim_matches('"').to_owned();
            if key == "MetricName" {
                name = Some(value);
            } else {
                let slot = dimensions.iter_mut().find(|(d, _)| d == key);
                let slot = slot.unwrap_or_else(|| panic!("{place}: {key} filters on a dimension outside the schema"));
                slot.1 = Some(value);
            }
        }
        uses.push(MetricUse {
            place: place.to_owned(),
            namespace,
            name: name.unwrap_or_else(|| panic!("{place}: SEARCH names its MetricName exactly")),
            dimensions,
            stat: stat.to_owned(),
            search: true,
        });
    }
    uses
}

/// Lower-case identifiers of a metric math expression (outside quotes): the ids it reads.
fn expression_ids(expression: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut quoted = false;
    let mut word = String::new();
    for c in expression.chars().chain(std::iter::once(' ')) {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
        } else {
            if word.starts_with(|c: char| c.is_ascii_lowercase()) {
                ids.insert(word.clone());
            }
            word.clear();
        }
    }
    ids
}

/// Every metric a dashboard body reads.
fn dashboard_uses(body: &Json) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    for widget in metric_widgets(body) {
        let properties = &widget["properties"];
        let title = properties["title"].as_str().unwrap().to_owned();
        let rows = properties["metrics"].as_array().unwrap_or_else(|| panic!("{title}: metrics"));
        let mut ids = BTreeSet::new();
        let mut read = BTreeSet::new();
        for row in rows {
            let row = row.as_array().unwrap_or_else(|| panic!("{title}: each metric is an array"));
            let options = row.last().filter(|o| o.is_object());
            if let Some(id) = options.and_then(|o| o["id"].as_str()) {
                assert!(ids.insert(id.to_owned()), "{title}: id {id} twice");
            }
            if let Some(expression) = row[0].get("expression").and_then(Json::as_str) {
                assert_eq!(row.len(), 1, "{title}: an expression row holds only its options");
                uses.extend(searches(expression, &title));
                read.extend(expression_ids(expression));
                continue;
            }
            let strings: Vec<&str> = row.iter().filter_map(Json::as_str).collect();
            assert!(!strings.contains(&"..."), "{title}: spell every metric out (no \"...\" shorthand)");
            assert!(strings.len() >= 2 && strings.len().is_multiple_of(2), "{title}: [namespace, name, dimension, value, ...]: {row:?}");
            let stat = options.and_then(|o| o["stat"].as_str()).or(properties["stat"].as_str());
            uses.push(MetricUse {
                place: title.clone(),
                namespace: strings[0].to_owned(),
                name: strings[1].to_owned(),
                dimensions: strings[2..].chunks(2).map(|p| (p[0].to_owned(), Some(p[1].to_owned()))).collect(),
                stat: stat.unwrap_or_else(|| panic!("{title}: {} has no stat", strings[1])).to_owned(),
                search: false,
            });
        }
        for id in &read {
            assert!(ids.contains(id), "{title}: the expression reads {id}, which no metric of the widget is");
        }
    }
    uses
}

/// Every metric an alarm reads, after checking the alarm's own shape.
fn alarm_uses(template: &Template, id: &str, alarm: &Yaml) -> Vec<MetricUse> {
    let properties = &alarm["Properties"];
    for actions in ["AlarmActions", "OKActions"] {
        let targets: Vec<String> = properties[actions].as_sequence().map(|a| a.iter().map(render).collect()).unwrap_or_default();
        assert_eq!(targets, vec!["@AlarmTopic@".to_owned()], "{id}: {actions} notify the alarm topic");
    }
    if let Some(threshold) = properties.get("Threshold") {
        let rendered = render(threshold);
        if let Some((parameter, None)) = reference(&rendered) {
            assert!(template.yaml["Parameters"].get(parameter).is_some(), "{id}: threshold {parameter} is a parameter");
        } else {
            assert!(rendered.parse::<f64>().is_ok(), "{id}: threshold {rendered} is a number or a parameter");
        }
    }
    let dimensions = |metric: &Yaml| -> Vec<(String, Option<String>)> {
        metric["Dimensions"].as_sequence().into_iter().flatten().map(|d| (render(&d["Name"]), Some(render(&d["Value"])))).collect()
    };
    if let Some(queries) = properties.get("Metrics").and_then(Yaml::as_sequence) {
        let stats: Vec<&Yaml> = queries.iter().filter(|q| q.get("MetricStat").is_some()).collect();
        assert!(stats.len() <= 10, "{id}: an alarm's metric math reads at most 10 metrics ({})", stats.len());
        let ids: BTreeSet<String> = queries.iter().map(|q| render(&q["Id"])).collect();
        let returned = queries.iter().filter(|q| q.get("ReturnData").and_then(Yaml::as_bool) != Some(false)).count();
        assert_eq!(returned, 1, "{id}: exactly one query returns the alarm's data");
        for query in queries.iter().filter(|q| q.get("Expression").is_some()) {
            let expression = render(&query["Expression"]);
            assert!(!expression.contains("SEARCH"), "{id}: alarms cannot use SEARCH");
            for read in expression_ids(&expression) {
                assert!(ids.contains(&read), "{id}: the expression reads {read}, which is no query of the alarm");
            }
        }
        stats
            .into_iter()
            .map(|q| {
                let stat = &q["MetricStat"];
                MetricUse {
                    place: id.to_owned(),
                    namespace: render(&stat["Metric"]["Namespace"]),
                    name: render(&stat["Metric"]["MetricName"]),
                    dimensions: dimensions(&stat["Metric"]),
                    stat: render(&stat["Stat"]),
                    search: false,
                }
            })
            .collect()
    } else {
        let stat = properties.get("ExtendedStatistic").or(properties.get("Statistic")).unwrap_or_else(|| panic!("{id}: a statistic"));
        vec![MetricUse {
            place: id.to_owned(),
            namespace: render(&properties["Namespace"]),
            name: render(&properties["MetricName"]),
            dimensions: dimensions(properties),
            stat: render(stat),
            search: false,
        }]
    }
}

fn is_percentile(stat: &str) -> bool {
    stat.strip_prefix('p').is_some_and(|p| p.parse::<f64>().is_ok_and(|p| p > 0.0 && p < 100.0))
}

/// A custom metric use: in the catalog, the code's dimension set, a statistic for its kind, and
/// values the code can publish.
fn check_custom(template: &Template, metric_use: &MetricUse) -> &'static Metric {
    let place = &metric_use.place;
    let metric = metrics::find(&metric_use.name).unwrap_or_else(|| panic!("{place}: {} is not in plan::metrics::CATALOG", metric_use.name));
    let read: BTreeSet<&str> = metric_use.dimensions.iter().map(|(d, _)| d.as_str()).collect();
    let published: BTreeSet<&str> = std::iter::once(FUNCTION_DIMENSION).chain(metric.dimensions.iter().copied()).collect();
    assert_eq!(read, published, "{place}: {} is published with exactly the dimensions [function] + {:?}", metric.name, metric.dimensions);
    assert_eq!(metric_use.dimensions.len(), read.len(), "{place}: a dimension named twice");
    match metric.kind {
        Kind::Counter => assert_eq!(metric_use.stat, "Sum", "{place}: {} is a counter: Sum", metric.name),
        Kind::Histogram => {
            assert!(
                is_percentile(&metric_use.stat) || metric_use.stat == "Average",
                "{place}: {} is a histogram: pNN or Average",
                metric.name
            )
        }
    }
    for (dimension, value) in &metric_use.dimensions {
        let Some(value) = value else { continue };
        if dimension == FUNCTION_DIMENSION {
            assert!(template.function_binaries().contains(value), "{place}: function={value} is no function of the template");
        } else {
            // Each label takes values from a closed set the catalog lists.
            let allowed = metrics::allowed_values(dimension).unwrap_or_else(|| panic!("{place}: {dimension} has no closed set of values"));
            assert!(allowed.contains(&value.as_str()), "{place}: {}{{{dimension}={value}}}: not one of {allowed:?}", metric.name);
        }
    }
    assert!(!metric_use.search || metric_use.dimensions.iter().any(|(_, v)| v.is_none()), "{place}: SEARCH over nothing");
    metric
}

/// An AWS metric use: a metric the service publishes, its dimension pointing at a resource of the
/// right type that exists whenever the widget or alarm does.
fn check_aws(template: &Template, metric_use: &MetricUse, condition: Option<&str>) -> String {
    let place = &metric_use.place;
    assert!(!metric_use.search, "{place}: AWS metrics are named explicitly, each by its resource");
    let known = AWS_METRICS
        .iter()
        .find(|m| m.namespace == metric_use.namespace && m.names.contains(&metric_use.name.as_str()))
        .unwrap_or_else(|| panic!("{place}: {}/{} is not an AWS metric this test knows", metric_use.namespace, metric_use.name));
    assert!(
        known.stats.contains(&metric_use.stat.as_str()),
        "{place}: {} with {}: expected one of {:?}",
        metric_use.name,
        metric_use.stat,
        known.stats
    );
    let [(dimension, Some(value))] = metric_use.dimensions.as_slice() else {
        panic!("{place}: {} takes exactly the dimension {}: {:?}", metric_use.name, known.dimension, metric_use.dimensions)
    };
    assert_eq!(dimension, known.dimension, "{place}: {}", metric_use.name);
    let (resource, attribute) =
        reference(value).unwrap_or_else(|| panic!("{place}: {dimension}={value} must reference a template resource"));
    let resource_type = template.resource_type(resource).unwrap_or_else(|| panic!("{place}: {resource} is no resource of the template"));
    let (wanted_type, wanted_attribute) = match known.target {
        Target::HttpApi => ("AWS::Serverless::HttpApi", None),
        Target::Function | Target::MskMappedFunction => ("AWS::Serverless::Function", None),
        Target::QueueName => ("AWS::SQS::Queue", Some("QueueName")),
    };
    assert_eq!((resource_type, attribute), (wanted_type, wanted_attribute), "{place}: {dimension} names {value}");
    if known.target == Target::MskMappedFunction {
        assert!(
            template.has_msk_event(resource),
            "{place}: {} is read for {resource}, which has no MSK event source mapping",
            metric_use.name
        );
    }
    if let Some(needed) = template.condition_of(resource) {
        assert!(
            condition.is_some_and(|c| template.implies(c, needed)),
            "{place}: {resource} exists only under {needed}, the widget or alarm under {condition:?}"
        );
    }
    resource.to_owned()
}

#[test]
fn the_dashboard_reads_catalog_metrics_with_their_dimensions_and_real_resources() {
    let template = Template::load();
    assert_eq!(
        template.yaml["Outputs"]["DashboardUrl"].get("Value").map(render).map(|url| url.ends_with("#dashboards/dashboard/@Dashboard@")),
        Some(true),
        "the dashboard's URL is an output"
    );
    let mut custom_seen = BTreeSet::new();
    for (condition, body) in template.dashboards() {
        let uses = dashboard_uses(&body);
        assert!(!uses.is_empty());
        let mut lambda: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for metric_use in &uses {
            if metric_use.namespace == template.namespace {
                custom_seen.insert(check_custom(&template, metric_use).name);
            } else {
                assert!(
                    metric_use.namespace.starts_with("AWS/"),
                    "{}: namespace {} is neither ours nor AWS",
                    metric_use.place,
                    metric_use.namespace
                );
                let resource = check_aws(&template, metric_use, condition);
                if metric_use.namespace == "AWS/Lambda" {
                    lambda.entry(metric_use.name.clone()).or_default().insert(resource);
                }
            }
        }
        // Per function: duration, errors, throttles and concurrency of every function that exists.
        let functions: BTreeSet<String> = sam::functions(&template.yaml)
            .into_iter()
            .map(|f| f.logical_id)
            .filter(|id| template.condition_of(id).is_none_or(|needed| condition.is_some_and(|c| template.implies(c, needed))))
            .collect();
        for name in ["Duration", "Errors", "Throttles", "ConcurrentExecutions"] {
            assert_eq!(lambda.get(name), Some(&functions), "{name} of every function (indexing part {condition:?})");
        }
    }
    for wanted in
        ["lambda_cold_starts_total", "indexer_lag_seconds", "store_reads_total", "store_operation_duration_seconds", "sweep_failures_total"]
    {
        assert!(custom_seen.contains(wanted), "the dashboard shows {wanted} (issue 13)");
    }
}

#[test]
fn the_alarms_read_catalog_metrics_and_real_resources_and_cover_every_function() {
    let template = Template::load();
    let mut errors = BTreeSet::new();
    let mut throttles = BTreeSet::new();
    let mut custom = BTreeSet::new();
    let alarms = template.alarms();
    assert!(!alarms.is_empty());
    for (id, alarm) in &alarms {
        let condition = alarm.get("Condition").and_then(|c| untag(c).as_str());
        for metric_use in alarm_uses(&template, id, alarm) {
            if metric_use.namespace == template.namespace {
                let metric = check_custom(&template, &metric_use);
                custom.insert(metric.name);
                // A function's metric is only published where the function exists.
                for (dimension, value) in &metric_use.dimensions {
                    if dimension == FUNCTION_DIMENSION {
                        let function = sam::function_for_binary(value.as_deref().unwrap()).unwrap();
                        if let Some(needed) = template.condition_of(&function.logical_id) {
                            assert!(
                                condition.is_some_and(|c| template.implies(c, needed)),
                                "{id}: under {needed}, like {}",
                                function.logical_id
                            );
                        }
                    }
                }
            } else {
                let resource = check_aws(&template, &metric_use, condition);
                match metric_use.name.as_str() {
                    "Errors" => errors.insert(resource),
                    "Throttles" => throttles.insert(resource),
                    _ => false,
                };
            }
        }
    }
    let functions: BTreeSet<String> = sam::functions(&template.yaml).into_iter().map(|f| f.logical_id).collect();
    assert_eq!(errors, functions, "every function is under an errors alarm");
    assert_eq!(throttles, functions, "every function is under a throttles alarm");
    assert!(custom.contains("sweep_failures_total"), "sweep failures alarm (issue 13)");

    // The topic, and its email subscription only when an address is given.
    assert_eq!(template.resource_type("AlarmTopic"), Some("AWS::SNS::Topic"));
    let subscription = template.resource("AlarmEmailSubscription").expect("AlarmEmailSubscription");
    assert_eq!(render(&subscription["Properties"]["Endpoint"]), "@AlarmEmail@");
    let condition = template.condition_of("AlarmEmailSubscription").expect("the subscription has a condition");
    let definition = format!("{:?}", template.yaml["Conditions"][condition]);
    assert!(definition.contains("AlarmEmail") && definition.contains("Not"), "{condition} is AlarmEmail != \"\": {definition}");
}

#[test]
fn the_namespace_is_per_stack_and_every_function_gets_it() {
    let template = Template::load();
    assert!(template.namespace.contains("@AWS::StackName@"), "two stacks in one account must not share {}", template.namespace);
    for function in sam::functions(&template.yaml) {
        let own = function.properties.get("Environment").and_then(|e| e.get("Variables")).and_then(|v| v.get("METRICS_NAMESPACE"));
        assert!(own.is_none(), "{}: METRICS_NAMESPACE comes from Globals only", function.logical_id);
    }
}

/// The local Grafana dashboard, provisioned by docker compose.
fn grafana_dashboard() -> Json {
    let path = sam::workspace_root().join("docker/grafana/dashboards/healthplan.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What one PromQL expression reads: each metric (series name) with the labels its matchers name,
/// and the labels of `by (...)` / `without (...)` clauses.
#[derive(Debug, Default)]
struct PromQl {
    series: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

/// Words that are no metric names even without a `(` right after them (aggregations may put
/// `by (...)` between their name and their argument).
const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

fn parse_promql(expr: &str) -> PromQl {
    let chars: Vec<char> = expr.chars().collect();
    let mut parsed = PromQl::default();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from + 1;
        while j < chars.len() && chars[j] != close {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        assert!(j < chars.len(), "unclosed {close} in {expr}");
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_to(i, c);
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '{' {
            let end = skip_to(i, '}');
            let block: String = chars[i + 1..end - 1].iter().collect();
            let labels = block
                .split(',')
                .filter(|m| !m.trim().is_empty())
                .map(|m| m.split(['=', '!', '~']).next().unwrap().trim().to_owned())
                .collect();
            let last = parsed.series.last_mut().unwrap_or_else(|| panic!("a matcher without a metric name in {expr}"));
            last.1 = labels;
            i = end;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if word == "by" || word == "without" {
                assert!(call, "{word} (...) in {expr}");
                let end = skip_to(next, ')');
                let list: String = chars[next + 1..end - 1].iter().collect();
                parsed.grouping.extend(list.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
                i = end;
            } else if !call && !PROMQL_KEYWORDS.contains(&word.as_str()) {
                parsed.series.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    parsed
}

/// The catalog metric behind a Prometheus series name (histograms export `_bucket`, `_sum` and
/// `_count`), and the extra label the series has (`le` on buckets).
fn catalog_metric(series: &str) -> Option<(&'static Metric, Option<&'static str>)> {
    if let Some(metric) = metrics::find(series) {
        return Some((metric, None));
    }
    for (suffix, extra) in [("_bucket", Some("le")), ("_sum", None), ("_count", None)] {
        if let Some(metric) = series.strip_suffix(suffix).and_then(metrics::find) {
            return (metric.kind == Kind::Histogram).then_some((metric, extra));
        }
    }
    None
}

#[test]
fn the_grafana_dashboard_reads_catalog_metrics_and_labels() {
    let dashboard = grafana_dashboard();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{title}: every target has a PromQL expr"));
            assert_eq!(target["datasource"]["uid"], "prometheus", "{title}: the provisioned datasource");
            exprs += 1;
            let parsed = parse_promql(expr);
            assert!(!parsed.series.is_empty(), "{title}: {expr} reads no metric");
            let mut labels: BTreeSet<&str> = BTreeSet::new();
            for (series, matched) in &parsed.series {
                let (metric, extra) =
                    catalog_metric(series).unwrap_or_else(|| panic!("{title}: {series} is not in plan::metrics::CATALOG"));
                let known: BTreeSet<&str> = metric.labels.iter().copied().chain(extra).collect();
                for label in matched {
                    assert!(known.contains(label.as_str()), "{title}: {series} has no label {label} (catalog: {:?})", metric.labels);
                }
                labels.extend(known);
            }
            for label in &parsed.grouping {
                assert!(labels.contains(label.as_str()), "{title}: grouping by {label}, which no metric of {expr} has");
            }
        }
    }
    assert!(exprs >= 10, "the Grafana dashboard has its queries ({exprs})");
}

#[test]
fn the_grafana_panels_are_the_cloudwatch_panels_that_exist_locally() {
    let template = Template::load();
    let (_, full) = template.dashboards().into_iter().find(|(condition, _)| condition.is_some()).unwrap();
    let cloudwatch = titles(&full);
    let dashboard = grafana_dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    let graphs: BTreeSet<String> = panels
        .iter()
        .filter(|p| !matches!(p["type"].as_str(), Some("row" | "text")))
        .map(|p| p["title"].as_str().expect("every panel has a title").to_owned())
        .collect();
    for title in &graphs {
        assert!(cloudwatch.contains(title), "Grafana panel {title:?} has no CloudWatch widget of that title: {cloudwatch:?}");
    }
    let note = panels.iter().find(|p| p["type"] == "text").and_then(|p| p["options"]["content"].as_str()).expect("a text panel");
    let aws_only: BTreeSet<String> = note.lines().filter_map(|l| l.strip_prefix("- ")).map(str::to_owned).collect();
    assert_eq!(
        cloudwatch.difference(&graphs).cloned().collect::<BTreeSet<_>>(),
        aws_only,
        "the CloudWatch panels missing from Grafana (left) are exactly the ones its note lists as AWS-only (right)"
    );
}

/// The README's `## Monitoring` section.
fn monitoring_section() -> String {
    let readme = std::fs::read_to_string(sam::workspace_root().join("README.md")).expect("README.md");
    let start = readme.find("\n## Monitoring\n").expect("README has a ## Monitoring section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|e| e + 3).unwrap_or(rest.len());
    assert!(rest[end..].starts_with("\n## Tests"), "## Monitoring sits just before ## Tests");
    rest[..end].to_owned()
}

#[test]
fn the_readme_lists_every_catalog_metric_every_alarm_and_its_parameters() {
    let section = monitoring_section();
    // The metric table of "What each metric means": rows starting with a metric name in backticks.
    let start = section.find("\n### What each metric means\n").expect("a ### What each metric means subsection");
    let table = &section[start + 1..];
    let table = &table[..table[4..].find("\n### ").map_or(table.len(), |e| e + 4)];
    let rows: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
        .filter(|(name, _)| name.ends_with("_total") || name.ends_with("_seconds"))
        .collect();
    let in_readme: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let catalog: Vec<&str> = metrics::CATALOG.iter().map(|m| m.name).collect();
    assert_eq!(in_readme, catalog, "README's metric table (left) lists the catalog in its order (right)");
    for ((_, row), metric) in rows.iter().zip(metrics::CATALOG) {
        for label in metric.labels {
            assert!(row.contains(&format!("`{label}`")), "README: {} row names its label {label}", metric.name);
        }
    }
    let template = Template::load();
    for (id, alarm) in template.alarms() {
        assert!(section.contains(&format!("`{id}`")), "README's Monitoring section explains the alarm {id}");
        if let Some((parameter, None)) = alarm["Properties"].get("Threshold").map(render).as_deref().and_then(reference) {
            assert!(section.contains(&format!("`{parameter}`")), "README: how to tune {id} ({parameter})");
        }
    }
}

#[test]
fn docker_compose_runs_prometheus_on_plan_locals_metrics_address_and_grafana_on_these_files() {
    let root = sam::workspace_root();
    let compose: Yaml = serde_norway::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap()).unwrap();
    let volumes = |service: &str| -> Vec<String> {
        compose["services"][service]["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("compose service {service} has volumes"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let mounts = |service: &str, source: &str| {
        let path = source.trim_start_matches("./");
        assert!(root.join(path).exists(), "{path} exists");
        assert!(volumes(service).iter().any(|v| v.starts_with(&format!("{source}:"))), "{service} mounts {source}");
    };
    mounts("prometheus", "./docker/prometheus/prometheus.yml");
    mounts("grafana", "./docker/grafana/provisioning");
    mounts("grafana", "./docker/grafana/dashboards");
    // The host's network: the containers reach plan-local on the host's loopback.
    for service in ["prometheus", "grafana"] {
        assert_eq!(compose["services"][service]["network_mode"].as_str(), Some("host"), "{service}");
    }

    // Prometheus scrapes the address plan-local serves its metrics on by default.
    let config = plan_wiring::Config::from_vars(plan_wiring::Deployment::Local, &std::collections::HashMap::new())
        .expect("the default local configuration");
    let default = config.metrics_addr.expect("plan-local serves metrics by default").to_string();
    let prometheus: Yaml =
        serde_norway::from_str(&std::fs::read_to_string(root.join("docker/prometheus/prometheus.yml")).unwrap()).unwrap();
    let job = prometheus["scrape_configs"]
        .as_sequence()
        .and_then(|jobs| jobs.iter().find(|j| j["job_name"].as_str() == Some("plan-local")))
        .expect("a plan-local scrape job");
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let targets: Vec<&str> = job["static_configs"][0]["targets"].as_sequence().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(targets, vec![default.as_str()], "Prometheus scrapes plan-local's default METRICS_ADDR");

    // On the host's network every listener shares the host's ports: neither may take plan-local's.
    let grafana_port: u16 = compose["services"]["grafana"]["environment"]["GF_SERVER_HTTP_PORT"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("GF_SERVER_HTTP_PORT");
    let prometheus_port: u16 = compose["services"]["prometheus"]["command"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .find_map(|arg| arg.strip_prefix("--web.listen-address=127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .expect("Prometheus listens on 127.0.0.1:PORT");
    let taken = [config.port, config.metrics_addr.unwrap().port()];
    for (service, port) in [("grafana", grafana_port), ("prometheus", prometheus_port)] {
        assert!(!taken.contains(&port), "{service} on {port} would take one of plan-local's default ports {taken:?}");
    }
    assert_eq!(
        compose["services"]["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"].as_str(),
        Some("127.0.0.1"),
        "Grafana on loopback only"
    );
}
