//! Every file in events/ replayed through its function in-process: the event is decoded exactly as
//! on Lambda (`lambda_http::request::from_str`), served by that function's router alone on the
//! embedded store, and must answer its expected status. So the samples cannot go stale.

use std::collections::BTreeSet;

use plan::WritePolicy;
use plan_e2e::events::{self, EXPECTATIONS, NON_HTTP_FUNCTIONS, Seed};
use plan_e2e::sam;
use plan_http::auth::{ClaimRules, GatewayRules};
use plan_http::{Authenticator, Endpoint};
use plan_wiring::Backends;
use tower::ServiceExt;

/// The endpoints a function serves (api-docs serves three; the others one each).
fn endpoints(function: &str) -> Vec<Endpoint> {
    let endpoints: Vec<Endpoint> = Endpoint::ALL.into_iter().filter(|e| e.function() == function).collect();
    assert!(!endpoints.is_empty(), "{function} serves no HTTP endpoint: give its events a replay of their own in this test");
    endpoints
}

/// The endpoint of the function whose route the event names (the function's first otherwise, so
/// that the route-key assertions below report the mismatch).
fn endpoint(function: &str, event: &serde_json::Value) -> Endpoint {
    let endpoints = endpoints(function);
    let named = endpoints.iter().find(|e| event["routeKey"] == format!("{} {}", e.method(), e.path()).as_str());
    *named.unwrap_or(&endpoints[0])
}

#[test]
fn every_event_file_has_an_expectation_and_every_expectation_a_file() {
    let files: BTreeSet<String> = events::event_files().into_iter().collect();
    let expected: BTreeSet<String> = EXPECTATIONS.iter().map(|e| e.file.to_owned()).collect();
    let missing: Vec<_> = files.difference(&expected).collect();
    assert!(missing.is_empty(), "events/ files with no row in EXPECTATIONS (tests/support/events.rs): {missing:?}");
    let orphans: Vec<_> = expected.difference(&files).collect();
    assert!(orphans.is_empty(), "EXPECTATIONS rows whose file is not in events/: {orphans:?}");
}

#[test]
fn every_function_has_a_sample_event() {
    for function in sam::function_crates() {
        assert!(EXPECTATIONS.iter().any(|e| e.function == function), "functions/{function} has no sample event in events/");
    }
}

#[test]
fn every_event_matches_its_route_and_carries_the_authorizer_claims_it_needs() {
    let functions = sam::functions(&sam::template());
    for expectation in EXPECTATIONS.iter().filter(|e| !NON_HTTP_FUNCTIONS.contains(&e.function)) {
        let (_, event) = events::read_event(expectation.file);
        let endpoint = endpoint(expectation.function, &event);
        let route_key = format!("{} {}", endpoint.method(), endpoint.path());
        assert_eq!(event["version"], "2.0", "{}: an HTTP API payload v2 event", expectation.file);
        assert_eq!(event["routeKey"], route_key.as_str(), "{}: routeKey", expectation.file);
        assert_eq!(event["requestContext"]["routeKey"], route_key.as_str(), "{}: requestContext.routeKey", expectation.file);
        assert_eq!(event["requestContext"]["http"]["method"], endpoint.method().as_str(), "{}: method", expectation.file);

        let route = functions
            .iter()
            .flat_map(|f| f.http_routes.iter())
            .find(|r| r.key() == route_key)
            .unwrap_or_else(|| panic!("{route_key} is not in template.yaml"));
        let claims = &event["requestContext"]["authorizer"]["jwt"]["claims"];
        if route.public {
            assert!(claims.is_null(), "{}: a public route gets no authorizer context", expectation.file);
        } else {
            for claim in ["iss", "aud", "sub", "exp", "scope", "hd"] {
                assert!(claims[claim].is_string(), "{}: authorizer claim {claim} (API Gateway passes claims as strings)", expectation.file);
            }
        }
    }
}

#[tokio::test]
async fn every_event_replays_through_its_function_in_process() {
    for expectation in EXPECTATIONS.iter().filter(|e| !NON_HTTP_FUNCTIONS.contains(&e.function)) {
        let (text, event) = events::read_event(expectation.file);
        let endpoints = endpoints(expectation.function);
        // As on AWS: the HTTP API authorizer verified the token, the function reads its claims.
        let backends = Backends::embedded(WritePolicy::default())
            .with_auth(Authenticator::gateway(GatewayRules::default(), ClaimRules::isolated_by("hd")));
        let seeded = events::seed(&backends, expectation.seed).await;
        if let (Some(plan), Some(if_match)) = (&seeded, events::header(&event, "if-match")) {
            assert_eq!(
                if_match,
                plan.etag.to_string(),
                "{}: If-Match is not the ETag of the sample plan as stored now; update the event",
                expectation.file
            );
        }
        assert!(
            expectation.seed != Seed::Nothing || events::header(&event, "if-match").is_none(),
            "{}: If-Match without a seeded plan",
            expectation.file
        );

        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", expectation.file));
        let response = plan_wiring::router(&endpoints, &backends).oneshot(request).await.expect("the router is infallible");
        let status = response.status().as_u16();
        let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        assert_eq!(status, expectation.status, "{} through {}: {}", expectation.file, expectation.function, String::from_utf8_lossy(&body));
        // API Gateway's request id becomes the API's request id, so logs and problems line up.
        assert_eq!(request_id.as_deref(), event["requestContext"]["requestId"].as_str(), "{}: x-request-id", expectation.file);
    }
}

/// The indexer's MSK batch and the reindex function's events, through the same code the Lambda
/// runtime calls (`plan_wiring::lambda`), on embedded backends.
#[tokio::test]
async fn the_indexer_and_reindex_events_run_in_process() {
    for expectation in EXPECTATIONS.iter().filter(|e| NON_HTTP_FUNCTIONS.contains(&e.function)) {
        let (_, event) = events::read_event(expectation.file);
        let backends = Backends::embedded(WritePolicy::default());
        events::seed(&backends, expectation.seed).await;
        match expectation.function {
            "indexer" => {
                let batch: aws_lambda_events::event::kafka::KafkaEvent =
                    serde_json::from_value(event).unwrap_or_else(|e| panic!("{}: not an MSK event: {e}", expectation.file));
                let report = backends.indexer().index_batch(&batch).await.unwrap();
                assert_eq!(report.dead_lettered, 0, "{}: {report:?}", expectation.file);
                assert_eq!(report.applied + report.already_applied, 2, "{}: {report:?}", expectation.file);
                let id = plan::ObjectId::parse("12xvxc345ssdsds-508").unwrap();
                assert!(backends.index().indexed(&id).await.unwrap().is_some(), "{}: the sample plan is indexed", expectation.file);
            }
            "reindex" => {
                let job = plan_wiring::reindex::ReindexJob::from_event(&event).unwrap();
                let report = plan_wiring::reindex::run(&backends.reindex_parts(), job, &|_| {})
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", expectation.file));
                if job == plan_wiring::reindex::ReindexJob::Drift {
                    assert!(report.problems().is_empty(), "{}: {report:?}", expectation.file);
                }
            }
            other => panic!("{other} has no in-process replay"),
        }
    }
}
