//! Authentication, scopes and tenant isolation over a real socket: what each scope allows, every
//! attack refused with 401, organisations kept apart, and the JWKS cache against a live JWKS
//! endpoint (fetched once, reloaded on an unknown kid at most once per interval, rotation,
//! outages) and a JWKS file.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plan::WritePolicy;
use plan_e2e::app::{TEST_AUDIENCE, TEST_ISSUER, TestApp, expect_problem, header, spawn_app, test_auth, test_issuer, token};
use plan_e2e::jwks::{JwksServer, key_set};
use plan_e2e::{set_org, tag, unique_plan};
use plan_http::Authenticator;
use plan_http::auth::{ClaimRules, JwksCache, JwksSource, JwksTiming, JwtRules, JwtVerifier, LocalIssuer, TokenRejection};
use plan_wiring::Backends;
use reqwest::Method;
use serde_json::{Value, json};

/// A second key of the same issuer (rotation), and one of nobody's.
static NEXT_KEY: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate(TEST_ISSUER, TEST_AUDIENCE, Algorithm::RS256).unwrap());
static STRANGER: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate(TEST_ISSUER, TEST_AUDIENCE, Algorithm::RS256).unwrap());

fn id_of(plan: &Value) -> String {
    plan["objectId"].as_str().unwrap().to_owned()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Valid claims with both scopes, with `changes` applied (null removes).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "test-user", "iat": now(), "exp": now() + 600,
        "scope": "plans:read plans:write"
    });
    for (name, value) in changes.as_object().cloned().unwrap_or_default() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(&name),
            value => claims.as_object_mut().unwrap().insert(name, value),
        };
    }
    claims
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// 401, an RFC 6750 `invalid_token` challenge, and an invalid-token problem saying why.
async fn expect_unauthenticated(response: reqwest::Response, reason: TokenRejection, attack: &str) {
    assert_eq!(response.status(), 401, "{attack}");
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#), "{attack}: {challenge}");
    let problem = expect_problem(response, 401, "invalid-token").await;
    assert_eq!(problem["detail"], reason.description(), "{attack}");
}

/// 403 with an `insufficient_scope` challenge naming the scope.
async fn expect_insufficient_scope(response: reqwest::Response, scope: &str) {
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.contains(r#"error="insufficient_scope""#) && challenge.contains(&format!(r#"scope="{scope}""#)), "{challenge}");
    expect_problem(response, 403, "insufficient-scope").await;
}

async fn spawn_with(auth: Authenticator) -> TestApp {
    spawn_app(Backends::embedded(WritePolicy::default()).with_auth(auth)).await
}

#[tokio::test]
async fn each_scope_opens_its_own_routes_and_health_and_schema_stay_public() {
    let app = spawn_with(test_auth(None)).await;
    let plan = unique_plan(&tag());
    let id = id_of(&plan);

    let writer_token = token("plans:write", None);
    let writer = app.as_caller(Some(&writer_token));
    assert_eq!(writer.create(&plan).await.status(), 201, "plans:write creates");
    expect_insufficient_scope(writer.get(&id).await, "plans:read").await;
    expect_insufficient_scope(writer.request(Method::GET, "/v1/plan").send().await.unwrap(), "plans:read").await;

    let reader_token = token("plans:read", None);
    let reader = app.as_caller(Some(&reader_token));
    assert_eq!(reader.get(&id).await.status(), 200, "plans:read reads");
    assert_eq!(reader.request(Method::GET, "/v1/plan").send().await.unwrap().status(), 200, "and lists");
    expect_insufficient_scope(reader.create(&unique_plan(&tag())).await, "plans:write").await;
    expect_insufficient_scope(reader.put(&id, &plan, Some("*")).await, "plans:write").await;
    expect_insufficient_scope(reader.merge_patch(&id, &json!({"planType": "outOfNetwork"}), Some("*")).await, "plans:write").await;
    expect_insufficient_scope(reader.delete(&id, Some("*")).await, "plans:write").await;

    let nothing_token = token("openid email", None);
    let nothing = app.as_caller(Some(&nothing_token));
    expect_insufficient_scope(nothing.get(&id).await, "plans:read").await;
    expect_insufficient_scope(nothing.delete(&id, Some("*")).await, "plans:write").await;

    // Writes with both scopes, and nothing above changed the plan.
    assert_eq!(app.get(&id).await.json::<Value>().await.unwrap(), plan);
    assert_eq!(app.delete(&id, Some("*")).await.status(), 204);

    let anonymous = app.as_caller(None);
    assert_eq!(anonymous.request(Method::GET, "/v1/health").send().await.unwrap().status(), 200);
    assert_eq!(anonymous.request(Method::GET, "/v1/schema/plan").send().await.unwrap().status(), 200);
    expect_unauthenticated(anonymous.get(&id).await, TokenRejection::Missing, "no token").await;
}

#[tokio::test]
async fn every_attack_is_refused_with_401_and_changes_nothing() {
    let app = spawn_with(test_auth(None)).await;
    let plan = unique_plan(&tag());
    let id = id_of(&plan);
    assert_eq!(app.create(&plan).await.status(), 201);
    let issuer = test_issuer();
    let kid = issuer.kid();
    let valid_reader = token("plans:read", None);
    let signature = valid_reader.rsplit('.').next().unwrap();

    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let secret = serde_json::to_vec(&issuer.jwks().keys[0]).unwrap();
        jsonwebtoken::encode(&header, &claims(json!({})), &EncodingKey::from_secret(&secret)).unwrap()
    };
    let attacks: Vec<(&str, Option<String>, TokenRejection)> = vec![
        ("no token", None, TokenRejection::Missing),
        ("malformed", Some("eyJhbGciOi.not-base64!.x".into()), TokenRejection::Malformed),
        ("alg none", Some(format!("{}.{}.", b64(&json!({"alg": "none", "kid": kid})), b64(&claims(json!({}))))), TokenRejection::Malformed),
        ("HS256 signed with the public key", Some(hs256_with_public_key), TokenRejection::AlgorithmNotAccepted),
        (
            "tampered payload",
            Some(format!("{}.{}.{signature}", b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})), b64(&claims(json!({}))))),
            TokenRejection::BadSignature,
        ),
        ("expired", Some(issuer.sign(&claims(json!({"exp": now() - 120}))).unwrap()), TokenRejection::Expired),
        ("not yet valid", Some(issuer.sign(&claims(json!({"nbf": now() + 120}))).unwrap()), TokenRejection::NotYetValid),
        ("wrong issuer", Some(issuer.sign(&claims(json!({"iss": "https://accounts.google.com"}))).unwrap()), TokenRejection::WrongIssuer),
        ("wrong audience", Some(issuer.sign(&claims(json!({"aud": "another-api"}))).unwrap()), TokenRejection::WrongAudience),
        ("unknown kid", Some(STRANGER.sign(&claims(json!({}))).unwrap()), TokenRejection::UnknownKey),
    ];
    for (attack, token, reason) in attacks {
        let caller = app.as_caller(token.as_deref());
        expect_unauthenticated(caller.get(&id).await, reason, attack).await;
        let mut replacement = plan.clone();
        replacement["planType"] = json!("outOfNetwork");
        expect_unauthenticated(caller.put(&id, &replacement, Some("*")).await, reason, attack).await;
        let other = unique_plan(&tag());
        expect_unauthenticated(caller.create(&other).await, reason, attack).await;
        expect_problem(app.get(&id_of(&other)).await, 404, "not-found").await;
    }
    assert_eq!(app.get(&id).await.json::<Value>().await.unwrap(), plan, "no attack changed the plan");

    // A token in the query string is not a credential.
    let query = format!("/v1/plan/{id}?access_token={valid_reader}");
    expect_unauthenticated(app.as_caller(None).request(Method::GET, &query).send().await.unwrap(), TokenRejection::Missing, "query").await;
}

#[tokio::test]
async fn organisations_never_see_or_touch_each_others_plans() {
    let app = spawn_with(test_auth(Some("hd"))).await;
    let ours_token = token("plans:read plans:write", Some("example.com"));
    let theirs_token = token("plans:read plans:write", Some("other.example"));
    let ours = app.as_caller(Some(&ours_token));
    let theirs = app.as_caller(Some(&theirs_token));

    let plan = unique_plan(&tag());
    let id = id_of(&plan);
    let nested = plan["linkedPlanServices"][0]["objectId"].as_str().unwrap().to_owned();
    let etag = header(&ours.create(&plan).await, "etag");

    // Reads: another organisation's plan does not exist, whole or in part, nor in listings.
    expect_problem(theirs.get(&id).await, 404, "not-found").await;
    expect_problem(theirs.get(&nested).await, 404, "not-found").await;
    let listed = |caller: &plan_e2e::app::Caller<'_>| {
        let request = caller.request(Method::GET, "/v1/plan?limit=100");
        async move {
            let page: Value = request.send().await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().iter().map(id_of).collect::<Vec<_>>()
        }
    };
    assert!(!listed(&theirs).await.contains(&id));
    assert!(listed(&ours).await.contains(&id));

    // Writes to it: as absent (404), never a 403 that would confirm it exists.
    let mut as_theirs = plan.clone();
    set_org(&mut as_theirs, "other.example");
    expect_problem(theirs.put(&id, &as_theirs, Some("*")).await, 404, "not-found").await;
    expect_problem(theirs.merge_patch(&id, &json!({"planType": "outOfNetwork"}), Some("*")).await, 404, "not-found").await;
    expect_problem(theirs.patch(&id, "application/json-patch+json", &json!([]), Some("*")).await, 404, "not-found").await;
    expect_problem(theirs.delete(&id, Some("*")).await, 404, "not-found").await;
    assert_eq!(ours.etag(&id).await, etag, "untouched");

    // A body claiming another organisation is forbidden, whether new or aimed at our plan.
    expect_problem(theirs.put(&id, &plan, Some("*")).await, 403, "foreign-org").await;
    let smuggled = unique_plan(&tag());
    expect_problem(theirs.create(&smuggled).await, 403, "foreign-org").await;
    expect_problem(ours.get(&id_of(&smuggled)).await, 404, "not-found").await;
    let mut their_plan = unique_plan(&tag());
    set_org(&mut their_plan, "other.example");
    assert_eq!(theirs.create(&their_plan).await.status(), 201, "their own plans are fine");
    expect_problem(ours.get(&id_of(&their_plan)).await, 404, "not-found").await;
    let mut moved = their_plan.clone();
    set_org(&mut moved, "example.com");
    expect_problem(theirs.put(&id_of(&their_plan), &moved, Some("*")).await, 403, "foreign-org").await;

    // A token naming no organisation gets nothing while isolation is on.
    let orgless = token("plans:read plans:write", None);
    expect_problem(app.as_caller(Some(&orgless)).get(&id).await, 403, "no-organisation").await;
    expect_problem(app.as_caller(Some(&orgless)).request(Method::GET, "/v1/plan").send().await.unwrap(), 403, "no-organisation").await;
}

#[tokio::test]
async fn the_local_issuer_publishes_its_public_keys() {
    let app = spawn_with(test_auth(None)).await;
    let response = app.as_caller(None).request(Method::GET, plan_http::JWKS_PATH).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/jwk-set+json");
    let jwks: Value = response.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], test_issuer().kid());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

// ---- The JWKS cache against a live endpoint ----------------------------------------------------

fn rules() -> JwtRules {
    JwtRules { issuers: vec![TEST_ISSUER.into()], audiences: vec![TEST_AUDIENCE.into()], algorithms: vec![Algorithm::RS256] }
}

fn fetching(source: JwksSource, timing: JwksTiming) -> Authenticator {
    Authenticator::verifying(JwtVerifier::new(Arc::new(JwksCache::new(source, timing)), &rules()), ClaimRules::default())
}

// The reload intervals themselves (a minute for unknown kids, five seconds while nothing loaded,
// an hour of age) are tested on tokio's paused clock beside the cache
// (shared/http/src/auth/jwks/timing_tests.rs); here a live endpoint and the whole request path,
// with intervals of zero where a test needs a reload, so no test waits out an interval.

fn timing(min_refresh_ms: u64, max_age_ms: u64) -> JwksTiming {
    JwksTiming {
        min_refresh: Duration::from_millis(min_refresh_ms),
        retry_unloaded: Duration::from_millis(min_refresh_ms),
        max_age: Duration::from_millis(max_age_ms),
    }
}

fn signed_by(issuer: &LocalIssuer) -> String {
    issuer.sign(&claims(json!({}))).unwrap()
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    app.as_caller(Some(token)).request(Method::GET, "/v1/plan").send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_jwks_is_fetched_once_then_served_from_memory() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), JwksTiming::default())).await;
    assert_eq!(jwks.fetches(), 0, "nothing fetched at start-up: a cold start never waits on the issuer");
    for _ in 0..25 {
        assert_eq!(status_with(&app, &signed_by(test_issuer())).await, 200);
    }
    assert_eq!(jwks.fetches(), 1);
}

async fn junk_kids(app: &TestApp, count: usize) {
    for n in 0..count {
        let junk = STRANGER.sign_as(&format!("junk-{n}"), &claims(json!({}))).unwrap();
        let response = app.as_caller(Some(&junk)).request(Method::GET, "/v1/plan").send().await.unwrap();
        expect_unauthenticated(response, TokenRejection::UnknownKey, "junk kid").await;
    }
}

#[tokio::test]
async fn unknown_kids_do_not_reload_the_set_within_a_minute() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), JwksTiming::default())).await;
    assert_eq!(status_with(&app, &signed_by(test_issuer())).await, 200);
    junk_kids(&app, 10).await;
    assert_eq!(jwks.fetches(), 1, "within a minute of the last load, unknown kids load nothing");
    assert_eq!(status_with(&app, &signed_by(test_issuer())).await, 200, "known keys are unaffected");
}

#[tokio::test]
async fn rotation_adds_new_keys_and_a_removed_key_stops_verifying() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), timing(0, 3_600_000))).await;
    let old = signed_by(test_issuer());
    let new = signed_by(&NEXT_KEY);
    assert_eq!(status_with(&app, &old).await, 200);
    assert_eq!(jwks.fetches(), 1);

    // The issuer adds its next key and starts signing with it: picked up on first sight.
    jwks.publish(&key_set(&[test_issuer(), &NEXT_KEY]));
    assert_eq!(status_with(&app, &new).await, 200);
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(status_with(&app, &old).await, 200, "known keys load nothing");
    assert_eq!(jwks.fetches(), 2);

    // Then it withdraws the old key. The next reload (here: the next unknown kid) drops it.
    jwks.publish(&key_set(&[&NEXT_KEY]));
    let unknown = STRANGER.sign(&claims(json!({}))).unwrap();
    assert_eq!(status_with(&app, &unknown).await, 401);
    assert_eq!(jwks.fetches(), 3);
    let response = app.as_caller(Some(&old)).request(Method::GET, "/v1/plan").send().await.unwrap();
    expect_unauthenticated(response, TokenRejection::UnknownKey, "key removed from the JWKS").await;
    assert_eq!(status_with(&app, &new).await, 200);
}

#[tokio::test]
async fn a_set_past_its_max_age_is_refreshed_in_the_background() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    // Every set is past its max age at once: each use refreshes it behind the request.
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), timing(0, 0))).await;
    let old = signed_by(test_issuer());
    assert_eq!(status_with(&app, &old).await, 200);
    jwks.publish(&key_set(&[&NEXT_KEY]));
    // Served from the stale set (its key was taken before the refresh started).
    assert_eq!(status_with(&app, &old).await, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_with(&app, &old).await == 200 {
        assert!(Instant::now() < deadline, "the withdrawn key should stop verifying once the refresh lands");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_with(&app, &old).await, 401, "the withdrawn key no longer verifies");
    assert!(jwks.fetches() >= 2);
    assert_eq!(status_with(&app, &signed_by(&NEXT_KEY)).await, 200);
}

#[tokio::test]
async fn an_unreachable_issuer_gives_503_without_a_retry_storm() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    jwks.fail(true);
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), timing(1000, 3_600_000))).await;
    let token = signed_by(test_issuer());
    let response = app.as_caller(Some(&token)).request(Method::GET, "/v1/plan").send().await.unwrap();
    assert_eq!(header(&response, "retry-after"), "5");
    expect_problem(response, 503, "auth-unavailable").await;
    assert_eq!(status_with(&app, &token).await, 503);
    assert_eq!(jwks.fetches(), 1, "no retry storm while the issuer is down");
}

#[tokio::test]
async fn an_issuer_that_fails_a_reload_leaves_the_cached_keys_in_use() {
    let jwks = JwksServer::start(&key_set(&[test_issuer()])).await;
    let app = spawn_with(fetching(JwksSource::url(&jwks.url()).unwrap(), timing(0, 3_600_000))).await;
    let token = signed_by(test_issuer());
    assert_eq!(status_with(&app, &token).await, 200);
    jwks.fail(true);
    assert_eq!(status_with(&app, &STRANGER.sign(&claims(json!({}))).unwrap()).await, 401);
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(status_with(&app, &token).await, 200);
}

#[tokio::test]
async fn a_jwks_file_is_read_and_reloaded_like_a_url() {
    let dir = std::env::temp_dir().join(format!("plan-jwks-{}", tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&key_set(&[test_issuer()])).unwrap()).unwrap();
    let app = spawn_with(fetching(JwksSource::File(path.clone()), timing(0, 3_600_000))).await;
    let old = signed_by(test_issuer());
    assert_eq!(status_with(&app, &old).await, 200);
    std::fs::write(&path, serde_json::to_vec(&key_set(&[&NEXT_KEY])).unwrap()).unwrap();
    assert_eq!(status_with(&app, &signed_by(&NEXT_KEY)).await, 200);
    assert_eq!(status_with(&app, &old).await, 401);
    std::fs::remove_dir_all(&dir).unwrap();
}
