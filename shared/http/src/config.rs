//! Configuration: environment variables only, read once at start into one typed struct.
//! Every missing or malformed variable is reported at once. `.env.example` documents each.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use plan::WritePolicy;
use plan_events::{KafkaAuth, KafkaConfig, Secret, TopicCreation};
use plan_index::OpenSearchConfig;
use plan_store::RedisConfig;

use crate::auth::{GatewayRules, JwtRules, Scope, ScopeNames};

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
    /// cold start with MSK's GetBootstrapBrokers (IAM listener; `aws` feature).
    pub msk_cluster_arn: Option<String>,
    /// Secrets resolved once per cold start from Secrets Manager (`aws` feature), so that no
    /// password sits in the function's environment.
    pub secrets: SecretRefs,
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
    /// `OPENSEARCH_URL` and the other `OPENSEARCH_*` variables (see [`OpenSearchConfig`]): the
    /// search index. Unset: the embedded in-memory index (the search functions on Lambda refuse
    /// to start without it).
    pub opensearch: Option<OpenSearchConfig>,
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
    /// How callers are authenticated: `JWT_ISSUER`, `JWT_AUDIENCE`, `JWKS_URL`, `JWT_ALGORITHMS`,
    /// `VERIFY_JWT_IN_FUNCTION` and `LOCAL_KEY_DIR`.
    pub auth: AuthConfig,
    /// `ORG_CLAIM`: the token claim naming the caller's organisation (Google Workspace: `hd`).
    /// Set: tenant isolation is on. Unset: every authenticated caller sees every plan.
    pub org_claim: Option<String>,
    /// `JWT_DEFAULT_SCOPES`: scopes for tokens without any scope claim (Google ID tokens). Needs
    /// `ORG_CLAIM`, so that it never extends to every account the issuer knows.
    pub default_scopes: Vec<Scope>,
    /// `JWT_READ_SCOPE` / `JWT_WRITE_SCOPE` (default `plans:read` / `plans:write`): the scope
    /// names the issuer writes into tokens (Cognito: `<resource server>/<scope>`).
    pub scope_names: ScopeNames,
}

/// ARNs of Secrets Manager secrets to resolve at cold start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRefs {
    /// `REDIS_AUTH_SECRET_ARN`: the Redis password (a plain AUTH token) or `{"username",
    /// "password"}` of an ElastiCache user, put into every `REDIS_URL`.
    pub redis_auth: Option<String>,
    /// `KAFKA_SASL_SECRET_ARN`: `{"username", "password"}` for `KAFKA_AUTH=scram` (an MSK
    /// `AmazonMSK_` secret).
    pub kafka_sasl: Option<String>,
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Verify bearer tokens in this process: the local server with `JWKS_URL` set, or a function
    /// with `VERIFY_JWT_IN_FUNCTION=true`.
    Verify(JwtConfig),
    /// A function behind API Gateway's JWT authorizer (the Lambda default): it reads the verified
    /// claims from the request context and refuses requests that carry none.
    Gateway(GatewayRules),
    /// The local server without `JWKS_URL`: a development issuer whose key lives in `key_dir`.
    LocalIssuer(LocalIssuerConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub rules: JwtRules,
    pub jwks: JwksLocation,
}

/// `JWKS_URL`: an `https://` URL (`http://` only on loopback), or a file (`file://` URL or path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIssuerConfig {
    /// `LOCAL_KEY_DIR` (default `.local`): where the development signing key is created.
    pub key_dir: PathBuf,
    /// `JWT_ISSUER` (default `plan-local`) and `JWT_AUDIENCE` (default `plan-api`).
    pub issuer: String,
    pub audience: String,
    /// The key's algorithm: the first of `JWT_ALGORITHMS` (RS256 by default).
    pub algorithm: Algorithm,
    pub algorithms: Vec<Algorithm>,
}

/// Issuer and audience of the local development issuer when `JWT_ISSUER` / `JWT_AUDIENCE` are unset.
pub const LOCAL_ISSUER: &str = "plan-local";
pub const LOCAL_AUDIENCE: &str = "plan-api";

/// Algorithms `JWT_ALGORITHMS` may name: asymmetric ones only, so a public key can never serve as
/// an HMAC secret.
const ACCEPTABLE_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

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
        let header_timeout_ms =
            parse_or(var("HEADER_TIMEOUT_MS"), 10_000, "HEADER_TIMEOUT_MS", "milliseconds from 100 to 600000", &mut problems, |v| {
                v.parse::<u64>().ok().filter(|ms| (100..=600_000).contains(ms))
            });
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
        let kafka_sasl_secret = var("KAFKA_SASL_SECRET_ARN").map(str::to_owned);
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
                if kafka_sasl_secret.is_none() && (username.is_empty() || password.0.is_empty()) {
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
        if kafka_sasl_secret.is_some() && auth_name != "scram" {
            problems.push("KAFKA_SASL_SECRET_ARN is only read with KAFKA_AUTH=scram".to_owned());
        }
        let redis_auth_secret = var("REDIS_AUTH_SECRET_ARN").map(str::to_owned);
        let needs_aws = matches!(auth, KafkaAuth::MskIam { .. }) || kafka_sasl_secret.is_some() || redis_auth_secret.is_some();
        if needs_aws && !cfg!(feature = "aws") {
            problems.push(
                "KAFKA_AUTH=iam, MSK_CLUSTER_ARN, KAFKA_SASL_SECRET_ARN and REDIS_AUTH_SECRET_ARN need a build with the `aws` feature"
                    .to_owned(),
            );
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
        });

        let change_events = parse_or(var("CHANGE_EVENTS"), true, "CHANGE_EVENTS", "on or off", &mut problems, |v| match v {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        });
        if !change_events && kafka.is_some() {
            problems.push("CHANGE_EVENTS=off contradicts KAFKA_BOOTSTRAP_SERVERS / MSK_CLUSTER_ARN".to_owned());
        }

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

        let opensearch = OpenSearchConfig::from_vars(vars).unwrap_or_else(|more| {
            problems.extend(more);
            None
        });
        let org_claim = var("ORG_CLAIM").map(str::to_owned);
        if org_claim.as_ref().is_some_and(|claim| claim.len() > 256 || claim.chars().any(|c| c.is_whitespace() || c.is_control())) {
            problems.push("ORG_CLAIM: a claim name, without spaces".to_owned());
        }
        // A deployed function never serves every organisation by omission: isolation is
        // configured (ORG_CLAIM) or explicitly switched off (TENANT_ISOLATION=off).
        let isolation = var("TENANT_ISOLATION");
        let isolation_off = match isolation {
            None | Some("on") => false,
            Some("off") => true,
            Some(other) => {
                problems.push(format!("TENANT_ISOLATION: expected on or off, got {other:?}"));
                false
            }
        };
        match (isolation_off, org_claim.is_some()) {
            (true, true) => problems.push("TENANT_ISOLATION=off contradicts ORG_CLAIM; set one of them".to_owned()),
            (false, false) if deployment == Deployment::Lambda || isolation == Some("on") => problems.push(
                "ORG_CLAIM is required (the claim naming the caller's organisation), or TENANT_ISOLATION=off to let every caller see every organisation's plans"
                    .to_owned(),
            ),
            _ => {}
        }
        let scope_names = ScopeNames {
            read: var("JWT_READ_SCOPE").unwrap_or(Scope::PlansRead.as_str()).to_owned(),
            write: var("JWT_WRITE_SCOPE").unwrap_or(Scope::PlansWrite.as_str()).to_owned(),
        };
        for (name, value) in [("JWT_READ_SCOPE", &scope_names.read), ("JWT_WRITE_SCOPE", &scope_names.write)] {
            if value.len() > 256 || value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\') {
                problems.push(format!("{name}: one scope name, without spaces or quotes"));
            }
        }
        if scope_names.read == scope_names.write {
            problems.push("JWT_READ_SCOPE and JWT_WRITE_SCOPE must differ (neither implies the other)".to_owned());
        }
        let default_scopes =
            parse_or(var("JWT_DEFAULT_SCOPES"), Vec::new(), "JWT_DEFAULT_SCOPES", "plans:read and/or plans:write", &mut problems, |raw| {
                list(raw).iter().map(|name| Scope::parse(name)).collect()
            });
        if !default_scopes.is_empty() && org_claim.is_none() {
            problems.push(
                "JWT_DEFAULT_SCOPES needs ORG_CLAIM: without tenant isolation it would grant these scopes to every account of the issuer"
                    .to_owned(),
            );
        }
        let auth = auth_config(deployment, &var, &mut problems);

        match auth {
            Some(auth) if problems.is_empty() => Ok(Self {
                redis,
                opensearch,
                kafka,
                msk_cluster_arn,
                secrets: SecretRefs { redis_auth: redis_auth_secret, kafka_sasl: kafka_sasl_secret },
                change_events,
                topic,
                dead_letter_topic,
                replication_factor,
                write_policy: WritePolicy { require_if_match },
                host,
                port,
                header_timeout: Duration::from_millis(header_timeout_ms),
                metrics_namespace,
                metrics_addr,
                auth,
                org_claim,
                default_scopes,
                scope_names,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

fn auth_config<'a>(deployment: Deployment, var: &impl Fn(&str) -> Option<&'a str>, problems: &mut Vec<String>) -> Option<AuthConfig> {
    let expected = "a comma-separated list of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384";
    let algorithms = parse_or(var("JWT_ALGORITHMS"), vec![Algorithm::RS256], "JWT_ALGORITHMS", expected, problems, |raw| {
        let algorithms: Option<Vec<Algorithm>> =
            list(raw).iter().map(|name| name.parse().ok().filter(|alg| ACCEPTABLE_ALGORITHMS.contains(alg))).collect();
        algorithms.filter(|algorithms| !algorithms.is_empty())
    });
    let verify_in_function =
        parse_or(var("VERIFY_JWT_IN_FUNCTION"), None, "VERIFY_JWT_IN_FUNCTION", "true or false", problems, |v| parse_bool(v).map(Some));
    // `sam local` (which sets AWS_SAM_LOCAL) runs no JWT authorizer: there the functions verify
    // bearer tokens themselves unless VERIFY_JWT_IN_FUNCTION=false says otherwise (`sam local
    // invoke` with the API Gateway events of events/, which carry authorizer claims), and may
    // fetch the JWKS over plain HTTP from another container of the compose network.
    let sam_local = deployment == Deployment::Lambda && var("AWS_SAM_LOCAL").is_some_and(|v| parse_bool(v) == Some(true));
    let verify_in_function = verify_in_function.unwrap_or(sam_local);
    let issuers = var("JWT_ISSUER").map(list).unwrap_or_default();
    let audiences = var("JWT_AUDIENCE").map(list).unwrap_or_default();
    let jwks = var("JWKS_URL").and_then(|raw| {
        let location = jwks_location(raw, sam_local);
        if location.is_none() {
            problems
                .push(format!("JWKS_URL: expected an https:// URL (http:// only on loopback), a file:// URL or a file path, got {raw:?}"));
        }
        location
    });

    let verify = |why: &str, problems: &mut Vec<String>| {
        for (name, missing) in [("JWT_ISSUER", issuers.is_empty()), ("JWT_AUDIENCE", audiences.is_empty()), ("JWKS_URL", jwks.is_none())] {
            if missing && (name != "JWKS_URL" || var("JWKS_URL").is_none()) {
                problems.push(format!("{name} is required {why}"));
            }
        }
        let rules = JwtRules { issuers: issuers.clone(), audiences: audiences.clone(), algorithms: algorithms.clone() };
        jwks.clone().map(|jwks| AuthConfig::Verify(JwtConfig { rules, jwks }))
    };

    match deployment {
        Deployment::Lambda if verify_in_function => verify(
            if sam_local { "under sam local (AWS_SAM_LOCAL), which runs no JWT authorizer" } else { "when VERIFY_JWT_IN_FUNCTION=true" },
            problems,
        ),
        Deployment::Lambda => {
            // The authorizer verified the token; the function checks that it was this API's
            // issuer and audience, so a route wired to another authorizer is refused.
            for (name, missing) in [("JWT_ISSUER", issuers.is_empty()), ("JWT_AUDIENCE", audiences.is_empty())] {
                if missing {
                    problems.push(format!("{name} is required on Lambda (checked against the authorizer's claims)"));
                }
            }
            Some(AuthConfig::Gateway(GatewayRules { issuers, audiences }))
        }
        Deployment::Local if var("JWKS_URL").is_some() => verify("when JWKS_URL is set", problems),
        Deployment::Local => {
            let algorithm = algorithms[0];
            if !matches!(algorithm, Algorithm::RS256 | Algorithm::ES256) {
                problems.push("JWT_ALGORITHMS: the local development issuer signs with RS256 or ES256; list one of them first".to_owned());
            }
            Some(AuthConfig::LocalIssuer(LocalIssuerConfig {
                key_dir: PathBuf::from(var("LOCAL_KEY_DIR").unwrap_or(".local")),
                issuer: issuers.first().map_or(LOCAL_ISSUER, String::as_str).to_owned(),
                audience: audiences.first().map_or(LOCAL_AUDIENCE, String::as_str).to_owned(),
                algorithm,
                algorithms,
            }))
        }
    }
}

/// Items of a comma- (or space-) separated list.
fn list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

fn jwks_location(raw: &str, any_http_host: bool) -> Option<JwksLocation> {
    let Some((scheme, _)) = raw.split_once("://") else {
        return Some(JwksLocation::File(PathBuf::from(raw)));
    };
    let url = reqwest::Url::parse(raw).ok()?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" if url.host().is_some() => Some(JwksLocation::Url(raw.to_owned())),
        // Plain HTTP could be tampered with on the way; only the machine itself is trusted.
        "http" => {
            let host = url.host_str()?;
            let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
            let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback());
            (loopback || any_http_host).then(|| JwksLocation::Url(raw.to_owned()))
        }
        "file" => url.to_file_path().ok().map(JwksLocation::File),
        _ => None,
    }
}

impl Config {
    /// Once per cold start: the brokers of `MSK_CLUSTER_ARN` when no bootstrap servers were given,
    /// and the secrets of [`SecretRefs`] (Redis password, SCRAM credentials) from Secrets Manager.
    #[cfg(feature = "aws")]
    pub async fn resolve_aws(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use plan_events::aws::{credentials_from_secret, secret_string};
        if let (Some(kafka), Some(arn)) = (self.kafka.as_mut(), self.msk_cluster_arn.as_deref())
            && kafka.bootstrap_servers.is_empty()
        {
            kafka.bootstrap_servers = plan_events::msk::bootstrap_brokers(arn).await?;
        }
        if let (Some(kafka), Some(arn)) = (self.kafka.as_mut(), self.secrets.kafka_sasl.as_deref()) {
            let (username, password) = credentials_from_secret(&secret_string(arn).await?);
            let username = username.ok_or("KAFKA_SASL_SECRET_ARN: the secret has no username")?;
            kafka.auth = KafkaAuth::ScramSha512 { username, password: Secret(password) };
        }
        if let (Some(redis), Some(arn)) = (self.redis.as_mut(), self.secrets.redis_auth.as_deref()) {
            let (username, password) = credentials_from_secret(&secret_string(arn).await?);
            redis.urls = with_credentials(&redis.urls, username.as_deref(), &password)?;
        }
        Ok(())
    }
}

/// Each Redis URL with this username (if any) and password in its user information.
pub fn with_credentials(urls: &[String], username: Option<&str>, password: &str) -> Result<Vec<String>, String> {
    urls.iter()
        .map(|raw| {
            let mut url = reqwest::Url::parse(raw).map_err(|e| format!("REDIS_URL: {e}"))?;
            url.set_username(username.unwrap_or_default()).map_err(|()| "REDIS_URL: cannot carry a username")?;
            url.set_password(Some(password)).map_err(|()| "REDIS_URL: cannot carry a password")?;
            Ok(url.to_string())
        })
        .collect()
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
        assert_eq!(config.org_claim, None, "isolation is off unless ORG_CLAIM is set");

        let config = Config::from_vars(
            Deployment::Local,
            &vars(&[("JWT_ALGORITHMS", "ES256"), ("LOCAL_KEY_DIR", "/tmp/keys"), ("ORG_CLAIM", "hd")]),
        )
        .unwrap();
        let AuthConfig::LocalIssuer(local) = &config.auth else { panic!("{:?}", config.auth) };
        assert_eq!((local.algorithm, local.key_dir.to_str()), (Algorithm::ES256, Some("/tmp/keys")));
        assert_eq!(config.org_claim.as_deref(), Some("hd"));
        assert!(config.default_scopes.is_empty());

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
        assert_eq!(with(&[("ORG_CLAIM", "custom:org")]).unwrap().org_claim.as_deref(), Some("custom:org"));
        assert_eq!(with(&[("TENANT_ISOLATION", "off")]).unwrap().org_claim, None);
        assert!(with(&[("TENANT_ISOLATION", "off"), ("ORG_CLAIM", "hd")]).is_err(), "contradiction");
        assert!(with(&[("TENANT_ISOLATION", "maybe"), ("ORG_CLAIM", "hd")]).is_err());
        assert!(with(&[("TENANT_ISOLATION", "on")]).is_err());
        assert!(Config::from_vars(Deployment::Local, &vars(&[])).unwrap().org_claim.is_none(), "off by default locally");
        assert!(Config::from_vars(Deployment::Local, &vars(&[("TENANT_ISOLATION", "on")])).is_err());
    }

    #[test]
    fn scope_names_follow_the_issuer() {
        let config = Config::from_vars(Deployment::Local, &vars(&[])).unwrap();
        assert_eq!((config.scope_names.read.as_str(), config.scope_names.write.as_str()), ("plans:read", "plans:write"));
        let cognito = vars(&[("JWT_READ_SCOPE", "healthplan/plans.read"), ("JWT_WRITE_SCOPE", "healthplan/plans.write")]);
        let config = Config::from_vars(Deployment::Local, &cognito).unwrap();
        assert_eq!(config.scope_names.read, "healthplan/plans.read");
        assert_eq!(config.scope_names.name(Scope::PlansWrite), "healthplan/plans.write");
        for bad in
            [vec![("JWT_READ_SCOPE", "a b")], vec![("JWT_READ_SCOPE", "x"), ("JWT_WRITE_SCOPE", "x")], vec![("JWT_WRITE_SCOPE", "a\"b")]]
        {
            assert!(Config::from_vars(Deployment::Local, &vars(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kafka_auth_modes_and_topic_creation() {
        let kafka = |extra: &[(&str, &str)], deployment| {
            let mut all = vec![("KAFKA_BOOTSTRAP_SERVERS", "b-1:9096"), ("REDIS_URL", "rediss://cache:6379")];
            if deployment == Deployment::Lambda {
                all.extend_from_slice(&LAMBDA_AUTH);
            }
            all.extend_from_slice(extra);
            Config::from_vars(deployment, &vars(&all)).map(|c| c.kafka.unwrap())
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
        assert_eq!(from_secret.is_ok(), cfg!(feature = "aws"), "secrets are resolved by the aws feature");
        assert!(kafka(&[("KAFKA_AUTH", "kerberos")], Deployment::Local).is_err());
        let iam = kafka(&[("KAFKA_AUTH", "iam"), ("AWS_REGION", "eu-west-1")], Deployment::Local);
        assert_eq!(iam.is_ok(), cfg!(feature = "aws"));
    }

    #[test]
    fn redis_credentials_go_into_every_url() {
        let urls = vec!["rediss://cache-a:6379".to_owned(), "rediss://cache-b:6379".to_owned()];
        assert_eq!(
            with_credentials(&urls, None, "t0k/en").unwrap(),
            vec!["rediss://:t0k%2Fen@cache-a:6379", "rediss://:t0k%2Fen@cache-b:6379"]
        );
        assert_eq!(with_credentials(&urls[..1], Some("plans"), "pw").unwrap(), vec!["rediss://plans:pw@cache-a:6379"]);
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
        assert_eq!(config.default_scopes, vec![Scope::PlansRead, Scope::PlansWrite]);
        isolated.push(("JWT_DEFAULT_SCOPES", "plans:admin"));
        let error = Config::from_vars(Deployment::Local, &vars(&isolated)).unwrap_err();
        assert!(error.to_string().contains("JWT_DEFAULT_SCOPES"), "{error}");
    }

    #[test]
    fn unsafe_authentication_settings_are_refused_together() {
        for algorithms in ["HS256", "none", "RS256,HS512", "EdDSA", ""] {
            let result = Config::from_vars(Deployment::Local, &vars(&[("JWT_ALGORITHMS", algorithms)]));
            assert_eq!(result.is_err(), !algorithms.is_empty(), "JWT_ALGORITHMS={algorithms}");
        }
        let error = Config::from_vars(
            Deployment::Lambda,
            &vars(&[
                ("VERIFY_JWT_IN_FUNCTION", "yes please"),
                ("JWT_ALGORITHMS", "HS256"),
                ("JWKS_URL", "http://idp.example/jwks"),
                ("ORG_CLAIM", "my org"),
                ("REDIS_URL", "redis://cache:6379"),
            ]),
        )
        .unwrap_err();
        for name in ["VERIFY_JWT_IN_FUNCTION", "JWT_ALGORITHMS", "JWKS_URL", "ORG_CLAIM"] {
            assert!(error.to_string().contains(name), "{name} missing from {error}");
        }
        for (url, ok) in [
            ("http://127.0.0.1:3000/.well-known/jwks.json", true),
            ("http://localhost/jwks", true),
            ("http://[::1]:8080/jwks", true),
            ("http://10.0.0.1/jwks", false),
            ("ftp://idp/jwks", false),
            ("https://", false),
            ("/etc/jwks.json", true),
        ] {
            assert_eq!(jwks_location(url, false).is_some(), ok, "{url}");
        }
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
