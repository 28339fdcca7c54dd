//! Where the cluster is and how to reach it, from environment variables (read once at start by
//! `plan_wiring::Config`, which reports every problem at once).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// `OPENSEARCH_*` settings. Secrets never appear in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenSearchConfig {
    /// `OPENSEARCH_URL`: `http(s)://host[:port]` of the cluster (one endpoint; Amazon OpenSearch
    /// Service and most self-hosted setups put a load balancer there).
    pub url: String,
    /// `OPENSEARCH_INDEX` (default `plans`): the alias searches read and the indexer writes. The
    /// indices behind it are named `<alias>-...`; a rebuild fills `<alias>-rebuild` first.
    pub alias: String,
    pub auth: Auth,
    /// `OPENSEARCH_TIMEOUT_MS` (default 5000): upper bound of one request.
    pub timeout: Duration,
    /// `OPENSEARCH_REFRESH` (`false` by default, or `wait_for`): whether a write waits until its
    /// documents are searchable (the tests want it; the indexer does not need it, documents are
    /// searchable within the index's one-second refresh interval).
    pub refresh_on_write: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Self-hosted without security, or behind a proxy that authenticates.
    None,
    /// `OPENSEARCH_USERNAME` and `OPENSEARCH_PASSWORD`.
    Basic { username: String, password: String },
    /// SigV4 for Amazon OpenSearch Service, signed with the environment's credentials
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: on Lambda, the
    /// function's execution role). Region from `OPENSEARCH_AWS_REGION` or `AWS_REGION`.
    AwsSigV4 { region: String },
}

impl fmt::Debug for OpenSearchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSearchConfig")
            .field("url", &redact_userinfo(&self.url))
            .field("alias", &self.alias)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("refresh_on_write", &self.refresh_on_write)
            .finish()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::AwsSigV4 { region } => write!(f, "AwsSigV4({region})"),
        }
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether this build can sign for Amazon OpenSearch Service (plan-index feature `aws-auth`).
pub const SIGV4_BUILT_IN: bool = cfg!(feature = "aws-auth");

impl OpenSearchConfig {
    /// None when `OPENSEARCH_URL` is unset; else the settings, or one message per bad variable.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Option<Self>, Vec<String>> {
        let var = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let Some(url) = var("OPENSEARCH_URL") else { return Ok(None) };
        let mut problems = Vec::new();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(' ') {
            problems.push("OPENSEARCH_URL: an http:// or https:// URL".to_owned());
        }
        let alias = var("OPENSEARCH_INDEX").unwrap_or("plans").to_owned();
        if !valid_alias(&alias) {
            problems.push(format!(
                "OPENSEARCH_INDEX: an index alias of at most 100 lower-case letters, digits, '-' or '_', not starting with '-' or '_' (got {alias:?})"
            ));
        }
        let timeout_ms = match var("OPENSEARCH_TIMEOUT_MS") {
            None => 5000,
            Some(raw) => raw.parse::<u64>().ok().filter(|ms| (50..=60_000).contains(ms)).unwrap_or_else(|| {
                problems.push(format!("OPENSEARCH_TIMEOUT_MS: milliseconds from 50 to 60000 (got {raw:?})"));
                5000
            }),
        };
        let refresh_on_write = match var("OPENSEARCH_REFRESH").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("wait_for") => true,
            Some(other) => {
                problems.push(format!("OPENSEARCH_REFRESH: false or wait_for (got {other:?})"));
                false
            }
        };
        let username = var("OPENSEARCH_USERNAME");
        let password = var("OPENSEARCH_PASSWORD");
        let default_auth = if username.is_some() { "basic" } else { "none" };
        let auth = match var("OPENSEARCH_AUTH").unwrap_or(default_auth).to_ascii_lowercase().as_str() {
            "none" => Auth::None,
            "basic" => match (username, password) {
                (Some(username), Some(password)) => Auth::Basic { username: username.to_owned(), password: password.to_owned() },
                _ => {
                    problems.push("OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD are both needed for basic auth".to_owned());
                    Auth::None
                }
            },
            "aws" => {
                if !SIGV4_BUILT_IN {
                    problems.push(
                        "OPENSEARCH_AUTH=aws: this build has no SigV4 signing (build with the plan-index feature aws-auth)".to_owned(),
                    );
                }
                match var("OPENSEARCH_AWS_REGION").or_else(|| var("AWS_REGION")) {
                    Some(region) => Auth::AwsSigV4 { region: region.to_owned() },
                    None => {
                        problems.push("OPENSEARCH_AUTH=aws needs OPENSEARCH_AWS_REGION or AWS_REGION".to_owned());
                        Auth::None
                    }
                }
            }
            other => {
                problems.push(format!("OPENSEARCH_AUTH: none, basic or aws (got {other:?})"));
                Auth::None
            }
        };
        if problems.is_empty() {
            Ok(Some(Self { url: url.to_owned(), alias, auth, timeout: Duration::from_millis(timeout_ms), refresh_on_write }))
        } else {
            Err(problems)
        }
    }

    /// A configuration for tests: no auth, writes searchable on return.
    pub fn for_tests(url: &str, alias: &str) -> Self {
        Self { url: url.to_owned(), alias: alias.to_owned(), auth: Auth::None, timeout: Duration::from_secs(30), refresh_on_write: true }
    }
}

fn valid_alias(alias: &str) -> bool {
    let first_ok = alias.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok && alias.len() <= 100 && alias.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use plan::env::vars_of as vars;

    use super::*;

    #[test]
    fn unset_url_means_no_cluster() {
        assert_eq!(OpenSearchConfig::from_vars(&vars(&[("OPENSEARCH_INDEX", "x")])), Ok(None));
    }

    #[test]
    fn defaults_and_basic_auth() {
        let config = OpenSearchConfig::from_vars(&vars(&[
            ("OPENSEARCH_URL", "https://search.example:9200"),
            ("OPENSEARCH_USERNAME", "admin"),
            ("OPENSEARCH_PASSWORD", "s3cret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.alias, "plans");
        assert_eq!(config.auth, Auth::Basic { username: "admin".into(), password: "s3cret".into() });
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert!(!config.refresh_on_write);
        assert!(!format!("{config:?}").contains("s3cret"));
        let with_userinfo = OpenSearchConfig::from_vars(&vars(&[("OPENSEARCH_URL", "https://u:pw@h")])).unwrap().unwrap();
        assert!(!format!("{with_userinfo:?}").contains("pw"));
    }

    #[test]
    fn every_problem_at_once() {
        let problems = OpenSearchConfig::from_vars(&vars(&[
            ("OPENSEARCH_URL", "search:9200"),
            ("OPENSEARCH_INDEX", "Plans"),
            ("OPENSEARCH_TIMEOUT_MS", "0"),
            ("OPENSEARCH_REFRESH", "always"),
            ("OPENSEARCH_AUTH", "basic"),
        ]))
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        let aws = OpenSearchConfig::from_vars(&vars(&[("OPENSEARCH_URL", "https://h"), ("OPENSEARCH_AUTH", "aws")])).unwrap_err();
        assert!(aws.iter().any(|p| p.contains("AWS_REGION")), "{aws:?}");
    }
}
