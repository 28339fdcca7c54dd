//! How callers are authenticated and what their claims mean, from the environment: the `JWT_*`,
//! `JWKS_URL`, `VERIFY_JWT_IN_FUNCTION`, `LOCAL_KEY_DIR`, `ORG_CLAIM` and `TENANT_ISOLATION`
//! variables, read beside the authenticator they configure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use plan::env::{Deployment, list, parse_bool, parse_or};

use super::{ClaimRules, GatewayRules, JwtRules, Scope, ScopeNames};

/// Everything about authentication a process is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// How the token is verified.
    pub auth: AuthConfig,
    /// What its claims mean: `ORG_CLAIM` (set: tenant isolation on), `JWT_DEFAULT_SCOPES`,
    /// `JWT_READ_SCOPE` / `JWT_WRITE_SCOPE`.
    pub claims: ClaimRules,
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

impl AuthSettings {
    /// The settings, or one message per bad variable.
    pub fn from_vars(deployment: Deployment, vars: &HashMap<String, String>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let var = |name: &str| plan::env::var(vars, name);
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
            Some(auth) if problems.is_empty() => Ok(Self { auth, claims: ClaimRules { org_claim, default_scopes, scope_names } }),
            _ => Err(problems),
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
            let algorithm = algorithms.first().copied().unwrap_or(Algorithm::RS256);
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

#[cfg(test)]
mod tests {
    use plan::env::vars_of as vars;

    use super::*;

    #[test]
    fn unsafe_authentication_settings_are_refused_together() {
        for algorithms in ["HS256", "none", "RS256,HS512", "EdDSA", ""] {
            let result = AuthSettings::from_vars(Deployment::Local, &vars(&[("JWT_ALGORITHMS", algorithms)]));
            assert_eq!(result.is_err(), !algorithms.is_empty(), "JWT_ALGORITHMS={algorithms}");
        }
        let problems = AuthSettings::from_vars(
            Deployment::Lambda,
            &vars(&[
                ("VERIFY_JWT_IN_FUNCTION", "yes please"),
                ("JWT_ALGORITHMS", "HS256"),
                ("JWKS_URL", "http://idp.example/jwks"),
                ("ORG_CLAIM", "my org"),
            ]),
        )
        .unwrap_err();
        for name in ["VERIFY_JWT_IN_FUNCTION", "JWT_ALGORITHMS", "JWKS_URL", "ORG_CLAIM"] {
            assert!(problems.iter().any(|p| p.contains(name)), "{name} missing from {problems:?}");
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
}
