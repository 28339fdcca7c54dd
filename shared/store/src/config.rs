//! The Redis store's settings, from the environment: the `REDIS_*` variables, read beside the
//! adapter so that every problem, a missing credential included, is named when the process starts.

use std::collections::HashMap;
use std::time::Duration;

use plan::env::{millis_in, parse_bool, parse_or, var};

/// Connection settings. The URLs may carry a password and never appear in `Debug`.
#[derive(Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`: one `redis://` or `rediss://` URL, or several (comma-separated) for a
    /// cluster's seed nodes.
    pub urls: Vec<String>,
    /// `REDIS_CLUSTER`: cluster mode (ElastiCache cluster mode enabled); implied by more than one URL.
    pub cluster: bool,
    /// `REDIS_KEY_PREFIX` (default `hp`): prefix of every key, so several deployments or test
    /// runs can share one Redis.
    pub key_prefix: String,
    /// `REDIS_TIMEOUT_MS` (default 1500): upper bound for one store operation, reconnects included.
    pub op_timeout: Duration,
    /// `REDIS_CA_FILE`: PEM of the CA that signed the server's certificate, for `rediss://` with a
    /// private CA (ElastiCache's certificates chain to public roots and need none).
    pub ca_pem: Option<Vec<u8>>,
    /// `REDIS_AUTH_SECRET_ARN`: a Secrets Manager secret holding the password (a plain AUTH token)
    /// or `{"username", "password"}` of an ElastiCache user, put into every URL once per cold
    /// start ([`Self::with_credentials`]), so that no password sits in the environment.
    pub auth_secret_arn: Option<String>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry a password: never print them.
        f.debug_struct("RedisConfig")
            .field("urls", &format_args!("[{} redacted]", self.urls.len()))
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("op_timeout", &self.op_timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "set"))
            .field("auth_secret_arn", &self.auth_secret_arn)
            .finish()
    }
}

impl RedisConfig {
    /// None when `REDIS_URL` is unset; else the settings, or one message per bad variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Option<Self>, Vec<String>> {
        let mut problems = Vec::new();
        let timeout_ms = parse_or(
            var(vars, "REDIS_TIMEOUT_MS"),
            1500,
            "REDIS_TIMEOUT_MS",
            "milliseconds from 50 to 10000",
            &mut problems,
            millis_in(50..=10_000),
        );
        let cluster = parse_or(var(vars, "REDIS_CLUSTER"), false, "REDIS_CLUSTER", "true or false", &mut problems, parse_bool);
        let key_prefix = var(vars, "REDIS_KEY_PREFIX").unwrap_or("hp").to_owned();
        if !key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            problems.push("REDIS_KEY_PREFIX: letters, digits, '-', '_' or '.' only".to_owned());
        }
        let auth_secret_arn = var(vars, "REDIS_AUTH_SECRET_ARN").map(str::to_owned);
        if auth_secret_arn.as_ref().is_some_and(|arn| !arn.starts_with("arn:aws")) {
            problems.push("REDIS_AUTH_SECRET_ARN: a Secrets Manager secret ARN (arn:aws:secretsmanager:...)".to_owned());
        }
        let config = var(vars, "REDIS_URL").map(|raw| {
            let urls: Vec<String> = raw.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
            if urls.is_empty() || !urls.iter().all(|u| u.starts_with("redis://") || u.starts_with("rediss://")) {
                problems.push("REDIS_URL: redis:// or rediss:// URL(s), comma-separated for cluster nodes".to_owned());
            }
            let ca_pem = var(vars, "REDIS_CA_FILE").and_then(|path| match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(error) => {
                    problems.push(format!("REDIS_CA_FILE: cannot read {path}: {error}"));
                    None
                }
            });
            Self {
                cluster: cluster || urls.len() > 1,
                urls,
                key_prefix,
                op_timeout: Duration::from_millis(timeout_ms),
                ca_pem,
                auth_secret_arn,
            }
        });
        if config.is_none() && var(vars, "REDIS_AUTH_SECRET_ARN").is_some() {
            problems.push("REDIS_AUTH_SECRET_ARN needs REDIS_URL".to_owned());
        }
        if problems.is_empty() { Ok(config) } else { Err(problems) }
    }

    /// Every URL with this username (if any) and password in its user information: the secret
    /// of `REDIS_AUTH_SECRET_ARN`, once resolved.
    pub fn with_credentials(&mut self, username: Option<&str>, password: &str) -> Result<(), String> {
        self.urls = self
            .urls
            .iter()
            .map(|raw| {
                let mut url = url::Url::parse(raw).map_err(|e| format!("REDIS_URL: {e}"))?;
                url.set_username(username.unwrap_or_default()).map_err(|()| "REDIS_URL: cannot carry a username")?;
                url.set_password(Some(password)).map_err(|()| "REDIS_URL: cannot carry a password")?;
                Ok(url.to_string())
            })
            .collect::<Result<_, String>>()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use plan::env::vars_of as vars;

    use super::*;

    #[test]
    fn several_urls_mean_a_cluster_and_secrets_stay_out_of_debug() {
        let config = RedisConfig::from_vars(&vars(&[("REDIS_URL", "redis://:hunter2@a:6379, redis://:hunter2@b:6379")])).unwrap().unwrap();
        assert!(config.cluster);
        assert_eq!(config.urls.len(), 2);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_go_into_every_url() {
        let mut config = RedisConfig::from_vars(&vars(&[("REDIS_URL", "rediss://cache-a:6379,rediss://cache-b:6379")])).unwrap().unwrap();
        let mut one = config.clone();
        config.with_credentials(None, "t0k/en").unwrap();
        assert_eq!(config.urls, ["rediss://:t0k%2Fen@cache-a:6379", "rediss://:t0k%2Fen@cache-b:6379"]);
        one.urls.truncate(1);
        one.with_credentials(Some("plans"), "pw").unwrap();
        assert_eq!(one.urls, ["rediss://plans:pw@cache-a:6379"]);
    }

    #[test]
    fn bad_settings_are_named_together() {
        let problems = RedisConfig::from_vars(&vars(&[
            ("REDIS_URL", "http://a"),
            ("REDIS_TIMEOUT_MS", "0"),
            ("REDIS_KEY_PREFIX", "a b"),
            ("REDIS_AUTH_SECRET_ARN", "secret"),
        ]))
        .unwrap_err();
        for name in ["REDIS_URL", "REDIS_TIMEOUT_MS", "REDIS_KEY_PREFIX", "REDIS_AUTH_SECRET_ARN"] {
            assert!(problems.iter().any(|p| p.starts_with(name)), "{name} missing from {problems:?}");
        }
        assert!(RedisConfig::from_vars(&vars(&[])).unwrap().is_none());
    }
}
