//! Where change events go, from the environment: the `KAFKA_*`, `MSK_CLUSTER_ARN` and
//! `CHANGE_EVENTS` variables, read beside the producer so that every problem, a missing
//! credential included, is named when the process starts. Read in every build (the producer
//! itself is feature `kafka`).

use std::collections::HashMap;
use std::time::Duration;

use plan::env::{Deployment, millis_in, parse_bool, parse_or, var};

/// Where and how to produce.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port` of the bootstrap brokers.
    pub bootstrap_servers: Vec<String>,
    pub topic: String,
    /// TLS to the brokers (MSK's 9094 / 9098 listeners).
    pub tls: bool,
    /// Upper bound for one publish, connection included.
    pub timeout: Duration,
    /// Partitions for the topic when this client has to create it.
    pub create_partitions: i32,
    /// Whether a missing topic is created, and how.
    pub topic_creation: TopicCreation,
    /// How the brokers authenticate this client.
    pub auth: KafkaAuth,
    /// How long a record waits for others to the same partition before they go out in one
    /// produce request; zero: every record is its own request.
    pub linger: Duration,
}

/// What a producer does when its topic does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCreation {
    /// Fail: the topic must have been created, with its durability settings, beforehand (the
    /// deployed default; the API stack's topic setup creates both topics).
    Never,
    /// Create it with this replication factor (local brokers: 1).
    WithReplicationFactor(i16),
}

/// A password that never shows in Debug output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Broker authentication (`KAFKA_AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// None (local brokers, or MSK's plaintext and unauthenticated TLS listeners).
    None,
    /// Amazon MSK IAM: SASL OAUTHBEARER with tokens signed by the function's role for `region`.
    /// Needs the `aws` feature.
    MskIam { region: String },
    /// SASL/SCRAM-SHA-512 (MSK's 9096 listener; the credentials of an `AmazonMSK_` secret).
    ScramSha512 { username: String, password: Secret },
}

/// Everything about change events a process is configured with.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// `KAFKA_BOOTSTRAP_SERVERS` (comma-separated `host:port`), `KAFKA_TLS`, `KAFKA_TIMEOUT_MS`
    /// (default 1000), `KAFKA_PARTITIONS` (default 3, used only when this process creates the
    /// topic), `KAFKA_AUTH`, `KAFKA_LINGER_MS` (default 2 locally, 0 on Lambda). Unset (and no
    /// `MSK_CLUSTER_ARN`): no Kafka (the local server's in-process bus).
    pub kafka: Option<KafkaConfig>,
    /// `MSK_CLUSTER_ARN`: with no `KAFKA_BOOTSTRAP_SERVERS`, the brokers are looked up once per
    /// cold start with MSK's GetBootstrapBrokers (IAM listener; `aws` feature).
    pub msk_cluster_arn: Option<String>,
    /// `KAFKA_SASL_SECRET_ARN`: `{"username", "password"}` for `KAFKA_AUTH=scram` (an MSK
    /// `AmazonMSK_` secret), resolved once per cold start (`aws` feature).
    pub sasl_secret_arn: Option<String>,
    /// `CHANGE_EVENTS` (`on` by default): `off` runs the writing functions on Lambda without
    /// Kafka (a stack without events and search); changes then stay marked unpublished.
    pub change_events: bool,
    /// `KAFKA_TOPIC` (default `plan_operations`): the change topic (also the in-process bus's name).
    pub topic: String,
    /// `KAFKA_DLQ_TOPIC` (default `<KAFKA_TOPIC>.dlq`): where the indexer sends poison records.
    pub dead_letter_topic: String,
    /// `KAFKA_REPLICATION_FACTOR` (default 1 locally, 3 on Lambda): what topics are created with,
    /// by a producer that may (`KAFKA_CREATE_TOPICS`) and by the reindex function's `setup` job.
    pub replication_factor: i16,
}

impl EventSettings {
    /// The settings, or one message per bad variable.
    pub fn from_vars(deployment: Deployment, vars: &HashMap<String, String>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let var = |name: &str| var(vars, name);
        let topic = var("KAFKA_TOPIC").unwrap_or("plan_operations").to_owned();
        if !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) || topic.len() > 249 {
            problems.push("KAFKA_TOPIC: a Kafka topic name (letters, digits, '-', '_', '.')".to_owned());
        }
        let dead_letter_topic = var("KAFKA_DLQ_TOPIC").map_or_else(|| format!("{topic}.dlq"), str::to_owned);
        let kafka_tls = parse_or(var("KAFKA_TLS"), false, "KAFKA_TLS", "true or false", &mut problems, parse_bool);
        let kafka_timeout_ms = parse_or(
            var("KAFKA_TIMEOUT_MS"),
            1000,
            "KAFKA_TIMEOUT_MS",
            "milliseconds from 50 to 30000",
            &mut problems,
            millis_in(50..=30_000),
        );
        // A linger pays where requests publish concurrently: the local server. A Lambda instance
        // serves one request at a time, so there a linger would only delay every write.
        let linger_ms = parse_or(
            var("KAFKA_LINGER_MS"),
            if deployment == Deployment::Local { 2 } else { 0 },
            "KAFKA_LINGER_MS",
            "milliseconds from 0 to 100",
            &mut problems,
            |v| v.parse::<u64>().ok().filter(|n| *n <= 100),
        );
        let partitions = parse_or(var("KAFKA_PARTITIONS"), 3, "KAFKA_PARTITIONS", "a partition count from 1 to 1000", &mut problems, |v| {
            v.parse::<i32>().ok().filter(|n| (1..=1000).contains(n))
        });
        let msk_cluster_arn = var("MSK_CLUSTER_ARN").map(str::to_owned);
        if let Some(arn) = &msk_cluster_arn
            && !arn.starts_with("arn:aws")
        {
            problems.push("MSK_CLUSTER_ARN: an MSK cluster ARN (arn:aws:kafka:...)".to_owned());
        }
        let sasl_secret_arn = var("KAFKA_SASL_SECRET_ARN").map(str::to_owned);
        let auth_name = var("KAFKA_AUTH").unwrap_or(if msk_cluster_arn.is_some() { "iam" } else { "none" });
        let (auth, auth_tls) = match auth_name {
            "none" => (KafkaAuth::None, false),
            "tls" => (KafkaAuth::None, true),
            "iam" => match var("AWS_REGION") {
                Some(region) => (KafkaAuth::MskIam { region: region.to_owned() }, true),
                None => {
                    problems.push("KAFKA_AUTH=iam needs AWS_REGION (Lambda sets it)".to_owned());
                    (KafkaAuth::None, true)
                }
            },
            "scram" => {
                let username = var("KAFKA_SASL_USERNAME").unwrap_or_default().to_owned();
                let password = Secret(var("KAFKA_SASL_PASSWORD").unwrap_or_default().to_owned());
                if sasl_secret_arn.is_none() && (username.is_empty() || password.0.is_empty()) {
                    problems.push(
                        "KAFKA_AUTH=scram needs KAFKA_SASL_SECRET_ARN (Secrets Manager) or KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                            .to_owned(),
                    );
                }
                (KafkaAuth::ScramSha512 { username, password }, true)
            }
            other => {
                problems.push(format!("KAFKA_AUTH: expected none, tls, iam or scram, got {other:?}"));
                (KafkaAuth::None, false)
            }
        };
        if sasl_secret_arn.is_some() && auth_name != "scram" {
            problems.push("KAFKA_SASL_SECRET_ARN is only read with KAFKA_AUTH=scram".to_owned());
        }
        // Topics are created only where that is safe: local brokers, replication factor 1. On
        // Lambda a missing topic is an error unless KAFKA_CREATE_TOPICS says otherwise, and the
        // replication factor defaults to 3 (the template allows 2 or 3).
        let create_topics = parse_or(
            var("KAFKA_CREATE_TOPICS"),
            deployment == Deployment::Local,
            "KAFKA_CREATE_TOPICS",
            "true or false",
            &mut problems,
            parse_bool,
        );
        let default_replication: i16 = if deployment == Deployment::Local { 1 } else { 3 };
        let replication_factor = parse_or(
            var("KAFKA_REPLICATION_FACTOR"),
            default_replication,
            "KAFKA_REPLICATION_FACTOR",
            "a replication factor from 1 to 5",
            &mut problems,
            |v| v.parse::<i16>().ok().filter(|n| (1..=5).contains(n)),
        );
        let servers: Option<Vec<String>> = match (var("KAFKA_BOOTSTRAP_SERVERS"), &msk_cluster_arn) {
            (Some(raw), _) => {
                let servers: Vec<String> = raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                if servers.is_empty() || !servers.iter().all(|s| s.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok())) {
                    problems.push("KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port pairs".to_owned());
                }
                Some(servers)
            }
            // Resolved at cold start from the cluster ARN.
            (None, Some(_)) => Some(Vec::new()),
            (None, None) => None,
        };
        let kafka = servers.map(|bootstrap_servers| KafkaConfig {
            bootstrap_servers,
            topic: topic.clone(),
            // MSK's IAM and SCRAM listeners are TLS-only.
            tls: kafka_tls || auth_tls,
            timeout: Duration::from_millis(kafka_timeout_ms),
            create_partitions: partitions,
            topic_creation: if create_topics { TopicCreation::WithReplicationFactor(replication_factor) } else { TopicCreation::Never },
            auth,
            linger: Duration::from_millis(linger_ms),
        });
        let change_events = parse_or(var("CHANGE_EVENTS"), true, "CHANGE_EVENTS", "on or off", &mut problems, |v| match v {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        });
        if !change_events && kafka.is_some() {
            problems.push("CHANGE_EVENTS=off contradicts KAFKA_BOOTSTRAP_SERVERS / MSK_CLUSTER_ARN".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self { kafka, msk_cluster_arn, sasl_secret_arn, change_events, topic, dead_letter_topic, replication_factor })
    }
}

#[cfg(test)]
mod tests {
    use plan::env::vars_of as vars;

    use super::*;

    #[test]
    fn kafka_auth_modes_and_topic_creation() {
        let kafka = |extra: &[(&str, &str)], deployment| {
            let mut all = vec![("KAFKA_BOOTSTRAP_SERVERS", "b-1:9096")];
            all.extend_from_slice(extra);
            EventSettings::from_vars(deployment, &vars(&all)).map(|settings| settings.kafka.unwrap())
        };
        let local = kafka(&[], Deployment::Local).unwrap();
        assert_eq!(
            (local.auth.clone(), local.tls, local.topic_creation),
            (KafkaAuth::None, false, TopicCreation::WithReplicationFactor(1))
        );
        let lambda = kafka(&[("KAFKA_AUTH", "tls")], Deployment::Lambda).unwrap();
        assert_eq!(
            (lambda.auth, lambda.tls, lambda.topic_creation),
            (KafkaAuth::None, true, TopicCreation::Never),
            "never auto-created on Lambda"
        );
        let created = kafka(&[("KAFKA_CREATE_TOPICS", "true")], Deployment::Lambda).unwrap();
        assert_eq!(created.topic_creation, TopicCreation::WithReplicationFactor(3));
        // The template never lets a deployed stack ask for 1 (KafkaReplicationFactor: MinValue 2);
        // cargo lambda watch against a one-broker local Kafka does.
        assert!(kafka(&[("KAFKA_REPLICATION_FACTOR", "0")], Deployment::Lambda).is_err());

        let scram =
            kafka(&[("KAFKA_AUTH", "scram"), ("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD", "hunter2")], Deployment::Local).unwrap();
        assert!(matches!(&scram.auth, KafkaAuth::ScramSha512 { username, password } if username == "u" && password.0 == "hunter2"));
        assert!(scram.tls, "MSK's SCRAM listener is TLS");
        assert!(!format!("{scram:?}").contains("hunter2"), "the password stays out of Debug");
        assert!(kafka(&[("KAFKA_AUTH", "scram")], Deployment::Local).is_err(), "credentials or a secret are required");
        let from_secret = kafka(
            &[("KAFKA_AUTH", "scram"), ("KAFKA_SASL_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:AmazonMSK_x")],
            Deployment::Local,
        );
        // Read here; the secret itself is resolved at cold start, which needs the `aws` feature.
        assert!(from_secret.is_ok(), "{from_secret:?}");
        assert!(kafka(&[("KAFKA_AUTH", "kerberos")], Deployment::Local).is_err());
        let iam = kafka(&[("KAFKA_AUTH", "iam"), ("AWS_REGION", "eu-west-1")], Deployment::Local);
        assert!(iam.is_ok(), "{iam:?}");
    }

    #[test]
    fn records_linger_locally_only_unless_told() {
        let linger = |extra: &[(&str, &str)], deployment| {
            let mut all = vec![("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")];
            all.extend_from_slice(extra);
            EventSettings::from_vars(deployment, &vars(&all)).map(|settings| settings.kafka.unwrap().linger)
        };
        assert_eq!(linger(&[], Deployment::Local).unwrap(), Duration::from_millis(2));
        assert_eq!(linger(&[], Deployment::Lambda).unwrap(), Duration::ZERO, "one request at a time: nothing to wait for");
        assert_eq!(linger(&[("KAFKA_LINGER_MS", "0")], Deployment::Local).unwrap(), Duration::ZERO);
        assert_eq!(linger(&[("KAFKA_LINGER_MS", "5")], Deployment::Lambda).unwrap(), Duration::from_millis(5));
        let problems = linger(&[("KAFKA_LINGER_MS", "500")], Deployment::Local).unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("KAFKA_LINGER_MS")), "{problems:?}");
    }
}
