//! The authenticator without a socket: every way a token can be wrong, the header rules, and the
//! Lambda path where API Gateway's JWT authorizer already verified the token (requests built from
//! HTTP API v2 events, as the runtime builds them, and sent through the function's router).

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use plan::{PlanReads, PlanWrites, Tenant, WritePolicy};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::Api;

const ISS: &str = "https://issuer.unit.test";
const AUD: &str = "plan-api";

static RSA: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate(ISS, AUD, Algorithm::RS256).unwrap());
static EC: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate(ISS, AUD, Algorithm::ES256).unwrap());
/// Same issuer name, but a key the JWKS does not have.
static STRANGER: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate(ISS, AUD, Algorithm::RS256).unwrap());

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Valid claims (both scopes, organisation example.com), with `changes` applied (null removes).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": ISS, "aud": AUD, "sub": "user-1", "iat": now(), "nbf": now(), "exp": now() + 600,
        "scope": "plans:read plans:write", "hd": "example.com"
    });
    for (name, value) in changes.as_object().cloned().unwrap_or_default() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(&name),
            value => claims.as_object_mut().unwrap().insert(name, value),
        };
    }
    claims
}

fn authenticator(algorithms: &[Algorithm], org_claim: Option<&str>) -> Authenticator {
    let jwks = JwkSet { keys: vec![RSA.jwks().keys[0].clone(), EC.jwks().keys[0].clone()] };
    let rules =
        JwtRules { issuers: vec![ISS.into(), "accounts.example".into()], audiences: vec![AUD.into()], algorithms: algorithms.to_vec() };
    let claims = ClaimRules { org_claim: org_claim.map(str::to_owned), ..ClaimRules::default() };
    Authenticator::verifying(JwtVerifier::new(Arc::new(JwksCache::preloaded(&jwks)), &rules), claims)
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    headers
}

async fn check(auth: &Authenticator, token: &str, scope: Scope) -> Result<Principal, AuthError> {
    auth.authorize(&bearer(token), &Extensions::new(), scope).await
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with this header and payload, keeping the signature of `signed`.
fn resigned(header: &Value, payload: &Value, signed: &str) -> String {
    let signature = signed.rsplit('.').next().unwrap();
    format!("{}.{}.{signature}", b64(header), b64(payload))
}

#[tokio::test]
async fn valid_tokens_pass_with_their_scopes_and_organisation() {
    let auth = authenticator(&[Algorithm::RS256], Some("hd"));
    let principal = check(&auth, &RSA.sign(&claims(json!({}))).unwrap(), Scope::PlansWrite).await.unwrap();
    assert_eq!(principal.tenant, Tenant::org("example.com"));
    assert_eq!(principal.subject.as_deref(), Some("user-1"));

    let read_only = RSA.sign(&claims(json!({"scope": "plans:read"}))).unwrap();
    assert!(check(&auth, &read_only, Scope::PlansRead).await.is_ok());
    assert_eq!(check(&auth, &read_only, Scope::PlansWrite).await.unwrap_err(), AuthError::InsufficientScope("plans:write".into()));
    let write_only = RSA.sign(&claims(json!({"scope": null, "scp": ["plans:write"]}))).unwrap();
    assert_eq!(check(&auth, &write_only, Scope::PlansRead).await.unwrap_err(), AuthError::InsufficientScope("plans:read".into()));
    let no_scope = RSA.sign(&claims(json!({"scope": null}))).unwrap();
    assert_eq!(check(&auth, &no_scope, Scope::PlansRead).await.unwrap_err(), AuthError::InsufficientScope("plans:read".into()));

    // With the issuer's own names (Cognito's `<resource server>/<scope>`), the refusal and its
    // challenge name the scope as the issuer spells it: what the caller must ask the issuer for.
    let jwks = JwkSet { keys: vec![RSA.jwks().keys[0].clone()] };
    let rules = JwtRules { issuers: vec![ISS.into()], audiences: vec![AUD.into()], algorithms: vec![Algorithm::RS256] };
    let names = ScopeNames { read: "healthplan/plans.read".into(), write: "healthplan/plans.write".into() };
    let cognito = Authenticator::verifying(
        JwtVerifier::new(Arc::new(JwksCache::preloaded(&jwks)), &rules),
        ClaimRules { scope_names: names, ..ClaimRules::default() },
    );
    let cognito_read = RSA.sign(&claims(json!({"scope": "healthplan/plans.read"}))).unwrap();
    assert!(check(&cognito, &cognito_read, Scope::PlansRead).await.is_ok());
    let refusal = check(&cognito, &cognito_read, Scope::PlansWrite).await.unwrap_err();
    assert_eq!(refusal, AuthError::InsufficientScope("healthplan/plans.write".into()));
    let problem = crate::problem::ApiError::Auth(refusal).problem();
    let challenge = problem.headers.iter().find(|(name, _)| name == header::WWW_AUTHENTICATE).expect("a challenge").1.to_str().unwrap();
    assert!(challenge.contains(r#"scope="healthplan/plans.write""#), "{challenge}");
    let no_org = RSA.sign(&claims(json!({"hd": null}))).unwrap();
    assert_eq!(check(&auth, &no_org, Scope::PlansRead).await.unwrap_err(), AuthError::NoOrganisation("hd".into()));
    let isolation_off = authenticator(&[Algorithm::RS256], None);
    assert_eq!(check(&isolation_off, &no_org, Scope::PlansRead).await.unwrap().tenant, Tenant::unrestricted());
    assert_eq!(
        check(&isolation_off, &RSA.sign(&claims(json!({}))).unwrap(), Scope::PlansRead).await.unwrap().tenant,
        Tenant::unrestricted()
    );

    let aud_list = RSA.sign(&claims(json!({"aud": ["another-api", AUD], "iss": "accounts.example"}))).unwrap();
    assert!(check(&auth, &aud_list, Scope::PlansRead).await.is_ok(), "aud may be a list; several issuers may be trusted");
}

#[tokio::test]
async fn every_attack_is_refused_for_its_own_reason() {
    use TokenRejection as R;
    let auth = authenticator(&[Algorithm::RS256], Some("hd"));
    let valid = RSA.sign(&claims(json!({"scope": "plans:read"}))).unwrap();
    let kid = RSA.kid();
    let rsa_jwk = RSA.jwks().keys[0].clone();

    let mut attacks: Vec<(&str, String, TokenRejection)> = vec![
        ("garbage", "not-a-jwt".into(), R::Malformed),
        ("three dots of nothing", "a.b.c".into(), R::Malformed),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})), b64(&claims(json!({})))), R::Malformed),
        ("alg None", format!("{}.{}.", b64(&json!({"alg": "None", "kid": kid})), b64(&claims(json!({})))), R::Malformed),
        (
            "payload tampered (scope raised)",
            resigned(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &claims(json!({})), &valid),
            R::BadSignature,
        ),
        ("expired beyond the skew", RSA.sign(&claims(json!({"exp": now() - CLOCK_SKEW_SECONDS - 30}))).unwrap(), R::Expired),
        ("not yet valid beyond the skew", RSA.sign(&claims(json!({"nbf": now() + CLOCK_SKEW_SECONDS + 30}))).unwrap(), R::NotYetValid),
        ("wrong issuer", RSA.sign(&claims(json!({"iss": "https://evil.example"}))).unwrap(), R::WrongIssuer),
        ("wrong audience", RSA.sign(&claims(json!({"aud": "another-api"}))).unwrap(), R::WrongAudience),
        ("no audience", RSA.sign(&claims(json!({"aud": null}))).unwrap(), R::MissingClaim),
        ("no issuer", RSA.sign(&claims(json!({"iss": null}))).unwrap(), R::MissingClaim),
        ("no expiry", RSA.sign(&claims(json!({"exp": null}))).unwrap(), R::MissingClaim),
        ("unknown kid", STRANGER.sign(&claims(json!({}))).unwrap(), R::UnknownKey),
        ("known kid, other key", STRANGER.sign_as(kid, &claims(json!({}))).unwrap(), R::BadSignature),
        ("no kid", resigned(&json!({"alg": "RS256"}), &claims(json!({"scope": "plans:read"})), &valid), R::NoKeyId),
        ("ES256 when only RS256 is accepted", EC.sign(&claims(json!({}))).unwrap(), R::AlgorithmNotAccepted),
        (
            "RS512 header on an RS256 token",
            resigned(&json!({"alg": "RS512", "kid": kid}), &claims(json!({})), &valid),
            R::AlgorithmNotAccepted,
        ),
    ];
    // HS256 with the issuer's public key as the HMAC secret, in the forms an attacker would try.
    let AlgorithmParameters::RSA(rsa) = &rsa_jwk.algorithm else { panic!("an RSA key") };
    let public_key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&rsa.n).unwrap()),
        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&rsa.e).unwrap()),
    )
    .unwrap();
    let pem = rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public_key, rsa::pkcs8::LineEnding::LF).unwrap();
    let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(&public_key, rsa::pkcs8::LineEnding::LF).unwrap();
    let jwk_json = serde_json::to_vec(&rsa_jwk).unwrap();
    for secret in [pem.as_bytes(), pkcs1.as_bytes(), &jwk_json] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims(json!({})), &EncodingKey::from_secret(secret)).unwrap();
        attacks.push(("HS256 signed with the public key", token, R::AlgorithmNotAccepted));
    }

    for (attack, token, reason) in attacks {
        let refused = check(&auth, &token, Scope::PlansRead).await;
        assert_eq!(refused.unwrap_err(), AuthError::InvalidToken(reason), "{attack}");
    }
}

#[tokio::test]
async fn sixty_seconds_of_skew_are_tolerated_on_exp_and_nbf() {
    let auth = authenticator(&[Algorithm::RS256], None);
    for changes in [json!({"exp": now() - 30}), json!({"nbf": now() + 30}), json!({"nbf": null, "iat": null})] {
        let token = RSA.sign(&claims(changes.clone())).unwrap();
        assert!(check(&auth, &token, Scope::PlansRead).await.is_ok(), "{changes}");
    }
}

#[tokio::test]
async fn algorithms_come_from_configuration_and_must_fit_the_key() {
    let both = authenticator(&[Algorithm::RS256, Algorithm::ES256], None);
    assert!(check(&both, &EC.sign(&claims(json!({}))).unwrap(), Scope::PlansRead).await.is_ok(), "ES256 when configured");
    assert!(check(&both, &RSA.sign(&claims(json!({}))).unwrap(), Scope::PlansRead).await.is_ok());
    let es_only = authenticator(&[Algorithm::ES256], None);
    let refused = check(&es_only, &RSA.sign(&claims(json!({}))).unwrap(), Scope::PlansRead).await;
    assert_eq!(refused.unwrap_err(), AuthError::InvalidToken(TokenRejection::AlgorithmNotAccepted));
    // An ES256 token naming the RSA key, and a PS256 header on the RSA key that pins RS256.
    let ec_on_rsa_kid = EC.sign_as(RSA.kid(), &claims(json!({}))).unwrap();
    assert_eq!(
        check(&both, &ec_on_rsa_kid, Scope::PlansRead).await.unwrap_err(),
        AuthError::InvalidToken(TokenRejection::AlgorithmNotAccepted)
    );
    let rsa_and_pss = authenticator(&[Algorithm::RS256, Algorithm::PS256], None);
    let valid = RSA.sign(&claims(json!({}))).unwrap();
    let pss = resigned(&json!({"alg": "PS256", "kid": RSA.kid()}), &claims(json!({})), &valid);
    assert_eq!(
        check(&rsa_and_pss, &pss, Scope::PlansRead).await.unwrap_err(),
        AuthError::InvalidToken(TokenRejection::AlgorithmNotAccepted)
    );
}

#[tokio::test]
async fn the_token_comes_from_exactly_one_authorization_header() {
    let auth = authenticator(&[Algorithm::RS256], None);
    let token = RSA.sign(&claims(json!({}))).unwrap();
    let header_of = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    };
    let cases = [
        (header_of(&[]), Err(TokenRejection::Missing)),
        (header_of(&[&format!("Basic {token}")]), Err(TokenRejection::Missing)),
        (header_of(&["Bearer"]), Err(TokenRejection::Missing)),
        (header_of(&["Bearer "]), Err(TokenRejection::Malformed)),
        (header_of(&[&format!("Bearer {token}"), &format!("Bearer {token}")]), Err(TokenRejection::Malformed)),
        (header_of(&[&format!("Bearer {token} extra")]), Err(TokenRejection::Malformed)),
        (header_of(&[&format!("Bearer {}", "a".repeat(9000))]), Err(TokenRejection::Malformed)),
        (header_of(&[&format!("bearer {token}")]), Ok(())),
        (header_of(&[&format!("BEARER  {token}")]), Ok(())),
    ];
    for (headers, expected) in cases {
        let outcome = auth.authorize(&headers, &Extensions::new(), Scope::PlansRead).await.map(|_| ());
        assert_eq!(outcome, expected.map_err(AuthError::InvalidToken), "{headers:?}");
    }
}

#[tokio::test]
async fn nothing_configured_refuses_everything() {
    let refused = check(&Authenticator::refuse_all(), &RSA.sign(&claims(json!({}))).unwrap(), Scope::PlansRead).await;
    assert_eq!(refused.unwrap_err(), AuthError::InvalidToken(TokenRejection::NotConfigured));
}

// ---- Lambda behind API Gateway's JWT authorizer -------------------------------------------------

fn sample_plan() -> Value {
    serde_json::from_str(include_str!("../../../../examples/plan.json")).unwrap()
}

/// Verified claims as API Gateway passes them: every value a string.
fn gateway_claims(org: &str, scope: &str) -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": "1234567890-abc.apps.googleusercontent.com",
        "azp": "1234567890-abc.apps.googleusercontent.com",
        "sub": "110169484474386276334",
        "email": "dev@example.com",
        "email_verified": "true",
        "hd": org,
        "scope": scope,
        "iat": "1767222000",
        "exp": "1767225600"
    })
}

/// An HTTP API (payload 2.0) event for `method path`, with the authorizer block when `claims` is
/// given, turned into a request the way lambda_http does.
fn event(method: &str, path: &str, claims: Option<Value>, body: Option<&Value>) -> axum::http::Request<lambda_http::Body> {
    let route_key = if path == "/v1/plan" { format!("{method} /v1/plan") } else { format!("{method} /v1/plan/{{id}}") };
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "a1b2c3d4e5",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": route_key,
        "stage": "$default",
        "time": "01/Jan/2026:00:00:00 +0000",
        "timeEpoch": 1767225600000_u64
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            // Already verified by the gateway; the function must not need (or trust) it.
            "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
        },
        "requestContext": context,
        "isBase64Encoded": false
    });
    if let Some(id) = path.strip_prefix("/v1/plan/") {
        event["pathParameters"] = json!({"id": id});
    }
    if let Some(body) = body {
        event["headers"]["content-type"] = json!("application/json");
        event["body"] = json!(body.to_string());
    }
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// Accepts every change event (these tests look at the answers only).
struct Accepting;

#[async_trait::async_trait]
impl ChangePublisher for Accepting {
    async fn publish(&self, _event: &ChangeEvent) -> Result<(), PublishError> {
        Ok(())
    }
}

/// The plan functions behind the gateway's authorizer, on an embedded store.
fn function(rules: GatewayRules) -> axum::Router {
    let store = Arc::new(plan_store::EmbeddedStore::new());
    let reads = PlanReads::new(store.clone());
    let writes = PlanWrites::new(store, Arc::new(Accepting), WritePolicy::default());
    Api::new(Authenticator::gateway(rules, ClaimRules::isolated_by("hd")))
        .create_plan(writes.clone())
        .get_plan(reads.clone())
        .list_plans(reads)
        .delete_plan(writes)
        .into_router()
}

async fn send(router: &axum::Router, request: axum::http::Request<lambda_http::Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), usize::MAX).await.unwrap();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn authorizer_claims_give_scopes_and_organisation() {
    let function = function(GatewayRules::default());
    let plan = sample_plan();
    let id = plan["objectId"].as_str().unwrap();
    let path = format!("/v1/plan/{id}");
    let both = || Some(gateway_claims("example.com", "plans:read plans:write"));

    let (status, _, _) = send(&function, event("POST", "/v1/plan", both(), Some(&plan))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = send(&function, event("GET", &path, both(), None)).await;
    assert_eq!((status, body), (StatusCode::OK, plan.clone()));
    let (status, _, body) = send(&function, event("GET", "/v1/plan", both(), None)).await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (StatusCode::OK, 1));

    // Another organisation: the plan does not exist for it, and it cannot write into ours.
    let other = || Some(gateway_claims("other.example", "plans:read plans:write"));
    let (status, _, problem) = send(&function, event("GET", &path, other(), None)).await;
    assert_eq!((status, problem["type"].as_str().unwrap()), (StatusCode::NOT_FOUND, "https://healthplan.dev/problems/not-found"));
    let (status, _, body) = send(&function, event("GET", "/v1/plan", other(), None)).await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (StatusCode::OK, 0));
    let mut foreign = plan.clone();
    foreign["objectId"] = json!("foreign-plan-1");
    let (status, _, problem) = send(&function, event("POST", "/v1/plan", other(), Some(&foreign))).await;
    assert_eq!((status, problem["type"].as_str().unwrap()), (StatusCode::FORBIDDEN, "https://healthplan.dev/problems/foreign-org"));
    let mut delete = event("DELETE", &path, other(), None);
    delete.headers_mut().insert(header::IF_MATCH, HeaderValue::from_static("*"));
    assert_eq!(send(&function, delete).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(&function, event("GET", &path, both(), None)).await.0, StatusCode::OK, "still there");

    // Scopes: flattened arrays under scp count; a read-only caller cannot write.
    let scp = Some(json!({"iss": "https://issuer.example", "sub": "s", "hd": "example.com", "scp": "[plans:read]"}));
    assert_eq!(send(&function, event("GET", &path, scp, None)).await.0, StatusCode::OK);
    let read_only = Some(gateway_claims("example.com", "plans:read"));
    let (status, headers, problem) = send(&function, event("DELETE", &path, read_only, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "https://healthplan.dev/problems/insufficient-scope");
    let challenge = headers.get(header::WWW_AUTHENTICATE).unwrap().to_str().unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#) && challenge.contains(r#"scope="plans:write""#), "{challenge}");
    // Claims without the organisation claim, while isolation is on.
    let mut no_org = gateway_claims("example.com", "plans:read");
    no_org.as_object_mut().unwrap().remove("hd");
    let (status, _, problem) = send(&function, event("GET", &path, Some(no_org), None)).await;
    assert_eq!((status, problem["type"].as_str().unwrap()), (StatusCode::FORBIDDEN, "https://healthplan.dev/problems/no-organisation"));
}

#[tokio::test]
async fn without_authorizer_claims_a_function_refuses_even_a_valid_looking_token() {
    let function = function(GatewayRules::default());
    let plan = sample_plan();
    // An event that did not go through the authorizer (a function URL, a direct invoke).
    let (status, headers, problem) = send(&function, event("POST", "/v1/plan", None, Some(&plan))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["type"], "https://healthplan.dev/problems/invalid-token");
    assert!(headers.get(header::WWW_AUTHENTICATE).unwrap().to_str().unwrap().contains(r#"error="invalid_token""#));
    // A request with no Lambda context at all, carrying a token this process cannot have verified.
    let token = RSA.sign(&claims(json!({}))).unwrap();
    let request =
        axum::http::Request::get("/v1/plan").header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap();
    assert_eq!(function.clone().oneshot(request).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Health and schema stay public.
    let health = Api::new(Authenticator::gateway(GatewayRules::default(), ClaimRules::default())).health(Vec::new()).into_router();
    let health = health.oneshot(axum::http::Request::get("/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn configured_issuer_and_audience_are_cross_checked_against_the_authorizer() {
    let rules = GatewayRules {
        issuers: vec!["https://accounts.google.com".into()],
        audiences: vec!["1234567890-abc.apps.googleusercontent.com".into()],
    };
    let function = function(rules);
    let claims = gateway_claims("example.com", "plans:read");
    assert_eq!(send(&function, event("GET", "/v1/plan", Some(claims.clone()), None)).await.0, StatusCode::OK);
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = json!("https://login.example");
    let (status, _, problem) = send(&function, event("GET", "/v1/plan", Some(other_issuer), None)).await;
    assert_eq!((status, problem["detail"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, TokenRejection::WrongIssuer.description()));
    let mut other_audience = claims;
    other_audience["aud"] = json!("[someone-else]");
    assert_eq!(send(&function, event("GET", "/v1/plan", Some(other_audience), None)).await.0, StatusCode::UNAUTHORIZED);
}

fn verifier() -> JwtVerifier {
    let jwks = JwkSet { keys: vec![RSA.jwks().keys[0].clone()] };
    let rules = JwtRules { issuers: vec![ISS.into()], audiences: vec![AUD.into()], algorithms: vec![Algorithm::RS256] };
    JwtVerifier::new(Arc::new(JwksCache::preloaded(&jwks)), &rules)
}

#[tokio::test]
async fn a_verified_token_is_remembered_and_failures_never_are() {
    let verifier = verifier();
    let token = RSA.sign(&claims(json!({}))).unwrap();
    let first = verifier.verify(&token).await.unwrap();
    let second = verifier.verify(&token).await.unwrap();
    assert_eq!(first, second);
    assert!(Arc::ptr_eq(&first, &second), "the second answer comes from the cache");
    assert_eq!(verifier.remembered(), 1);

    // Refusals are not remembered: a forged signature, an expired or foreign token.
    let forged = resigned(&json!({"alg": "RS256", "kid": RSA.kid()}), &claims(json!({"sub": "admin"})), &token);
    assert_eq!(verifier.verify(&forged).await.unwrap_err(), AuthError::InvalidToken(TokenRejection::BadSignature));
    let expired = RSA.sign(&claims(json!({"exp": now() - 3600}))).unwrap();
    assert_eq!(verifier.verify(&expired).await.unwrap_err(), AuthError::InvalidToken(TokenRejection::Expired));
    assert!(verifier.verify(&STRANGER.sign(&claims(json!({}))).unwrap()).await.is_err());
    assert_eq!(verifier.remembered(), 1);
    // A token inside the clock-skew leeway verifies, but is not remembered past its `exp`.
    let in_leeway = RSA.sign(&claims(json!({"exp": now() - 5}))).unwrap();
    assert!(verifier.verify(&in_leeway).await.is_ok());
    assert_eq!(verifier.remembered(), 1);
}

#[tokio::test]
async fn remembered_tokens_expire_and_the_cache_stays_bounded() {
    use super::verified::{CAPACITY, MAX_AGE_SECONDS, MAX_TOKEN_BYTES, Verified, VerifiedTokens};
    let key = Arc::new(JwksCache::preloaded(&RSA.jwks())).key(RSA.kid()).await.unwrap();
    let at = 1_800_000_000;
    let entry = |exp: u64| {
        let claims = Arc::new(serde_json::from_value(json!({"exp": exp})).unwrap());
        Verified::new(claims, RSA.kid(), key.clone(), at).unwrap()
    };
    let tokens = VerifiedTokens::default();
    tokens.insert("a", entry(at + 60), at);
    assert!(tokens.get("a", at + 59).is_some());
    assert!(tokens.get("a", at + 60).is_none(), "not past exp");
    assert!(tokens.get("b", at).is_none());
    // A long-lived token is trusted for MAX_AGE_SECONDS at most, then checked again.
    tokens.insert("long", entry(at + 86_400), at);
    assert!(tokens.get("long", at + MAX_AGE_SECONDS - 1).is_some());
    assert!(tokens.get("long", at + MAX_AGE_SECONDS).is_none());
    // Nor is an oversized token.
    let huge = "x".repeat(MAX_TOKEN_BYTES + 1);
    tokens.insert(&huge, entry(at + 60), at);
    assert!(tokens.get(&huge, at).is_none());
    // Without a usable exp nothing is remembered.
    assert!(Verified::new(Arc::new(serde_json::Map::new()), RSA.kid(), key.clone(), at).is_none());

    // Full: expired entries go first; with none expired, the cache starts afresh.
    let tokens = VerifiedTokens::default();
    for i in 0..CAPACITY {
        tokens.insert(&format!("t{i}"), entry(if i < 10 { at + 1 } else { at + 600 }), at);
    }
    assert_eq!(tokens.len(), CAPACITY);
    tokens.insert("next", entry(at + 600), at + 2);
    assert_eq!(tokens.len(), CAPACITY - 10 + 1, "the ten expired entries made room");
    for i in 0..20 {
        tokens.insert(&format!("more{i}"), entry(at + 600), at + 2);
    }
    assert!(tokens.len() <= CAPACITY, "{}", tokens.len());
    assert!(tokens.get("more19", at + 3).is_some());
}
