//! The OpenAPI document, the docs page and its files over a real socket (issue 12): public,
//! cached by ETag, with the right media types and a strict Content-Security-Policy; and real
//! answers of every route (unauthenticated, with a bad id, with a bad precondition) are among
//! the statuses the document names for it. Schemathesis (scripts/test, stage api-docs) explores
//! much further; this keeps the basics inside `cargo test`.

use plan::WritePolicy;
use plan_e2e::app::spawn_embedded;
use plan_http::Endpoint;
use plan_http::openapi::{self, DOCUMENT};
use reqwest::Method;
use serde_json::Value;

fn documented(endpoint: Endpoint, status: u16) -> bool {
    let method = endpoint.method().as_str().to_ascii_lowercase();
    DOCUMENT["paths"][endpoint.path()][method]["responses"].get(status.to_string()).is_some()
}

#[tokio::test]
async fn the_document_is_public_cached_by_etag_and_the_one_the_code_builds() {
    let app = spawn_embedded(WritePolicy::default()).await;
    let anonymous = app.as_caller(None);
    let response = anonymous.request(Method::GET, "/v1/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, *DOCUMENT);
    assert_eq!(body["openapi"], "3.1.0");

    let again = anonymous.request(Method::GET, "/v1/openapi.json").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn the_docs_page_and_its_files_are_served_under_a_strict_policy() {
    let app = spawn_embedded(WritePolicy::default()).await;
    let anonymous = app.as_caller(None);
    let page = anonymous.request(Method::GET, "/docs").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert_eq!(policy, plan_http::docs::CONTENT_SECURITY_POLICY);
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe"));
    let html = page.text().await.unwrap();

    let files: Vec<&str> = html.split('"').filter(|s| s.starts_with("docs/")).collect();
    assert!(files.len() >= 4, "the page loads its script, styles and icon: {files:?}");
    for file in files {
        let response = anonymous.request(Method::GET, &format!("/{file}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "/{file}");
        let media_type = response.headers()["content-type"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let documented = &DOCUMENT["paths"]["/docs/{asset}"]["get"]["responses"]["200"]["content"];
        assert!(documented.get(&media_type).is_some(), "/{file}: {media_type} is documented");
        assert!(response.headers().contains_key("etag"), "/{file}: ETag");
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    let missing = anonymous.request(Method::GET, "/docs/nothing.js").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
}

/// One cheap failure per route, answered by the real router, is a documented status: without a
/// token on the protected routes, with an invalid id or If-Match where the route reads them.
#[tokio::test]
async fn real_failures_of_every_route_are_documented() {
    let app = spawn_embedded(WritePolicy::default()).await;
    let anonymous = app.as_caller(None);
    for endpoint in Endpoint::ALL {
        let path = endpoint.path().replace("{id}", "not%20an%20id").replace("{planId}", "not%20an%20id").replace("{asset}", "x");
        let with = |caller: &plan_e2e::app::Caller<'_>| caller.request(endpoint.method(), &path).header("if-match", "not a tag");
        let status = with(&anonymous).send().await.unwrap().status().as_u16();
        assert!(documented(endpoint, status), "{endpoint:?} {path} without a token: {status} is not in the document");
        let status = app.request(endpoint.method(), &path).header("if-match", "not a tag").send().await.unwrap().status().as_u16();
        assert!(documented(endpoint, status), "{endpoint:?} {path} with a token: {status} is not in the document");
        if endpoint.scope().is_some() {
            assert_eq!(with(&anonymous).send().await.unwrap().status(), 401, "{endpoint:?}");
        }
    }
    assert_eq!(openapi::operation_id(Endpoint::CreatePlan), "createPlan");
}

/// The edge's own refusals (an overlong request target, too many headers) come before any route,
/// and the document names them on every operation.
#[tokio::test]
async fn the_edge_limits_are_documented_on_every_operation() {
    let app = spawn_embedded(WritePolicy::default()).await;
    let long = format!("/v1/plan?cursor={}", "a".repeat(plan_http::middleware::MAX_URI_BYTES));
    let status = app.request(Method::GET, &long).send().await.unwrap().status().as_u16();
    assert_eq!(status, 414);
    let mut many = app.request(Method::GET, "/v1/health");
    for n in 0..=plan_http::middleware::MAX_HEADER_COUNT {
        many = many.header(format!("x-filler-{n}"), "1");
    }
    let crowded = many.send().await.unwrap().status().as_u16();
    assert_eq!(crowded, 431);
    for endpoint in Endpoint::ALL {
        for status in openapi::EDGE_STATUSES {
            assert!(documented(endpoint, status), "{endpoint:?}: {status}");
        }
    }
    assert!(openapi::EDGE_STATUSES.contains(&status) && openapi::EDGE_STATUSES.contains(&crowded));
}
