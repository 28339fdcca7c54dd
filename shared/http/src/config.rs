//! Configuration: environment variables only, read once at start into one typed struct.
//! Every missing or malformed variable is reported at once. `.env.example` documents each.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use plan::WritePolicy;
use plan_events::{KafkaAuth, KafkaConfig};
use plan_store::RedisConfig;

/// Where the handlers run: on Lambda a real store is mandatory; locally the embedded one is the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Lambda,
    Local,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`: `redis://` or `rediss://` URL, or a comma-separated list of cluster nodes.
    /// Unset: the embedded in-memory store (local server only).
    pub redis: Option<RedisConfig>,
    /// `KAFKA_BOOTSTRAP_SERVERS` (comma-separated `host:port`), `KAFKA_TOPIC` (default
    /// `plan_operations`), `KAFKA_TLS`, `KAFKA_TIMEOUT_MS` (default 1000), `KAFKA_PARTITIONS`
    /// (default 3, used only when this process creates the topic). Unset: the in-process bus
    /// (local server only).
    pub kafka: Option<KafkaConfig>,
    /// `MSK_CLUSTER_ARN`: with no `KAFKA_BOOTSTRAP_SERVERS`, the brokers are looked up once per
    /// cold start with MSK's GetBootstrapBrokers (IAM listener; `msk` feature).
    pub msk_cluster_arn: Option<String>,
    /// `KAFKA_TOPIC` (default `plan_operations`): the change topic (also the in-process bus's name).
    pub topic: String,
    /// `KAFKA_DLQ_TOPIC` (default `<KAFKA_TOPIC>.dlq`): where the indexer sends poison records.
    pub dead_letter_topic: String,
    /// `REQUIRE_IF_MATCH` (default `true`): writes to an existing plan need If-Match (else 428).
    pub write_policy: WritePolicy,
    /// `HOST` (default `127.0.0.1`) and `PORT` (default 3000): where the local server listens.
    pub host: IpAddr,
    pub port: u16,
}

/// Every configuration problem found, one per variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.problems.join("; "))
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_env(deployment: Deployment) -> Result<Self, ConfigError> {
        Self::from_vars(deployment, &std::env::vars().collect())
    }

    pub fn from_vars(deployment: Deployment, vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let var = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let require_if_match = parse_or(var("REQUIRE_IF_MATCH"), true, "REQUIRE_IF_MATCH", "true or false", &mut problems, parse_bool);
        let host = parse_or(var("HOST"), IpAddr::from([127, 0, 0, 1]), "HOST", "an IP address", &mut problems, |v| v.parse().ok());
        let port = parse_or(var("PORT"), 3000, "PORT", "a port number", &mut problems, |v| v.parse().ok());
        let timeout_ms = parse_or(var("REDIS_TIMEOUT_MS"), 1500, "REDIS_TIMEOUT_MS", "milliseconds from 50 to 10000", &mut problems, |v| {
            v.parse::<u64>().ok().filter(|ms| (50..=10_000).contains(ms))
        });
        let cluster = parse_or(var("REDIS_CLUSTER"), false, "REDIS_CLUSTER", "true or false", &mut problems, parse_bool);
        let key_prefix = var("REDIS_KEY_PREFIX").unwrap_or("hp").to_owned();
        if !key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            problems.push("REDIS_KEY_PREFIX: letters, digits, '-', '_' or '.' only".to_owned());
        }

        let topic = var("KAFKA_TOPIC").unwrap_or("plan_operations").to_owned();
        if !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) || topic.len() > 249 {
            problems.push("KAFKA_TOPIC: a Kafka topic name (letters, digits, '-', '_', '.')".to_owned());
        }
        let dead_letter_topic = var("KAFKA_DLQ_TOPIC").map_or_else(|| format!("{topic}.dlq"), str::to_owned);
        let kafka_tls = parse_or(var("KAFKA_TLS"), false, "KAFKA_TLS", "true or false", &mut problems, parse_bool);
        let kafka_timeout_ms =
            parse_or(var("KAFKA_TIMEOUT_MS"), 1000, "KAFKA_TIMEOUT_MS", "milliseconds from 50 to 30000", &mut problems, |v| {
                v.parse::<u64>().ok().filter(|ms| (50..=30_000).contains(ms))
            });
        let partitions = parse_or(var("KAFKA_PARTITIONS"), 3, "KAFKA_PARTITIONS", "a partition count from 1 to 1000", &mut problems, |v| {
            v.parse::<i32>().ok().filter(|n| (1..=1000).contains(n))
        });
        let msk_cluster_arn = var("MSK_CLUSTER_ARN").map(str::to_owned);
        if let Some(arn) = &msk_cluster_arn
            && !arn.starts_with("arn:aws")
        {
            problems.push("MSK_CLUSTER_ARN: an MSK cluster ARN (arn:aws:kafka:...)".to_owned());
        }
        let auth = match var("KAFKA_AUTH").unwrap_or(if msk_cluster_arn.is_some() { "iam" } else { "none" }) {
            "none" => KafkaAuth::None,
            "iam" => match var("AWS_REGION") {
                Some(region) => KafkaAuth::MskIam { region: region.to_owned() },
                None => {
                    problems.push("KAFKA_AUTH=iam needs AWS_REGION (Lambda sets it)".to_owned());
                    KafkaAuth::None
                }
            },
            other => {
                problems.push(format!("KAFKA_AUTH: expected none or iam, got {other:?}"));
                KafkaAuth::None
            }
        };
        if auth != KafkaAuth::None && !cfg!(feature = "msk") {
            problems.push("KAFKA_AUTH=iam / MSK_CLUSTER_ARN: this build lacks the `msk` feature".to_owned());
        }
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
            // MSK's IAM listener is TLS-only.
            tls: kafka_tls || auth != KafkaAuth::None,
            timeout: Duration::from_millis(kafka_timeout_ms),
            create_partitions: partitions,
            auth,
        });

        let redis = match var("REDIS_URL") {
            Some(raw) => {
                let urls: Vec<String> = raw.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
                if urls.is_empty() || !urls.iter().all(|u| u.starts_with("redis://") || u.starts_with("rediss://")) {
                    problems.push("REDIS_URL: redis:// or rediss:// URL(s), comma-separated for cluster nodes".to_owned());
                }
                let ca_pem = var("REDIS_CA_FILE").and_then(|path| match std::fs::read(path) {
                    Ok(pem) => Some(pem),
                    Err(error) => {
                        problems.push(format!("REDIS_CA_FILE: cannot read {path}: {error}"));
                        None
                    }
                });
                Some(RedisConfig {
                    cluster: cluster || urls.len() > 1,
                    urls,
                    key_prefix,
                    op_timeout: Duration::from_millis(timeout_ms),
                    ca_pem,
                })
            }
            None if deployment == Deployment::Lambda => {
                problems.push("REDIS_URL is required on Lambda (the embedded store is for the local server)".to_owned());
                None
            }
            None => None,
        };

        if problems.is_empty() {
            Ok(Self { redis, kafka, msk_cluster_arn, topic, dead_letter_topic, write_policy: WritePolicy { require_if_match }, host, port })
        } else {
            Err(ConfigError { problems })
        }
    }
}

impl Config {
    /// Looks up the brokers of `MSK_CLUSTER_ARN` when no bootstrap servers were given; once per
    /// cold start.
    #[cfg(feature = "msk")]
    pub async fn resolve_msk_brokers(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let (Some(kafka), Some(arn)) = (self.kafka.as_mut(), self.msk_cluster_arn.as_deref())
            && kafka.bootstrap_servers.is_empty()
        {
            kafka.bootstrap_servers = plan_events::msk::bootstrap_brokers(arn).await?;
        }
        Ok(())
    }
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_or<T>(
    raw: Option<&str>,
    default: T,
    name: &str,
    expected: &str,
    problems: &mut Vec<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> T {
    match raw {
        None => default,
        Some(raw) => parse(raw).unwrap_or_else(|| {
            problems.push(format!("{name}: expected {expected}, got {raw:?}"));
            default
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn local_defaults_need_no_variables() {
        let config = Config::from_vars(Deployment::Local, &vars(&[])).unwrap();
        assert!(config.redis.is_none());
        assert_eq!(config.port, 3000);
        assert!(config.write_policy.require_if_match);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let error =
            Config::from_vars(Deployment::Lambda, &vars(&[("PORT", "http"), ("REQUIRE_IF_MATCH", "maybe"), ("REDIS_TIMEOUT_MS", "0")]))
                .unwrap_err();
        let text = error.to_string();
        for name in ["PORT", "REQUIRE_IF_MATCH", "REDIS_TIMEOUT_MS", "REDIS_URL"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(error.problems.len(), 4);
    }

    #[test]
    fn several_urls_mean_a_cluster_and_secrets_stay_out_of_debug() {
        let config = Config::from_vars(
            Deployment::Lambda,
            &vars(&[("REDIS_URL", "redis://:secret@a:7000, redis://:secret@b:7001"), ("REQUIRE_IF_MATCH", "false")]),
        )
        .unwrap();
        let redis = config.redis.clone().unwrap();
        assert!(redis.cluster);
        assert_eq!(redis.urls.len(), 2);
        assert!(!config.write_policy.require_if_match);
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn a_non_redis_url_is_refused() {
        let error = Config::from_vars(Deployment::Local, &vars(&[("REDIS_URL", "http://localhost")])).unwrap_err();
        assert!(error.to_string().contains("REDIS_URL"));
    }
}
