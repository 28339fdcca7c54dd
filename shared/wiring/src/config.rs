//! Configuration: environment variables only, read once at start into one typed struct composed
//! of each part's own settings (the Redis store's, change events', the index's, authentication's,
//! each read beside the code it configures). Every missing or malformed variable is reported at
//! once. `.env.example` documents each.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use plan::WritePolicy;
pub use plan::env::Deployment;
use plan::env::{millis_in, parse_bool, parse_or, var};
use plan_events::EventSettings;
use plan_http::auth::ClaimRules;
use plan_http::auth::config::{AuthConfig, AuthSettings};
use plan_index::OpenSearchConfig;
use plan_store::RedisConfig;

#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_*` ([`RedisConfig`]). Unset: the embedded in-memory store (local server only).
    pub redis: Option<RedisConfig>,
    /// `KAFKA_*`, `MSK_CLUSTER_ARN`, `CHANGE_EVENTS` ([`EventSettings`]). No Kafka: the
    /// in-process bus (local server only).
    pub events: EventSettings,
    /// `OPENSEARCH_*` ([`OpenSearchConfig`]): the search index. Unset: the embedded in-memory
    /// index (the search functions on Lambda refuse to start without it).
    pub opensearch: Option<OpenSearchConfig>,
    /// How callers are authenticated: `JWT_ISSUER`, `JWT_AUDIENCE`, `JWKS_URL`, `JWT_ALGORITHMS`,
    /// `VERIFY_JWT_IN_FUNCTION` and `LOCAL_KEY_DIR`.
    pub auth: AuthConfig,
    /// What the token's claims mean: `ORG_CLAIM` (set: tenant isolation on), `JWT_DEFAULT_SCOPES`,
    /// `JWT_READ_SCOPE` / `JWT_WRITE_SCOPE`.
    pub claims: ClaimRules,
    /// `REQUIRE_IF_MATCH` (default `true`): writes to an existing plan need If-Match (else 428).
    pub write_policy: WritePolicy,
    /// `HOST` (default `127.0.0.1`) and `PORT` (default 3000): where the local server listens.
    pub host: IpAddr,
    pub port: u16,
    /// `HEADER_TIMEOUT_MS` (default 10000): how long the local server waits for a request's
    /// headers, on a new connection and on an idle kept-alive one, before it closes it.
    pub header_timeout: Duration,
    /// `METRICS_NAMESPACE` (default `HealthPlan`): the CloudWatch namespace of the metrics a
    /// function writes in embedded metric format.
    pub metrics_namespace: String,
    /// `METRICS_ADDR` (default `127.0.0.1:9464`; `off` disables it): where the local server serves
    /// its Prometheus text, on a listener of its own (see `plan_local::metrics`).
    pub metrics_addr: Option<SocketAddr>,
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

/// The CloudWatch namespace of the metrics when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "HealthPlan";

/// `Ok(value)` as it is, or `default` with the problems appended.
fn collect<T>(result: Result<T, Vec<String>>, default: impl FnOnce() -> T, problems: &mut Vec<String>) -> T {
    result.unwrap_or_else(|more| {
        problems.extend(more);
        default()
    })
}

impl Config {
    pub fn from_env(deployment: Deployment) -> Result<Self, ConfigError> {
        Self::from_vars(deployment, &std::env::vars().collect())
    }

    pub fn from_vars(deployment: Deployment, vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let var = |name: &str| var(vars, name);

        let require_if_match = parse_or(var("REQUIRE_IF_MATCH"), true, "REQUIRE_IF_MATCH", "true or false", &mut problems, parse_bool);
        let host = parse_or(var("HOST"), IpAddr::from([127, 0, 0, 1]), "HOST", "an IP address", &mut problems, |v| v.parse().ok());
        let port = parse_or(var("PORT"), 3000, "PORT", "a port number", &mut problems, |v| v.parse().ok());
        let header_timeout_ms = parse_or(
            var("HEADER_TIMEOUT_MS"),
            10_000,
            "HEADER_TIMEOUT_MS",
            "milliseconds from 100 to 600000",
            &mut problems,
            millis_in(100..=600_000),
        );
        let metrics_namespace = parse_or(
            var("METRICS_NAMESPACE"),
            DEFAULT_METRICS_NAMESPACE.to_owned(),
            "METRICS_NAMESPACE",
            "a CloudWatch namespace (1 to 255 characters: letters, digits, . - _ / # :)",
            &mut problems,
            |v| {
                let valid = v.len() <= 255 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b));
                valid.then(|| v.to_owned())
            },
        );
        let default_metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 9464)));
        let metrics_addr = parse_or(var("METRICS_ADDR"), default_metrics_addr, "METRICS_ADDR", "host:port or off", &mut problems, |v| {
            if v == "off" { Some(None) } else { v.parse().ok().map(Some) }
        });

        let redis = collect(RedisConfig::from_vars(vars), || None, &mut problems);
        if redis.is_none() && deployment == Deployment::Lambda && var("REDIS_URL").is_none() {
            problems.push("REDIS_URL is required on Lambda (the embedded store is for the local server)".to_owned());
        }
        let events = EventSettings::from_vars(deployment, vars);
        let opensearch = collect(OpenSearchConfig::from_vars(vars), || None, &mut problems);
        let auth = AuthSettings::from_vars(deployment, vars);

        match (events, auth) {
            (Ok(events), Ok(auth)) if problems.is_empty() => Ok(Self {
                redis,
                events,
                opensearch,
                auth: auth.auth,
                claims: auth.claims,
                write_policy: WritePolicy { require_if_match },
                host,
                port,
                header_timeout: Duration::from_millis(header_timeout_ms),
                metrics_namespace,
                metrics_addr,
            }),
            (events, auth) => {
                problems.extend(events.err().unwrap_or_default());
                problems.extend(auth.err().unwrap_or_default());
                Err(ConfigError { problems })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use jsonwebtoken::Algorithm;
    use plan_http::auth::config::{JwksLocation, LOCAL_AUDIENCE, LOCAL_ISSUER};
    use plan_http::auth::{GatewayRules, Scope};

    use plan::env::vars_of as vars;

    use super::*;

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
        for name in ["PORT", "REQUIRE_IF_MATCH", "REDIS_TIMEOUT_MS", "REDIS_URL", "ORG_CLAIM", "JWT_ISSUER", "JWT_AUDIENCE"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(error.problems.len(), 7);
    }

    #[test]
    fn several_urls_mean_a_cluster_and_secrets_stay_out_of_debug() {
        let config = Config::from_vars(
            Deployment::Lambda,
            &vars(&[
                ("REDIS_URL", "redis://:pa55word@a:7000, redis://:pa55word@b:7001"),
                ("REQUIRE_IF_MATCH", "false"),
                LAMBDA_AUTH[0],
                LAMBDA_AUTH[1],
                LAMBDA_AUTH[2],
            ]),
        )
        .unwrap();
        let redis = config.redis.clone().unwrap();
        assert!(redis.cluster);
        assert_eq!(redis.urls.len(), 2);
        assert!(!config.write_policy.require_if_match);
        assert!(!format!("{config:?}").contains("pa55word"));
    }

    #[test]
    fn locally_the_server_is_its_own_issuer_unless_a_jwks_is_given() {
        let config = Config::from_vars(Deployment::Local, &vars(&[])).unwrap();
        let AuthConfig::LocalIssuer(local) = &config.auth else { panic!("{:?}", config.auth) };
        assert_eq!((local.issuer.as_str(), local.audience.as_str(), local.algorithm), (LOCAL_ISSUER, LOCAL_AUDIENCE, Algorithm::RS256));
        assert_eq!(local.key_dir, PathBuf::from(".local"));
        assert_eq!(config.claims.org_claim, None, "isolation is off unless ORG_CLAIM is set");

        let config = Config::from_vars(
            Deployment::Local,
            &vars(&[("JWT_ALGORITHMS", "ES256"), ("LOCAL_KEY_DIR", "/tmp/keys"), ("ORG_CLAIM", "hd")]),
        )
        .unwrap();
        let AuthConfig::LocalIssuer(local) = &config.auth else { panic!("{:?}", config.auth) };
        assert_eq!((local.algorithm, local.key_dir.to_str()), (Algorithm::ES256, Some("/tmp/keys")));
        assert_eq!(config.claims.org_claim.as_deref(), Some("hd"));
        assert!(config.claims.default_scopes.is_empty());

        let google = vars(&[
            ("JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"),
            ("JWT_ISSUER", "https://accounts.google.com, accounts.google.com"),
            ("JWT_AUDIENCE", "1234567890-abc.apps.googleusercontent.com"),
        ]);
        let config = Config::from_vars(Deployment::Local, &google).unwrap();
        let AuthConfig::Verify(jwt) = &config.auth else { panic!("{:?}", config.auth) };
        assert_eq!(jwt.jwks, JwksLocation::Url("https://www.googleapis.com/oauth2/v3/certs".into()));
        assert_eq!(jwt.rules.issuers, vec!["https://accounts.google.com", "accounts.google.com"]);
        assert_eq!(jwt.rules.algorithms, vec![Algorithm::RS256]);

        let error = Config::from_vars(Deployment::Local, &vars(&[("JWKS_URL", "./jwks.json")])).unwrap_err();
        assert_eq!(error.problems.len(), 2, "issuer and audience named: {error}");
    }

    /// The least a function on Lambda needs besides Redis: issuer, audience, tenant policy.
    const LAMBDA_AUTH: [(&str, &str); 3] = [("JWT_ISSUER", "https://i"), ("JWT_AUDIENCE", "a"), ("ORG_CLAIM", "hd")];

    #[test]
    fn on_lambda_the_authorizer_is_trusted_unless_the_function_verifies() {
        let redis = ("REDIS_URL", "redis://cache:6379");
        let error = Config::from_vars(Deployment::Lambda, &vars(&[redis, ("ORG_CLAIM", "hd")])).unwrap_err();
        assert_eq!(error.problems.len(), 2, "issuer and audience are checked against the authorizer's claims: {error}");
        let config = Config::from_vars(Deployment::Lambda, &vars(&[redis, LAMBDA_AUTH[0], LAMBDA_AUTH[1], LAMBDA_AUTH[2]])).unwrap();
        assert_eq!(config.auth, AuthConfig::Gateway(GatewayRules { issuers: vec!["https://i".into()], audiences: vec!["a".into()] }));

        let error =
            Config::from_vars(Deployment::Lambda, &vars(&[redis, ("ORG_CLAIM", "hd"), ("VERIFY_JWT_IN_FUNCTION", "true")])).unwrap_err();
        for name in ["JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"] {
            assert!(error.to_string().contains(name), "{name} missing from {error}");
        }
        let verifying = vars(&[
            redis,
            ("ORG_CLAIM", "hd"),
            ("VERIFY_JWT_IN_FUNCTION", "true"),
            ("JWKS_URL", "file:///opt/jwks.json"),
            ("JWT_ISSUER", "https://i"),
            ("JWT_AUDIENCE", "a"),
            ("JWT_ALGORITHMS", "RS256, ES256"),
        ]);
        let AuthConfig::Verify(jwt) = Config::from_vars(Deployment::Lambda, &verifying).unwrap().auth else { panic!("verify") };
        assert_eq!(jwt.jwks, JwksLocation::File("/opt/jwks.json".into()));
        assert_eq!(jwt.rules.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);

        // sam local runs no authorizer: the function verifies, and may fetch the JWKS over HTTP
        // from another container of the compose network.
        let sam_local = vars(&[
            redis,
            ("TENANT_ISOLATION", "off"),
            ("AWS_SAM_LOCAL", "true"),
            ("JWKS_URL", "http://jwks:8080/jwks.json"),
            ("JWT_ISSUER", "plan-local"),
            ("JWT_AUDIENCE", "plan-api"),
        ]);
        let AuthConfig::Verify(jwt) = Config::from_vars(Deployment::Lambda, &sam_local).unwrap().auth else { panic!("verify") };
        assert_eq!(jwt.jwks, JwksLocation::Url("http://jwks:8080/jwks.json".into()));
        let mut invoking = sam_local.clone();
        invoking.insert("VERIFY_JWT_IN_FUNCTION".into(), "false".into());
        assert!(
            matches!(Config::from_vars(Deployment::Lambda, &invoking).unwrap().auth, AuthConfig::Gateway(_)),
            "sam local invoke with events/"
        );
        let mut deployed = sam_local.clone();
        deployed.remove("AWS_SAM_LOCAL");
        deployed.insert("VERIFY_JWT_IN_FUNCTION".into(), "true".into());
        let error = Config::from_vars(Deployment::Lambda, &deployed).unwrap_err();
        assert!(error.to_string().contains("JWKS_URL"), "plain HTTP off loopback only under sam local: {error}");
    }

    #[test]
    fn tenant_isolation_is_configured_or_explicitly_off_on_lambda() {
        let base = [("REDIS_URL", "redis://cache:6379"), LAMBDA_AUTH[0], LAMBDA_AUTH[1]];
        let error = Config::from_vars(Deployment::Lambda, &vars(&base)).unwrap_err();
        assert!(error.to_string().contains("ORG_CLAIM is required"), "{error}");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Config::from_vars(Deployment::Lambda, &vars(&all))
        };
        assert_eq!(with(&[("ORG_CLAIM", "custom:org")]).unwrap().claims.org_claim.as_deref(), Some("custom:org"));
        assert_eq!(with(&[("TENANT_ISOLATION", "off")]).unwrap().claims.org_claim, None);
        assert!(with(&[("TENANT_ISOLATION", "off"), ("ORG_CLAIM", "hd")]).is_err(), "contradiction");
        assert!(with(&[("TENANT_ISOLATION", "maybe"), ("ORG_CLAIM", "hd")]).is_err());
        assert!(with(&[("TENANT_ISOLATION", "on")]).is_err());
        assert!(Config::from_vars(Deployment::Local, &vars(&[])).unwrap().claims.org_claim.is_none(), "off by default locally");
        assert!(Config::from_vars(Deployment::Local, &vars(&[("TENANT_ISOLATION", "on")])).is_err());
    }

    #[test]
    fn scope_names_follow_the_issuer() {
        let config = Config::from_vars(Deployment::Local, &vars(&[])).unwrap();
        assert_eq!((config.claims.scope_names.read.as_str(), config.claims.scope_names.write.as_str()), ("plans:read", "plans:write"));
        let cognito = vars(&[("JWT_READ_SCOPE", "healthplan/plans.read"), ("JWT_WRITE_SCOPE", "healthplan/plans.write")]);
        let config = Config::from_vars(Deployment::Local, &cognito).unwrap();
        assert_eq!(config.claims.scope_names.read, "healthplan/plans.read");
        assert_eq!(config.claims.scope_names.name(Scope::PlansWrite), "healthplan/plans.write");
        for bad in
            [vec![("JWT_READ_SCOPE", "a b")], vec![("JWT_READ_SCOPE", "x"), ("JWT_WRITE_SCOPE", "x")], vec![("JWT_WRITE_SCOPE", "a\"b")]]
        {
            assert!(Config::from_vars(Deployment::Local, &vars(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_scopes_need_tenant_isolation() {
        let google = [
            ("JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"),
            ("JWT_ISSUER", "https://accounts.google.com,accounts.google.com"),
            ("JWT_AUDIENCE", "1234567890-abc.apps.googleusercontent.com"),
            ("JWT_DEFAULT_SCOPES", "plans:read plans:write"),
        ];
        let error = Config::from_vars(Deployment::Local, &vars(&google)).unwrap_err();
        assert!(error.to_string().contains("needs ORG_CLAIM"), "{error}");
        let mut isolated = google.to_vec();
        isolated.push(("ORG_CLAIM", "hd"));
        let config = Config::from_vars(Deployment::Local, &vars(&isolated)).unwrap();
        assert_eq!(config.claims.default_scopes, vec![Scope::PlansRead, Scope::PlansWrite]);
        isolated.push(("JWT_DEFAULT_SCOPES", "plans:admin"));
        let error = Config::from_vars(Deployment::Local, &vars(&isolated)).unwrap_err();
        assert!(error.to_string().contains("JWT_DEFAULT_SCOPES"), "{error}");
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
