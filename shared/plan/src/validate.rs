//! From untrusted JSON to a [`Plan`]: the JSON Schema first, then the rules a schema cannot say
//! (a real calendar date, objectIds unique inside the document, one `_org` for the whole plan).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::Plan;

mod pattern;

/// The schema file, as served at `GET /v1/schema/plan`.
pub const PLAN_SCHEMA: &str = include_str!("../schema/plan.schema.json");

/// The largest plan this API stores, in bytes of its compact JSON. It is below the 1 MiB request
/// limit, so a plan read back can always be written back, and a change event (the plan plus an
/// envelope of well under 1 KiB) stays below Kafka's default record limit of 1 MiB even before
/// compression. Merge patches and JSON Patches are held to it as well.
pub const MAX_PLAN_BYTES: usize = 1_000_000;

/// At most this many violations are listed in an answer (the total is always counted): a huge
/// invalid body must not make a huge answer, nor a huge list in memory.
pub const MAX_LISTED_VIOLATIONS: usize = 100;

/// A pointer or message longer than this is cut short (with `…`): a violation names where and
/// why, it does not quote the offending value back at length.
const MAX_POINTER_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 300;

/// The plan schema compiled into Rust when this crate is built (jsonschema's `validator` macro,
/// which rebuilds when its file changes): nothing to compile at a cold start, and a writing
/// function links the checks this schema uses instead of the validator's whole runtime (every
/// keyword, format and both regex engines: about 1.9 MB of each writer's bootstrap). Its file is
/// the served schema with `pattern` renamed to [`pattern::KEYWORD`], matched with DFAs that
/// build.rs compiles (the module says why); the unit tests check that the two files agree and that
/// the compiled validator judges every document as the served schema does.
#[jsonschema::validator(
    path = "schema/plan.compiled.schema.json",
    keywords = { "x-pattern" => crate::validate::pattern::factory }
)]
struct PlanSchema;

// `MAX_PLAN_SERVICES`: the schema's bound on `linkedPlanServices`, so the two cannot drift.
include!(concat!(env!("OUT_DIR"), "/bounds.rs"));

/// One reason a document is not a valid plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer (RFC 6901) into the submitted document; empty for the root.
    pub pointer: String,
    pub message: String,
}

impl Violation {
    /// A violation; an overlong pointer or message is cut short.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: clip(pointer.into(), MAX_POINTER_CHARS), message: clip(message.into(), MAX_MESSAGE_CHARS) }
    }
}

/// The violations of one request: the first [`MAX_LISTED_VIOLATIONS`] of them, and how many there
/// were in all. Memory stays bounded however many are pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    listed: Vec<Violation>,
    total: usize,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn one(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        let mut violations = Self::new();
        violations.push(Violation::new(pointer, message));
        violations
    }

    pub fn push(&mut self, violation: Violation) {
        self.push_with(|| violation);
    }

    /// Counts a violation, building it only when it will be listed (messages cost time to write).
    pub fn push_with(&mut self, violation: impl FnOnce() -> Violation) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED_VIOLATIONS {
            self.listed.push(violation());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many violations there were, listed or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The listed ones, in the order found.
    pub fn listed(&self) -> &[Violation] {
        &self.listed
    }

    /// `Ok(value)` when there are none.
    pub fn finish<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

/// The listed violations (so `len()` is the listed count; [`Violations::total`] counts them all).
impl std::ops::Deref for Violations {
    type Target = [Violation];

    fn deref(&self) -> &[Violation] {
        &self.listed
    }
}

impl FromIterator<Violation> for Violations {
    fn from_iter<I: IntoIterator<Item = Violation>>(iter: I) -> Self {
        let mut violations = Self::new();
        iter.into_iter().for_each(|v| violations.push(v));
        violations
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;

    fn into_iter(self) -> Self::IntoIter {
        self.listed.into_iter()
    }
}

/// `text` cut to at most `max` characters, the cut marked with `…`.
fn clip(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// Writes `value` into a string of at most `max` characters: formatting stops there, so a message
/// that would quote a whole 1 MiB document costs no more than a short one.
fn display_clipped(value: &impl std::fmt::Display, max: usize) -> String {
    struct Bounded {
        out: String,
        left: usize,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.left == 0 {
                    self.out.push('…');
                    return Err(std::fmt::Error);
                }
                self.out.push(c);
                self.left -= 1;
            }
            Ok(())
        }
    }
    let mut bounded = Bounded { out: String::new(), left: max };
    // An Err only means the message was cut short.
    let _ = std::fmt::write(&mut bounded, format_args!("{value}"));
    bounded.out
}

/// Builds the compiled validator's pattern keywords (each deserializes its DFA at first use) now
/// rather than on the first request: a document with every patterned field wrong reaches all of
/// them.
pub fn warm_up() {
    PlanSchema::iter_errors(&every_pattern_wrong()).for_each(drop);
}

fn every_pattern_wrong() -> Value {
    serde_json::json!({"objectId": "", "_org": "", "creationDate": ""})
}

/// Validates a whole plan document and builds the typed tree, or lists its violations.
///
/// Memory and time stay proportional to the document, never to the number of its violations:
/// the schema validator collects all of its errors at once, so a document it would drown in
/// errors (a `linkedPlanServices` far over its `maxItems`) gets that one violation, and the
/// validator runs only after the cheap `is_valid` said no.
pub fn parse_plan(document: Value) -> Result<Plan, Violations> {
    if let Some(services) = document.get("linkedPlanServices").and_then(Value::as_array)
        && services.len() > MAX_PLAN_SERVICES
    {
        return Err(Violations::one(
            "/linkedPlanServices",
            format!("a plan has at most {} linkedPlanServices; this one has {}", MAX_PLAN_SERVICES, services.len()),
        ));
    }
    if !PlanSchema::is_valid(&document) {
        let mut violations = Violations::new();
        for error in PlanSchema::iter_errors(&document) {
            violations.push_with(|| Violation::new(error.instance_path().as_str(), display_clipped(&error, MAX_MESSAGE_CHARS)));
        }
        return Err(violations);
    }
    let plan: Plan = serde_json::from_value(document).map_err(|e| Violations::one("", format!("not a plan: {e}")))?;
    tree_rules(&plan).finish(plan)
}

fn tree_rules(plan: &Plan) -> Violations {
    let mut violations = Violations::new();
    if let Err(message) = check_calendar_date(&plan.creation_date) {
        violations.push(Violation::new("/creationDate", message));
    }
    // Pointers are built only for a violation: a valid plan allocates none.
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (index, node) in plan.nodes().enumerate() {
        let id = node.object_id().as_str();
        if let Some(first) = first_seen.insert(id, index) {
            violations.push(Violation::new(
                format!("{}/objectId", Plan::pointer(index)),
                format!("objectId '{id}' is already used at '{}'; every object needs its own id", Plan::pointer(first)),
            ));
            first_seen.insert(id, first);
        }
        if node.org() != plan.org {
            violations.push(Violation::new(
                format!("{}/_org", Plan::pointer(index)),
                format!("_org '{}' differs from the plan's _org '{}'", node.org(), plan.org),
            ));
        }
    }
    violations
}

/// A calendar date in either accepted layout, as (year, month, day). Years run from 0001: the
/// search index's date format (`yyyy`) has no year 0, so a plan dated 0000 could be acknowledged
/// and never indexed. Every part is digits only (`+123` is not a year).
pub fn calendar_date(raw: &str) -> Option<(i32, u8, u8)> {
    let parts: Vec<&str> = raw.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [m, d, y] if m.len() == 2 && d.len() == 2 && y.len() == 4 => (*y, *m, *d),
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (*y, *m, *d),
        _ => return None,
    };
    if ![y, m, d].iter().all(|part| part.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (year, month, day) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if year < 1 {
        return None;
    }
    let month_enum = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month_enum, day).ok()?;
    Some((year, month, day))
}

fn check_calendar_date(raw: &str) -> Result<(), String> {
    calendar_date(raw).map(|_| ()).ok_or_else(|| format!("'{raw}' is not a calendar date (MM-dd-yyyy or yyyy-MM-dd)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap()
    }

    fn pointers(document: Value) -> Vec<String> {
        let mut p: Vec<String> = parse_plan(document).unwrap_err().into_iter().map(|v| v.pointer).collect();
        p.sort();
        p
    }

    #[test]
    fn the_common_sample_is_a_valid_plan() {
        let plan = parse_plan(sample()).unwrap();
        assert_eq!(plan.object_id.as_str(), "12xvxc345ssdsds-508");
        assert_eq!(plan.object_ids().len(), 8);
        assert_eq!(plan.plan_cost_shares.deductible.to_string(), "2000");
    }

    #[test]
    fn the_schema_file_is_valid_and_served_as_is() {
        let schema: Value = serde_json::from_str(PLAN_SCHEMA).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        warm_up();
    }

    /// The compiled validator's file is the served schema with each `pattern` renamed, and
    /// nothing else changed. After an edit of the served schema, remake it with
    /// `sed 's/"pattern":/"x-pattern":/' schema/plan.schema.json > schema/plan.compiled.schema.json`.
    #[test]
    fn the_compiled_schema_is_the_served_one_with_its_patterns_renamed() {
        let compiled = include_str!("../schema/plan.compiled.schema.json");
        let renamed = PLAN_SCHEMA.replace(r#""pattern":"#, &format!("{:?}:", pattern::KEYWORD));
        assert!(compiled == renamed, "schema/plan.compiled.schema.json is out of date (see this test's comment)");
        // Every `pattern` keyword of the served schema was renamed, and only those.
        fn keywords(value: &Value, name: &str) -> usize {
            match value {
                Value::Object(map) => {
                    usize::from(map.get(name).is_some_and(Value::is_string)) + map.values().map(|v| keywords(v, name)).sum::<usize>()
                }
                Value::Array(items) => items.iter().map(|v| keywords(v, name)).sum(),
                _ => 0,
            }
        }
        let served: Value = serde_json::from_str(PLAN_SCHEMA).unwrap();
        let compiled: Value = serde_json::from_str(compiled).unwrap();
        assert_eq!(keywords(&served, "pattern"), 3);
        assert_eq!(keywords(&compiled, pattern::KEYWORD), 3);
        assert_eq!(keywords(&compiled, "pattern"), 0);
    }

    /// The compiled-in validator and the runtime one, built from the schema as served, agree on
    /// every document: the same verdict and the same errors (where and why), in the same order.
    #[test]
    fn the_compiled_validator_judges_as_the_served_schema_does() {
        let runtime = jsonschema::validator_for(&serde_json::from_str(PLAN_SCHEMA).unwrap()).unwrap();
        let errors = |document: &Value, compiled: bool| -> Vec<(String, String)> {
            let listed: Vec<_> =
                if compiled { PlanSchema::iter_errors(document).collect() } else { runtime.iter_errors(document).collect() };
            listed.iter().map(|e| (e.instance_path().as_str().to_owned(), display_clipped(e, MAX_MESSAGE_CHARS))).collect()
        };
        let mut documents = vec![sample(), json!({}), json!([]), json!("plan"), json!(null)];
        let edits: &[(&str, Value)] = &[
            ("/objectId", json!("")),
            ("/objectId", json!("-starts-with-a-dash")),
            ("/objectId", json!("x".repeat(129))),
            ("/objectId", json!(12)),
            ("/_org", json!("example .com")),
            ("/_org", json!("é".repeat(400))),
            ("/objectId", json!(format!("{}\n", "x".repeat(20)))),
            ("/creationDate", json!("2017-13-12")),
            ("/creationDate", json!("12-12-2017\n")),
            ("/creationDate", json!("12/12/2017")),
            ("/planType", json!("")),
            ("/planType", json!("p".repeat(65))),
            ("/planCostShares/copay", json!(-1)),
            ("/planCostShares/copay", json!("23")),
            ("/planCostShares/deductible", json!(-0.01)),
            ("/planCostShares/extra", json!(true)),
            ("/linkedPlanServices", json!({})),
            ("/linkedPlanServices/0/linkedService/name", json!(7)),
            ("/linkedPlanServices/0/linkedService/objectType", json!("plan")),
            ("/linkedPlanServices/1/planserviceCostShares", json!([])),
            ("/linkedPlanServices/1", json!({"objectId": "only-an-id"})),
            ("/unknown", json!(1)),
        ];
        for (pointer, value) in edits {
            let mut document = sample();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match document.pointer_mut(parent).unwrap() {
                Value::Object(map) => drop(map.insert(key.to_owned(), value.clone())),
                Value::Array(items) => items[key.parse::<usize>().unwrap()] = value.clone(),
                _ => unreachable!(),
            }
            documents.push(document);
        }
        for field in ["objectId", "_org", "planType", "creationDate", "planCostShares", "linkedPlanServices", "objectType"] {
            let mut document = sample();
            document.as_object_mut().unwrap().remove(field);
            documents.push(document);
        }
        for document in &documents {
            assert_eq!(PlanSchema::is_valid(document), runtime.is_valid(document), "{document}");
            assert_eq!(errors(document, true), errors(document, false), "{document}");
        }
        let valid: Vec<&Value> = documents.iter().filter(|d| PlanSchema::is_valid(d)).collect();
        assert_eq!(valid.len(), 1, "only the sample itself is valid: {valid:?}");
    }

    /// The patterns' DFAs accept exactly what jsonschema's runtime `pattern` accepts: strings
    /// near each pattern's edges (its classes and the characters next to them, lengths around
    /// its bounds, line breaks, non-ASCII), in every patterned field.
    mod patterns {
        use super::*;
        use proptest::prelude::*;
        use std::sync::LazyLock;

        static RUNTIME: LazyLock<jsonschema::Validator> =
            LazyLock::new(|| jsonschema::validator_for(&serde_json::from_str(PLAN_SCHEMA).unwrap()).unwrap());

        fn near_the_patterns() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                4 => proptest::char::range('0', '9'),
                4 => proptest::char::range('a', 'z'),
                2 => proptest::char::range('A', 'Z'),
                3 => prop::sample::select(vec!['-', '.', '_', ' ', '\n', '/', '+', ':', '@', '`', '[', '{', 'é', 'Ａ', '١', '\u{0}']),
            ];
            let long = (prop::sample::select(vec![125usize, 126, 127, 128, 129, 250, 251, 252, 253, 254]), proptest::char::range('a', 'c'))
                .prop_map(|(len, c)| std::iter::repeat_n(c, len).collect::<String>());
            let date = (0u32..14, 0u32..33, 0u32..10_000, prop::bool::ANY)
                .prop_map(|(m, d, y, us)| if us { format!("{m:02}-{d:02}-{y:04}") } else { format!("{y:04}-{m:02}-{d:02}") });
            prop_oneof![
                4 => proptest::collection::vec(piece, 0..12).prop_map(|cs| cs.into_iter().collect::<String>()),
                2 => long.clone(),
                1 => (long, "[-._a-z]{0,2}").prop_map(|(l, tail)| l + &tail),
                3 => date,
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn the_dfas_accept_what_the_runtime_pattern_accepts(text in near_the_patterns(), field in 0usize..4) {
                let mut document = sample();
                match field {
                    0 => document["objectId"] = json!(text),
                    1 => document["_org"] = json!(text),
                    2 => document["creationDate"] = json!(text),
                    _ => document["linkedPlanServices"][0]["linkedService"]["objectId"] = json!(text),
                }
                prop_assert_eq!(PlanSchema::is_valid(&document), RUNTIME.is_valid(&document), "{:?}", text);
                let compiled: Vec<String> = PlanSchema::iter_errors(&document).map(|e| display_clipped(&e, MAX_MESSAGE_CHARS)).collect();
                let runtime: Vec<String> = RUNTIME.iter_errors(&document).map(|e| display_clipped(&e, MAX_MESSAGE_CHARS)).collect();
                prop_assert_eq!(compiled, runtime);
            }
        }
    }

    #[test]
    fn every_missing_required_field_is_listed() {
        let mut doc = sample();
        let root = doc.as_object_mut().unwrap();
        root.remove("planType");
        root.remove("creationDate");
        doc["linkedPlanServices"][1]["linkedService"].as_object_mut().unwrap().remove("name");
        doc["planCostShares"].as_object_mut().unwrap().remove("copay");
        let violations = parse_plan(doc).unwrap_err();
        assert_eq!(violations.len(), 4, "{violations:#?}");
        let joined = format!("{violations:?}");
        for field in ["planType", "creationDate", "name", "copay"] {
            assert!(joined.contains(field), "{field} missing from {joined}");
        }
        assert!(violations.iter().any(|v| v.pointer == "/linkedPlanServices/1/linkedService"));
    }

    #[test]
    fn table_of_schema_violations() {
        type Edit = fn(&mut Value);
        let cases: &[(&str, Edit, &str)] = &[
            ("negative money", |d| d["planCostShares"]["copay"] = json!(-1), "/planCostShares/copay"),
            ("money as string", |d| d["planCostShares"]["deductible"] = json!("2000"), "/planCostShares/deductible"),
            ("unknown property", |d| d["color"] = json!("red"), ""),
            ("unknown nested property", |d| d["linkedPlanServices"][0]["extra"] = json!(1), "/linkedPlanServices/0"),
            ("wrong objectType at root", |d| d["objectType"] = json!("service"), "/objectType"),
            ("service where a cost share goes", |d| d["planCostShares"]["objectType"] = json!("service"), "/planCostShares/objectType"),
            ("id with a space", |d| d["objectId"] = json!("a b"), "/objectId"),
            ("id with a brace", |d| d["linkedPlanServices"][0]["objectId"] = json!("x{y}"), "/linkedPlanServices/0/objectId"),
            ("date with slashes", |d| d["creationDate"] = json!("12/12/2017"), "/creationDate"),
            ("month 13", |d| d["creationDate"] = json!("13-12-2017"), "/creationDate"),
            ("not a calendar day", |d| d["creationDate"] = json!("02-30-2017"), "/creationDate"),
            ("services not an array", |d| d["linkedPlanServices"] = json!({}), "/linkedPlanServices"),
            ("empty name", |d| d["linkedPlanServices"][0]["linkedService"]["name"] = json!(""), "/linkedPlanServices/0/linkedService/name"),
            ("root not an object", |d| *d = json!([1, 2]), ""),
        ];
        for (name, edit, pointer) in cases {
            let mut doc = sample();
            edit(&mut doc);
            assert_eq!(pointers(doc), vec![pointer.to_string()], "{name}");
        }
    }

    #[test]
    fn both_date_layouts_are_accepted() {
        for date in ["12-12-2017", "2017-12-12", "02-29-2024", "2024-02-29"] {
            let mut doc = sample();
            doc["creationDate"] = json!(date);
            assert!(parse_plan(doc).is_ok(), "{date}");
        }
        assert_eq!(calendar_date("12-31-2017"), Some((2017, 12, 31)));
        assert_eq!(calendar_date("2017-12-31"), Some((2017, 12, 31)));
        assert_eq!(calendar_date("02-29-2023"), None);
        assert_eq!(calendar_date("0001-01-01"), Some((1, 1, 1)));
    }

    #[test]
    fn year_zero_and_signed_years_are_refused() {
        for date in ["0000-01-01", "01-01-0000", "0000-02-29", "+123-01-01", "01-01-+999", "2017-+1-01"] {
            assert_eq!(calendar_date(date), None, "{date}");
            let mut doc = sample();
            doc["creationDate"] = json!(date);
            assert!(parse_plan(doc).is_err(), "{date}");
        }
    }

    #[test]
    fn duplicate_object_ids_inside_the_body_are_refused() {
        let mut doc = sample();
        doc["linkedPlanServices"][1]["objectId"] = json!("27283xvx9asdff-504");
        doc["planCostShares"]["objectId"] = json!("12xvxc345ssdsds-508");
        let violations = parse_plan(doc).unwrap_err();
        let p: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(p, ["/planCostShares/objectId", "/linkedPlanServices/1/objectId"], "{violations:#?}");
    }

    #[test]
    fn far_too_many_services_are_one_violation() {
        let mut doc = sample();
        doc["linkedPlanServices"] = Value::Array(vec![json!({}); 349_000]);
        let violations = parse_plan(doc).unwrap_err();
        assert_eq!(violations.total(), 1);
        assert_eq!(violations.listed()[0].pointer, "/linkedPlanServices");
        assert!(violations.listed()[0].message.contains("at most 1000"), "{violations:?}");
    }

    #[test]
    fn violations_are_capped_and_counted() {
        // 1000 services (the most allowed) each missing all five fields: 5000 violations.
        let mut doc = sample();
        doc["linkedPlanServices"] = Value::Array(vec![json!({}); 1000]);
        let violations = parse_plan(doc).unwrap_err();
        assert_eq!(violations.total(), 5000);
        assert_eq!(violations.listed().len(), MAX_LISTED_VIOLATIONS);
    }

    #[test]
    fn messages_never_quote_a_whole_value() {
        let service = sample()["linkedPlanServices"][0].clone();
        let mut doc = sample();
        doc["linkedPlanServices"] = Value::Array(vec![service; 1000]);
        doc["planType"] = Value::from("x".repeat(100_000));
        doc["planCostShares"] = Value::Array(vec![Value::from("y".repeat(1000)); 100]);
        let violations = parse_plan(doc).unwrap_err();
        assert!(violations.total() >= 2, "{violations:?}");
        for violation in violations.listed() {
            assert!(violation.message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{} chars", violation.message.len());
            assert!(violation.pointer.chars().count() <= MAX_POINTER_CHARS + 1);
        }
        let long = Violation::new("/".repeat(1000), "é".repeat(1000));
        assert_eq!((long.pointer.chars().count(), long.message.chars().count()), (MAX_POINTER_CHARS + 1, MAX_MESSAGE_CHARS + 1));
        assert!(long.message.ends_with('…'));
    }

    #[test]
    fn the_warm_up_document_reaches_every_pattern() {
        let mismatched: Vec<String> = PlanSchema::iter_errors(&every_pattern_wrong())
            .map(|e| e.to_string())
            .filter(|message| message.contains("does not match"))
            .collect();
        assert_eq!(mismatched.len(), 3, "{mismatched:?}");
    }

    #[test]
    fn the_service_limit_is_the_schema_s() {
        assert_eq!(MAX_PLAN_SERVICES, 1000);
    }

    #[test]
    fn mixed_orgs_are_refused() {
        let mut doc = sample();
        doc["linkedPlanServices"][0]["linkedService"]["_org"] = json!("other.org");
        assert_eq!(pointers(doc), ["/linkedPlanServices/0/linkedService/_org"]);
    }

    #[test]
    fn numbers_keep_their_written_form() {
        let mut doc = sample();
        doc["planCostShares"]["copay"] = json!(23.5);
        let plan = parse_plan(doc).unwrap();
        let out: Value = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(out["planCostShares"]["copay"], json!(23.5));
        assert_eq!(out["planCostShares"]["deductible"], json!(2000));
    }
}
