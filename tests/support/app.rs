//! A running API on a free loopback port, and typed request helpers (zero2prod's `spawn_app`).

use std::net::SocketAddr;
use std::sync::Arc;

use plan::WritePolicy;
use plan_http::Backends;
use plan_http::backends::Store;
use plan_store::EmbeddedStore;

use crate::RecordingPublisher;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the whole API (the local server's router) over a real socket.
pub async fn spawn_app(backends: Backends) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let address = listener.local_addr().expect("local address");
    let app = plan_http::app(&backends);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test server");
    });
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("HTTP client");
    TestApp { address, client, server }
}

/// The API on the embedded store, its events recorded.
pub async fn spawn_embedded(policy: WritePolicy) -> TestApp {
    spawn_on(Arc::new(EmbeddedStore::new()), policy).await
}

/// The API on any store, with the given change publisher.
pub async fn spawn_with<S: Store + 'static>(store: Arc<S>, publisher: Arc<RecordingPublisher>, policy: WritePolicy) -> TestApp {
    spawn_app(Backends::with_parts(store, publisher, policy)).await
}

/// The API on any store, its events recorded.
pub async fn spawn_on<S: Store + 'static>(store: Arc<S>, policy: WritePolicy) -> TestApp {
    spawn_app(Backends::with_parts(store, Arc::new(RecordingPublisher::default()), policy)).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
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
