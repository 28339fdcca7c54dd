//! A running API on a free loopback port, typed request helpers (zero2prod's `spawn_app`), and the
//! test token issuer.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use plan::WritePolicy;
use plan_http::Authenticator;
use plan_http::auth::{ClaimRules, Grant, LocalIssuer};
use plan_store::EmbeddedStore;
use plan_wiring::Backends;
use plan_wiring::backends::Store;

use crate::RecordingPublisher;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The bearer token the request helpers send (see [`TestApp::as_caller`] for others).
    pub token: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The issuer and audience of every test token.
pub const TEST_ISSUER: &str = "https://issuer.test.healthplan.dev";
pub const TEST_AUDIENCE: &str = "plan-api-tests";

/// The test issuer: one RS256 key per test binary, in memory only.
pub fn test_issuer() -> &'static LocalIssuer {
    static ISSUER: LazyLock<LocalIssuer> =
        LazyLock::new(|| LocalIssuer::generate(TEST_ISSUER, TEST_AUDIENCE, Algorithm::RS256).expect("test signing key"));
    &ISSUER
}

/// A valid token of the test issuer with these scopes (space separated) and, when given, the
/// organisation in the `hd` claim.
pub fn token(scopes: &str, org: Option<&str>) -> String {
    let grant = Grant {
        subject: "test-user".to_owned(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        org: org.map(|org| ("hd".to_owned(), org.to_owned())),
        ttl: Duration::from_secs(600),
    };
    test_issuer().mint(&grant).expect("mint a test token")
}

/// Both scopes, no organisation: what the tests of the plan API itself call with.
pub fn full_token() -> String {
    token("plans:read plans:write", None)
}

/// Verifies test-issuer tokens, with tenant isolation on `org_claim` when given.
pub fn test_auth(org_claim: Option<&str>) -> Authenticator {
    let claims = ClaimRules { org_claim: org_claim.map(str::to_owned), ..ClaimRules::default() };
    Authenticator::local(test_issuer(), vec![Algorithm::RS256], claims)
}

/// Serves the whole API (the local server's router) over a real socket, with the local server's
/// own accept loop. The helpers send a token with both scopes, which the backends' authenticator
/// must accept (see [`test_auth`]).
pub async fn spawn_app(backends: Backends) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let app = plan_wiring::app(&backends);
    let server = tokio::spawn(plan_local::server::serve(listener, app, Duration::from_secs(10), std::future::pending()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("HTTP client");
    TestApp { address, client, token: Some(full_token()), server }
}

/// The API on the embedded store, its events recorded, authenticating test-issuer tokens
/// (isolation off).
pub async fn spawn_embedded(policy: WritePolicy) -> TestApp {
    spawn_on(Arc::new(EmbeddedStore::new()), policy).await
}

/// The API on any store, with the given change publisher, authenticating test-issuer tokens.
pub async fn spawn_with<S: Store + 'static>(store: Arc<S>, publisher: Arc<RecordingPublisher>, policy: WritePolicy) -> TestApp {
    spawn_app(Backends::with_parts(store, publisher, policy).with_auth(test_auth(None))).await
}

/// The API on any store, its events recorded, authenticating test-issuer tokens (isolation off).
pub async fn spawn_on<S: Store + 'static>(store: Arc<S>, policy: WritePolicy) -> TestApp {
    spawn_with(store, Arc::new(RecordingPublisher::default()), policy).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The request helpers, sending `token` (or none) instead of the app's default token.
    pub fn as_caller<'a>(&'a self, token: Option<&'a str>) -> Caller<'a> {
        Caller { app: self, token }
    }

    fn caller(&self) -> Caller<'_> {
        self.as_caller(self.token.as_deref())
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.caller().request(method, path)
    }

    pub async fn create(&self, plan: &Value) -> Response {
        self.caller().create(plan).await
    }

    pub async fn get(&self, id: &str) -> Response {
        self.caller().get(id).await
    }

    pub async fn etag(&self, id: &str) -> String {
        self.caller().etag(id).await
    }

    pub async fn put(&self, id: &str, plan: &Value, if_match: Option<&str>) -> Response {
        self.caller().put(id, plan, if_match).await
    }

    pub async fn merge_patch(&self, id: &str, patch: &Value, if_match: Option<&str>) -> Response {
        self.caller().merge_patch(id, patch, if_match).await
    }

    pub async fn patch(&self, id: &str, content_type: &str, patch: &Value, if_match: Option<&str>) -> Response {
        self.caller().patch(id, content_type, patch, if_match).await
    }

    pub async fn delete(&self, id: &str, if_match: Option<&str>) -> Response {
        self.caller().delete(id, if_match).await
    }
}

/// Typed requests to a [`TestApp`] as one caller (one bearer token, or none).
pub struct Caller<'a> {
    app: &'a TestApp,
    token: Option<&'a str>,
}

impl Caller<'_> {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.app.client.request(method, self.app.url(path));
        match self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn create(&self, plan: &Value) -> Response {
        self.request(Method::POST, "/v1/plan").json(plan).send().await.expect("POST /v1/plan")
    }

    pub async fn get(&self, id: &str) -> Response {
        self.request(Method::GET, &format!("/v1/plan/{id}")).send().await.expect("GET")
    }

    /// The current ETag of a plan or object.
    pub async fn etag(&self, id: &str) -> String {
        let response = self.get(id).await;
        assert_eq!(response.status(), 200, "GET {id} for its ETag");
        header(&response, "etag")
    }

    pub async fn put(&self, id: &str, plan: &Value, if_match: Option<&str>) -> Response {
        let mut request = self.request(Method::PUT, &format!("/v1/plan/{id}")).json(plan);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("PUT")
    }

    pub async fn merge_patch(&self, id: &str, patch: &Value, if_match: Option<&str>) -> Response {
        self.patch(id, "application/merge-patch+json", patch, if_match).await
    }

    pub async fn patch(&self, id: &str, content_type: &str, patch: &Value, if_match: Option<&str>) -> Response {
        let mut request =
            self.request(Method::PATCH, &format!("/v1/plan/{id}")).header("content-type", content_type).body(patch.to_string());
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("PATCH")
    }

    pub async fn delete(&self, id: &str, if_match: Option<&str>) -> Response {
        let mut request = self.request(Method::DELETE, &format!("/v1/plan/{id}"));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        request.send().await.expect("DELETE")
    }
}

pub fn header(response: &Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Asserts a problem document with this status and type slug, and returns it.
pub async fn expect_problem(response: Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status of {}", response.url());
    assert_eq!(header(&response, "content-type"), "application/problem+json");
    let request_id = header(&response, "x-request-id");
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["type"], format!("{}{slug}", plan_http::problem::PROBLEM_BASE), "{problem:#}");
    assert_eq!(problem["status"], status);
    assert_eq!(problem["requestId"], request_id.as_str());
    assert!(problem["title"].is_string() && problem["detail"].is_string() && problem["instance"].is_string());
    problem
}
