//! Configuration: environment variables only, read once at start into one typed struct.
//! Every missing or malformed variable is reported at once. `.env.example` documents each.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use plan::WritePolicy;
use plan_index::OpenSearchConfig;
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
    /// `OPENSEARCH_URL` and the other `OPENSEARCH_*` variables (see [`OpenSearchConfig`]): the
    /// search index. Unset: the embedded in-memory index (the search functions on Lambda refuse
    /// to start without it).
    pub opensearch: Option<OpenSearchConfig>,
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

        let redis = match var("REDIS_URL") {
            Some(raw) => {
                let urls: Vec<String> = raw.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
                if urls.is_empty() || !urls.iter().all(|u| u.starts_with("redis://") || u.starts_with("rediss://")) {
                    problems.push("REDIS_URL: redis:// or rediss:// URL(s), comma-separated for cluster nodes".to_owned());
                }
                Some(RedisConfig { cluster: cluster || urls.len() > 1, urls, key_prefix, op_timeout: Duration::from_millis(timeout_ms) })
            }
            None if deployment == Deployment::Lambda => {
                problems.push("REDIS_URL is required on Lambda (the embedded store is for the local server)".to_owned());
                None
            }
            None => None,
        };

        let opensearch = OpenSearchConfig::from_vars(vars).unwrap_or_else(|more| {
            problems.extend(more);
            None
        });

        if problems.is_empty() {
            Ok(Self { redis, opensearch, write_policy: WritePolicy { require_if_match }, host, port })
        } else {
            Err(ConfigError { problems })
        }
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
    fn opensearch_settings_join_the_other_problems() {
        let config = Config::from_vars(Deployment::Local, &vars(&[])).unwrap();
        assert!(config.opensearch.is_none());
        let config =
            Config::from_vars(Deployment::Local, &vars(&[("OPENSEARCH_URL", "http://127.0.0.1:9200"), ("OPENSEARCH_INDEX", "p")])).unwrap();
        assert_eq!(config.opensearch.unwrap().alias, "p");
        let error = Config::from_vars(Deployment::Local, &vars(&[("OPENSEARCH_URL", "ftp://x"), ("PORT", "x")])).unwrap_err();
        assert_eq!(error.problems.len(), 2, "{error}");
    }

    #[test]
    fn a_non_redis_url_is_refused() {
        let error = Config::from_vars(Deployment::Local, &vars(&[("REDIS_URL", "http://localhost")])).unwrap_err();
        assert!(error.to_string().contains("REDIS_URL"));
    }
}
