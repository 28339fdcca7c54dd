//! Reading scopes and the organisation out of verified claims: a token's JSON payload, or the
//! string map API Gateway's JWT authorizer hands to the function (where every value is a string
//! and an array claim arrives flattened, e.g. `"[plans:read plans:write]"`).

use std::collections::{BTreeSet, HashMap};

use plan::Tenant;
use serde_json::{Map, Value};

use super::{ClaimRules, GatewayRules, Scope, TokenRejection};

/// The caller, as the verified claims describe them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `sub`, when the token has one.
    pub subject: Option<String>,
    /// Every scope granted, from `scope` (space separated) and `scp` (string or array).
    pub scopes: BTreeSet<String>,
    /// The organisation named by `ORG_CLAIM`, or unrestricted when isolation is off.
    pub tenant: Tenant,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(scope.as_str())
    }

    pub(crate) fn from_token(claims: &Map<String, Value>, rules: &ClaimRules) -> Self {
        let mut scopes = BTreeSet::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(Value::String(list)) => scopes.extend(list.split_whitespace().map(str::to_owned)),
                Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
                _ => {}
            }
        }
        let claimed = claims.contains_key("scope") || claims.contains_key("scp");
        let org_claim = rules.org_claim.as_deref();
        let org = org_claim.and_then(|claim| claims.get(claim)).and_then(Value::as_str);
        Self {
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            scopes: with_defaults(scopes, claimed, rules),
            tenant: tenant(org_claim, org),
        }
    }

    pub(crate) fn from_gateway(claims: &HashMap<String, String>, authorizer_scopes: &[String], rules: &ClaimRules) -> Self {
        let mut scopes: BTreeSet<String> = authorizer_scopes.iter().cloned().collect();
        for name in ["scope", "scp"] {
            if let Some(value) = claims.get(name) {
                scopes.extend(flattened_list(value));
            }
        }
        let claimed = !authorizer_scopes.is_empty() || claims.contains_key("scope") || claims.contains_key("scp");
        let org_claim = rules.org_claim.as_deref();
        // A flattened array is several organisations, which is none in particular.
        let org = org_claim.and_then(|claim| claims.get(claim)).map(String::as_str).filter(|value| !value.starts_with('['));
        Self { subject: claims.get("sub").cloned(), scopes: with_defaults(scopes, claimed, rules), tenant: tenant(org_claim, org) }
    }
}

/// `JWT_DEFAULT_SCOPES` go to tokens that carry no scope claim at all (Google ID tokens); a token
/// that lists its scopes is never widened.
fn with_defaults(scopes: BTreeSet<String>, claimed: bool, rules: &ClaimRules) -> BTreeSet<String> {
    if claimed {
        canonical_scopes(scopes, &rules.scope_names)
    } else {
        rules.default_scopes.iter().map(|scope| scope.as_str().to_owned()).collect()
    }
}

/// The token's scopes with the issuer's names for ours (`JWT_READ_SCOPE`, `JWT_WRITE_SCOPE`)
/// translated to `plans:read` / `plans:write`. When a name is configured, only that name grants
/// the scope: a literal `plans:read` from the same issuer then means nothing.
pub(crate) fn canonical_scopes(mut scopes: BTreeSet<String>, names: &super::ScopeNames) -> BTreeSet<String> {
    let granted: Vec<Scope> = Scope::ALL.into_iter().filter(|scope| scopes.contains(names.name(*scope))).collect();
    for scope in Scope::ALL {
        if names.name(scope) != scope.as_str() {
            scopes.remove(scope.as_str());
        }
    }
    scopes.extend(granted.into_iter().map(|scope| scope.as_str().to_owned()));
    scopes
}

/// Confined to the organisation when isolation is on and the claim names one; unrestricted when
/// isolation is off. (Isolation on and no organisation is refused by the authenticator.)
fn tenant(org_claim: Option<&str>, org: Option<&str>) -> Tenant {
    match (org_claim, org.filter(|org| !org.trim().is_empty())) {
        (Some(_), Some(org)) => Tenant::org(org),
        _ => Tenant::unrestricted(),
    }
}

/// The items of a claim value as API Gateway passes it: `"a b"`, `"[a b]"` or `"[\"a\",\"b\"]"`.
fn flattened_list(value: &str) -> Vec<String> {
    if let Ok(items) = serde_json::from_str::<Vec<String>>(value) {
        return items;
    }
    let inner = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    inner.split(|c: char| c.is_whitespace() || c == ',').filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// The gateway verified issuer and audience already; this catches a function wired to an
/// authorizer of another issuer or audience than the one it was configured for. Like the gateway,
/// a Cognito access token's `client_id` stands in for `aud`.
pub(crate) fn check_gateway(claims: &HashMap<String, String>, rules: &GatewayRules) -> Result<(), TokenRejection> {
    if !rules.issuers.is_empty() && !claims.get("iss").is_some_and(|iss| rules.issuers.contains(iss)) {
        return Err(TokenRejection::WrongIssuer);
    }
    if !rules.audiences.is_empty() {
        let mut audiences = claims.get("aud").map(|aud| flattened_list(aud)).unwrap_or_default();
        audiences.extend(claims.get("client_id").cloned());
        if !audiences.iter().any(|aud| rules.audiences.contains(aud)) {
            return Err(TokenRejection::WrongAudience);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn strings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn off() -> ClaimRules {
        ClaimRules::default()
    }

    fn hd() -> ClaimRules {
        ClaimRules::isolated_by("hd")
    }

    #[test]
    fn scopes_come_from_scope_or_scp_in_either_form() {
        let principal = Principal::from_token(&map(json!({"scope": "plans:read  other"})), &off());
        assert!(principal.has_scope(Scope::PlansRead) && !principal.has_scope(Scope::PlansWrite));
        let principal = Principal::from_token(&map(json!({"scp": ["plans:write", 7]})), &off());
        assert!(principal.has_scope(Scope::PlansWrite) && !principal.has_scope(Scope::PlansRead));
        let principal = Principal::from_token(&map(json!({"scp": "plans:read plans:write"})), &off());
        assert!(principal.has_scope(Scope::PlansRead) && principal.has_scope(Scope::PlansWrite));
        let principal = Principal::from_token(&map(json!({"scope": ["plans:read"], "scopes": "plans:write"})), &off());
        assert!(principal.has_scope(Scope::PlansRead), "an array under scope is accepted too");
        assert!(!principal.has_scope(Scope::PlansWrite), "only scope and scp count");
        assert!(!Principal::from_token(&map(json!({"scope": "plans:reader"})), &off()).has_scope(Scope::PlansRead), "exact names");
    }

    #[test]
    fn the_org_claim_confines_only_when_configured_and_a_non_empty_string() {
        let claims = map(json!({"hd": "example.com", "sub": "u1"}));
        assert_eq!(Principal::from_token(&claims, &hd()).tenant, Tenant::org("example.com"));
        assert_eq!(Principal::from_token(&claims, &off()).tenant, Tenant::unrestricted());
        assert_eq!(Principal::from_token(&claims, &off()).subject.as_deref(), Some("u1"));
        for bad in [json!({}), json!({"hd": ""}), json!({"hd": ["a.com"]}), json!({"hd": 3})] {
            assert_eq!(Principal::from_token(&map(bad), &hd()).tenant, Tenant::unrestricted());
        }
    }

    #[test]
    fn gateway_claims_are_strings_with_flattened_arrays() {
        let claims = strings(&[("scope", "plans:read plans:write"), ("hd", "example.com"), ("sub", "123")]);
        let principal = Principal::from_gateway(&claims, &[], &hd());
        assert!(principal.has_scope(Scope::PlansRead) && principal.has_scope(Scope::PlansWrite));
        assert_eq!(principal.tenant, Tenant::org("example.com"));
        let principal = Principal::from_gateway(&strings(&[("scp", "[plans:write]")]), &[], &off());
        assert!(principal.has_scope(Scope::PlansWrite));
        let principal = Principal::from_gateway(&strings(&[("scp", r#"["plans:read"]"#)]), &[], &off());
        assert!(principal.has_scope(Scope::PlansRead));
        let principal = Principal::from_gateway(&strings(&[]), &["plans:read".to_owned()], &off());
        assert!(principal.has_scope(Scope::PlansRead), "the authorizer's own scopes list counts");
        let principal = Principal::from_gateway(&strings(&[("hd", "[a.com b.com]")]), &[], &hd());
        assert_eq!(principal.tenant, Tenant::unrestricted(), "several organisations are none");
    }

    #[test]
    fn default_scopes_only_fill_in_for_tokens_without_any_scope_claim() {
        let rules = ClaimRules { org_claim: Some("hd".into()), default_scopes: vec![Scope::PlansRead], ..ClaimRules::default() };
        let google = map(json!({"sub": "1", "hd": "example.com", "email": "a@example.com"}));
        assert!(Principal::from_token(&google, &rules).has_scope(Scope::PlansRead));
        assert!(!Principal::from_token(&google, &rules).has_scope(Scope::PlansWrite));
        assert!(!Principal::from_token(&google, &off()).has_scope(Scope::PlansRead), "no defaults unless configured");
        let narrow = map(json!({"scope": "openid", "hd": "example.com"}));
        assert!(!Principal::from_token(&narrow, &rules).has_scope(Scope::PlansRead), "a listed scope set is never widened");
        let gateway = strings(&[("sub", "1"), ("hd", "example.com")]);
        assert!(Principal::from_gateway(&gateway, &[], &rules).has_scope(Scope::PlansRead));
    }

    #[test]
    fn the_issuers_scope_names_grant_the_scopes_and_only_they_do() {
        let cognito = ClaimRules {
            scope_names: crate::auth::ScopeNames { read: "healthplan/plans.read".into(), write: "healthplan/plans.write".into() },
            ..ClaimRules::default()
        };
        let principal = Principal::from_token(&map(json!({"scope": "healthplan/plans.read", "client_id": "c"})), &cognito);
        assert!(principal.has_scope(Scope::PlansRead) && !principal.has_scope(Scope::PlansWrite));
        let principal = Principal::from_token(&map(json!({"scope": "plans:read plans:write"})), &cognito);
        assert!(!principal.has_scope(Scope::PlansRead) && !principal.has_scope(Scope::PlansWrite), "the plain names mean nothing then");
        let principal = Principal::from_gateway(&strings(&[]), &["healthplan/plans.write".to_owned()], &cognito);
        assert!(principal.has_scope(Scope::PlansWrite), "the authorizer's scopes list, Cognito names");
        let principal = Principal::from_gateway(&strings(&[("scope", "healthplan/plans.read healthplan/plans.write")]), &[], &cognito);
        assert!(principal.has_scope(Scope::PlansRead) && principal.has_scope(Scope::PlansWrite));
    }

    #[test]
    fn gateway_cross_checks_issuer_and_audience_when_configured() {
        let claims = strings(&[("iss", "https://accounts.google.com"), ("aud", "[other client-1]")]);
        assert_eq!(check_gateway(&claims, &GatewayRules::default()), Ok(()));
        let rules = GatewayRules { issuers: vec!["https://accounts.google.com".into()], audiences: vec!["client-1".into()] };
        assert_eq!(check_gateway(&claims, &rules), Ok(()));
        let rules = GatewayRules { issuers: vec!["https://issuer.example".into()], audiences: vec![] };
        assert_eq!(check_gateway(&claims, &rules), Err(TokenRejection::WrongIssuer));
        let rules = GatewayRules { issuers: vec![], audiences: vec!["client-2".into()] };
        assert_eq!(check_gateway(&claims, &rules), Err(TokenRejection::WrongAudience));
        let cognito = strings(&[("client_id", "client-2")]);
        assert_eq!(check_gateway(&cognito, &rules), Ok(()));
    }
}
