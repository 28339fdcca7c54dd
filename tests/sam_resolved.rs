//! template.yaml as the SAM CLI resolves it (scripts/sam-resolve.py, the pinned aws-sam-cli's own
//! providers and samtranslator), checked against the code:
//! - every function's environment under `sam local start-api`, `sam local invoke` and in a deployed
//!   stack is accepted by `plan_wiring::Config::from_vars` and configures what the function needs;
//! - every environment variable the code reads has a decision (set by the template for exactly the
//!   functions that read it, set by Lambda, or left at its default), and `sam-env.json` overrides
//!   every variable the template declares (SAM ignores entries for undeclared variables);
//! - each function's role (after the SAM transform) holds exactly the actions its function calls.

use std::collections::{BTreeMap, BTreeSet};

use plan_e2e::sam;
use plan_http::Endpoint;
use plan_http::auth::config::{AuthConfig, JwksLocation};
use plan_wiring::{Config, Deployment};
use serde_json::Value;

/// Functions that open no connection and so stay out of the VPC.
const OUTSIDE_THE_VPC: &[&str] = &["get-schema", "api-docs"];

/// What a function does, from the crate it builds.
#[derive(Debug, Clone, Copy)]
struct Role {
    writes: bool,
    kafka: bool,
    index: bool,
    dead_letters: bool,
    topic_setup: bool,
    in_vpc: bool,
}

fn role(binary: &str) -> Role {
    match binary {
        "indexer" => Role { writes: false, kafka: true, index: true, dead_letters: true, topic_setup: false, in_vpc: true },
        "reindex" => Role { writes: false, kafka: true, index: true, dead_letters: true, topic_setup: true, in_vpc: true },
        _ => {
            let endpoint = Endpoint::ALL.iter().find(|e| e.function() == binary).unwrap_or_else(|| panic!("{binary}: no endpoint"));
            let health = *endpoint == Endpoint::Health;
            Role {
                writes: endpoint.writes(),
                kafka: endpoint.writes() || health,
                index: endpoint.uses_index(),
                dead_letters: false,
                topic_setup: false,
                in_vpc: !OUTSIDE_THE_VPC.contains(&binary),
            }
        }
    }
}

/// Where each variable the code reads comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The template sets it on every function.
    Every,
    /// On the functions that use Kafka (writers, health, indexer, reindex).
    Kafka,
    /// On the writing functions.
    Writers,
    /// On the functions that dead-letter or set up topics (indexer, reindex).
    DeadLetters,
    /// On the reindex function (its topic setup job).
    TopicSetup,
    /// On the functions that use the search index.
    Index,
    /// Set by Lambda (or by sam local).
    Runtime,
    /// Left at its default on AWS: the template does not set it.
    Default,
    /// Read by the local server only.
    LocalServer,
}

const SOURCES: &[(&str, Source)] = &[
    ("REDIS_URL", Source::Every),
    ("REDIS_CLUSTER", Source::Every),
    ("REDIS_KEY_PREFIX", Source::Every),
    ("REDIS_AUTH_SECRET_ARN", Source::Every),
    ("REQUIRE_IF_MATCH", Source::Every),
    ("JWT_ISSUER", Source::Every),
    ("JWT_AUDIENCE", Source::Every),
    ("JWT_READ_SCOPE", Source::Every),
    ("JWT_WRITE_SCOPE", Source::Every),
    ("JWT_DEFAULT_SCOPES", Source::Every),
    ("ORG_CLAIM", Source::Every),
    ("TENANT_ISOLATION", Source::Every),
    ("JWKS_URL", Source::Every),
    ("VERIFY_JWT_IN_FUNCTION", Source::Every),
    // The CloudWatch namespace of every function's embedded-metric-format lines (plan_wiring::emf).
    ("METRICS_NAMESPACE", Source::Every),
    ("KAFKA_BOOTSTRAP_SERVERS", Source::Kafka),
    ("MSK_CLUSTER_ARN", Source::Kafka),
    ("KAFKA_AUTH", Source::Kafka),
    ("KAFKA_SASL_SECRET_ARN", Source::Kafka),
    ("KAFKA_TOPIC", Source::Kafka),
    ("CHANGE_EVENTS", Source::Writers),
    ("KAFKA_DLQ_TOPIC", Source::DeadLetters),
    ("KAFKA_PARTITIONS", Source::TopicSetup),
    ("KAFKA_REPLICATION_FACTOR", Source::TopicSetup),
    ("OPENSEARCH_URL", Source::Index),
    ("OPENSEARCH_AUTH", Source::Index),
    ("AWS_REGION", Source::Runtime),
    ("AWS_ACCESS_KEY_ID", Source::Runtime),
    ("AWS_SECRET_ACCESS_KEY", Source::Runtime),
    ("AWS_SESSION_TOKEN", Source::Runtime),
    ("AWS_SAM_LOCAL", Source::Runtime),
    // From the function's LoggingConfig (template.yaml's Globals).
    ("AWS_LAMBDA_LOG_FORMAT", Source::Runtime),
    ("AWS_LAMBDA_LOG_LEVEL", Source::Runtime),
    ("REDIS_TIMEOUT_MS", Source::Default),
    ("REDIS_CA_FILE", Source::Default),
    ("OPENSEARCH_INDEX", Source::Default),
    ("OPENSEARCH_TIMEOUT_MS", Source::Default),
    ("OPENSEARCH_REFRESH", Source::Default),
    ("OPENSEARCH_AWS_REGION", Source::Default),
    ("OPENSEARCH_USERNAME", Source::Default),
    ("OPENSEARCH_PASSWORD", Source::Default),
    ("KAFKA_TLS", Source::Default),
    ("KAFKA_TIMEOUT_MS", Source::Default),
    // A Lambda instance serves one request at a time: nothing to batch, so no linger (0).
    ("KAFKA_LINGER_MS", Source::Default),
    // Passwords never sit in a deployed function's environment: KAFKA_SASL_SECRET_ARN instead.
    ("KAFKA_SASL_USERNAME", Source::Default),
    ("KAFKA_SASL_PASSWORD", Source::Default),
    // Deployed producers never create topics; the reindex setup job does.
    ("KAFKA_CREATE_TOPICS", Source::Default),
    ("JWT_ALGORITHMS", Source::Default),
    // The local server's log filter; on Lambda only a fallback level when LoggingConfig sets none.
    ("RUST_LOG", Source::Default),
    ("HOST", Source::LocalServer),
    ("PORT", Source::LocalServer),
    ("HEADER_TIMEOUT_MS", Source::LocalServer),
    ("METRICS_ADDR", Source::LocalServer),
    ("LOCAL_KEY_DIR", Source::LocalServer),
];

fn needed_by(source: Source, role: Role) -> bool {
    match source {
        Source::Every => true,
        Source::Kafka => role.kafka,
        Source::Writers => role.writes,
        Source::DeadLetters => role.dead_letters,
        Source::TopicSetup => role.topic_setup,
        Source::Index => role.index,
        Source::Runtime | Source::Default | Source::LocalServer => false,
    }
}

/// Every `var("NAME")` and `var(vars, "NAME")` in the source of the shared crates: the variables
/// the code reads.
fn variables_read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs: Vec<_> =
        std::fs::read_dir(sam::workspace_root().join("shared")).unwrap().map(|e| e.unwrap().path().join("src")).collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // `var("NAME")` (std::env and the local `var` closures) and `var(vars, "NAME")`
                // (plan::env::var, which every adapter's `from_vars` reads with).
                for piece in text.split("var(\"").skip(1).chain(text.split("var(vars, \"").skip(1)) {
                    let name: String = piece.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
                    if piece[name.len()..].starts_with("\")") && !name.is_empty() && !name.starts_with("PLAN_TEST_") {
                        names.insert(name);
                    }
                }
            }
        }
    }
    names
}

fn environments<'a>(resolved: &'a Value, mode: &str) -> Vec<(&'a str, &'a str, BTreeMap<String, String>)> {
    let functions = resolved[mode].as_object().unwrap_or_else(|| panic!("no {mode} in the resolution"));
    assert_eq!(functions.len(), sam::function_crates().len(), "{mode}: one resolved function per crate");
    functions
        .iter()
        .map(|(id, f)| {
            let env = f["environment"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            (id.as_str(), f["binary"].as_str().unwrap(), env)
        })
        .collect()
}

fn load(mode: &str, binary: &str, env: &BTreeMap<String, String>) -> Config {
    let vars = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let config = Config::from_vars(Deployment::Lambda, &vars).unwrap_or_else(|e| panic!("{mode}: {binary}: {e}\n{env:#?}"));
    let role = role(binary);
    // What the function's cold start insists on (plan_wiring::lambda).
    assert_eq!(config.events.kafka.is_some(), role.kafka, "{mode}: {binary}: Kafka configured");
    if role.index {
        assert!(config.opensearch.is_some(), "{mode}: {binary} needs OPENSEARCH_URL");
    }
    config
}

#[test]
fn sam_local_start_api_gives_every_function_a_working_configuration_against_the_compose_services() {
    let Some(resolved) = sam::resolved() else { return };
    for (id, binary, env) in environments(&resolved, "start_api") {
        assert_eq!(env.get("AWS_SAM_LOCAL").map(String::as_str), Some("true"), "{id}");
        assert_eq!(resolved["start_api"][id]["architecture"], "x86_64", "{id}: the local overrides pass the architecture");
        for (name, value) in &env {
            // A parameter without a local value resolves to its own name (RedisUrl="RedisUrl").
            assert!(
                !value.chars().next().is_some_and(char::is_uppercase) || name.starts_with("AWS_") || value.contains("://"),
                "{id}: {name}={value}"
            );
        }
        let config = load("start_api", binary, &env);
        let AuthConfig::Verify(jwt) = &config.auth else {
            panic!("{id}: sam local runs no authorizer, so the function verifies: {:?}", config.auth)
        };
        assert_eq!(jwt.jwks, JwksLocation::Url("http://jwks:8080/jwks.json".into()), "{id}: the local issuer's JWKS (compose `jwks`)");
        assert_eq!(jwt.rules.issuers, vec!["plan-local"], "{id}: plan-local tokens");
        assert_eq!(jwt.rules.audiences, vec!["plan-api"], "{id}");
        assert_eq!(config.redis.as_ref().map(|r| r.urls.clone()), Some(vec!["redis://redis:6379".to_owned()]), "{id}");
        if let Some(kafka) = &config.events.kafka {
            assert_eq!(
                (kafka.bootstrap_servers.clone(), kafka.tls),
                (vec!["kafka:29092".to_owned()], false),
                "{id}: compose's plaintext Kafka"
            );
        }
    }
}

#[test]
fn sam_local_invoke_trusts_the_sample_events_claims_as_the_authorizer_would() {
    let Some(resolved) = sam::resolved() else { return };
    for (id, binary, env) in environments(&resolved, "invoke") {
        let config = load("invoke", binary, &env);
        let AuthConfig::Gateway(rules) = &config.auth else { panic!("{id}: {:?}", config.auth) };
        // The claims the files in events/ carry.
        assert_eq!(
            (rules.issuers.clone(), rules.audiences.clone()),
            (vec!["https://auth.example.com/".into()], vec!["healthplan-api".into()]),
            "{id}"
        );
        assert_eq!(config.claims.org_claim.as_deref(), Some("hd"), "{id}");
    }
}

#[test]
fn a_deployed_stack_configures_iam_kafka_secrets_isolation_and_cognito_scopes() {
    let Some(resolved) = sam::resolved() else { return };
    for (id, binary, env) in environments(&resolved, "deploy") {
        let config = load("deploy", binary, &env);
        let AuthConfig::Gateway(rules) = &config.auth else { panic!("{id}: the authorizer's claims: {:?}", config.auth) };
        assert_eq!(rules.issuers, vec![resolved["deploy_parameters"]["JwtIssuer"].as_str().unwrap()], "{id}: iss is checked");
        assert_eq!(rules.audiences, vec![resolved["deploy_parameters"]["JwtAudience"].as_str().unwrap()], "{id}: aud is checked");
        assert!(config.claims.org_claim.is_some(), "{id}: tenant isolation on");
        assert_eq!(config.claims.scope_names.read, "healthplan/plans.read", "{id}: Cognito's resource-server scope names");
        assert!(config.redis.as_ref().is_some_and(|r| r.auth_secret_arn.is_some()), "{id}: the Redis password comes from Secrets Manager");
        assert!(
            config.redis.as_ref().is_some_and(|r| r.cluster && r.urls.iter().all(|u| u.starts_with("rediss://"))),
            "{id}: TLS, cluster mode"
        );
        assert!(!env.values().any(|v| v.contains("password") || v.contains('@')), "{id}: no credentials in the environment");
        if let Some(kafka) = &config.events.kafka {
            assert!(matches!(kafka.auth, plan_events::KafkaAuth::MskIam { .. }) && kafka.tls, "{id}: MSK IAM over TLS");
            assert!(kafka.bootstrap_servers.is_empty() && config.events.msk_cluster_arn.is_some(), "{id}: brokers from the cluster ARN");
            assert_eq!(kafka.topic_creation, plan_events::TopicCreation::Never, "{id}: never auto-creates a topic");
        }
        if binary == "reindex" {
            assert_eq!(config.events.replication_factor, 3, "the setup job's replication factor");
        }
    }
}

#[test]
fn every_variable_the_code_reads_is_set_for_exactly_the_functions_that_read_it() {
    let read = variables_read_by_the_code();
    let decided: BTreeSet<String> = SOURCES.iter().map(|(name, _)| (*name).to_owned()).collect();
    assert_eq!(read, decided, "variables the code reads (left) vs the decisions in SOURCES (right)");

    // From the template alone, so this runs under a plain `cargo test` too.
    let template = sam::template();
    let globals: BTreeSet<String> = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Globals environment")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for function in sam::functions(&template) {
        let binary = function.binary.clone().unwrap();
        let mut declared = globals.clone();
        if let Some(variables) = function.properties.get("Environment").and_then(|e| e.get("Variables")).and_then(|v| v.as_mapping()) {
            declared.extend(variables.keys().map(|k| k.as_str().unwrap().to_owned()));
        }
        let role = role(&binary);
        let needed: BTreeSet<String> =
            SOURCES.iter().filter(|(_, source)| needed_by(*source, role)).map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(declared, needed, "{}: declared (left) vs read by its code (right)", function.logical_id);
    }

    // sam local only overrides variables the template declares, and a declared variable it does
    // not override keeps its deployed value: so sam-env.json sets every declared variable.
    for file in ["sam-env.json", "sam-env-invoke.json"] {
        let text = std::fs::read_to_string(sam::workspace_root().join(file)).unwrap();
        let env: Value = serde_json::from_str(&text).unwrap();
        let overridden: BTreeSet<String> = env["Parameters"].as_object().unwrap().keys().cloned().collect();
        let declared: BTreeSet<String> = SOURCES
            .iter()
            .filter(|(_, s)| !matches!(s, Source::Runtime | Source::Default | Source::LocalServer))
            .map(|(n, _)| (*n).to_owned())
            .collect();
        assert_eq!(overridden, declared, "{file}: overridden (left) vs declared by the template (right)");
    }
}

/// The actions a role holds, from the transformed template: inline policies and the template's
/// own managed policies (conditions evaluated), and the AWS managed policies by name.
fn role_actions(resolved: &Value, function_id: &str) -> (BTreeSet<String>, BTreeSet<String>, Vec<Value>) {
    let resources = &resolved["transformed"]["Resources"];
    let conditions = &resolved["conditions"];
    let role = &resources[format!("{function_id}Role")]["Properties"];
    let mut statements: Vec<Value> = Vec::new();
    for policy in role["Policies"].as_array().into_iter().flatten() {
        statements.extend(policy["PolicyDocument"]["Statement"].as_array().cloned().unwrap_or_default());
    }
    let mut aws_managed = BTreeSet::new();
    for arn in role["ManagedPolicyArns"].as_array().into_iter().flatten() {
        let arn = match arn.get("Fn::If") {
            Some(branches) => {
                let condition = branches[0].as_str().unwrap();
                if conditions[condition].as_bool().unwrap() { &branches[1] } else { &branches[2] }
            }
            None => arn,
        };
        match (arn.as_str(), arn.get("Ref").and_then(Value::as_str)) {
            (Some(name), _) => {
                aws_managed.insert(name.rsplit('/').next().unwrap().to_owned());
            }
            (None, Some("AWS::NoValue")) => {}
            (None, Some(policy)) => {
                let document = &resources[policy]["Properties"]["PolicyDocument"];
                statements.extend(document["Statement"].as_array().cloned().unwrap_or_default());
            }
            _ => panic!("{function_id}: unexpected managed policy {arn}"),
        }
    }
    let mut actions = BTreeSet::new();
    for statement in &statements {
        assert_eq!(statement["Effect"], "Allow", "{function_id}: {statement}");
        match &statement["Action"] {
            Value::String(action) => {
                actions.insert(action.clone());
            }
            Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("{function_id}: Action {other}"),
        }
    }
    (actions, aws_managed, statements)
}

#[test]
fn each_role_holds_exactly_the_actions_its_function_calls() {
    let Some(resolved) = sam::resolved() else { return };
    let strs = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<String>>();
    let produce = ["kafka-cluster:Connect", "kafka:GetBootstrapBrokers", "kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"];
    let es_read = ["es:ESHttpGet", "es:ESHttpPost"];
    let es_write = ["es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete", "es:ESHttpHead"];
    for (id, binary, _) in environments(&resolved, "deploy") {
        let role = role(binary);
        // Every function reads the Redis password from Secrets Manager at cold start.
        let mut expected = strs(&["secretsmanager:GetSecretValue"]);
        if role.writes {
            expected.extend(strs(&produce));
        }
        if binary == "health" {
            expected.extend(strs(&["kafka-cluster:Connect", "kafka:GetBootstrapBrokers", "kafka-cluster:DescribeTopic"]));
        }
        if role.index && !role.kafka {
            expected.extend(strs(&es_read));
        }
        if binary == "indexer" {
            // The event source mapping (IAM auth, as the function's role) and the dead-letter produce.
            expected.extend(strs(&[
                "kafka-cluster:Connect",
                "kafka-cluster:DescribeClusterDynamicConfiguration",
                "kafka:DescribeClusterV2",
                "kafka:GetBootstrapBrokers",
                "kafka-cluster:DescribeTopic",
                "kafka-cluster:ReadData",
                "kafka-cluster:DescribeGroup",
                "kafka-cluster:AlterGroup",
                "kafka-cluster:WriteData",
                "sqs:SendMessage",
            ]));
            expected.extend(strs(&es_write));
        }
        if binary == "reindex" {
            expected.extend(strs(&produce));
            expected.extend(strs(&["kafka-cluster:CreateTopic", "sqs:SendMessage"]));
            expected.extend(strs(&es_write));
        }
        let (actions, aws_managed, statements) = role_actions(&resolved, id);
        assert_eq!(actions, expected, "{id}: role actions (left) vs the calls its function makes (right)");

        let mut managed = strs(&["AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"]);
        if role.in_vpc {
            managed.insert("AWSLambdaVPCAccessExecutionRole".to_owned());
        }
        if binary == "indexer" {
            managed.insert("AWSLambdaMSKExecutionRole".to_owned());
        }
        assert_eq!(aws_managed, managed, "{id}: AWS managed policies");

        // Data-plane Kafka permissions name their topic or group exactly: no wildcards.
        for statement in &statements {
            let text = statement.to_string();
            if text.contains("kafka-cluster:WriteData")
                || text.contains("kafka-cluster:ReadData")
                || text.contains("kafka-cluster:CreateTopic")
            {
                assert!(!statement["Resource"].to_string().contains('*'), "{id}: {statement}");
                assert!(statement["Resource"].to_string().contains("${KafkaTopic}"), "{id}: {statement}");
            }
        }
    }
}
