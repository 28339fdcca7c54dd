//! template.yaml, the routers and the function crates agree: the HTTP API serves exactly the
//! routes of `plan_http::Endpoint`, each through the function that `Endpoint::function()` names,
//! and every crate under functions/ is exactly one function resource. The `cargo lambda watch`
//! router in Cargo.toml is held to the same list.

use std::collections::{BTreeMap, BTreeSet};

use plan_e2e::sam::{self, untag};
use plan_http::Endpoint;

/// Routes the JWT authorizer does not guard (issue: authentication): health and the schema; and
/// (issue 12) the OpenAPI document and the docs page with its files.
const PUBLIC_ROUTES: &[Endpoint] = &[Endpoint::Health, Endpoint::GetSchema, Endpoint::GetOpenApi, Endpoint::DocsPage, Endpoint::DocsAsset];

fn route_key(endpoint: Endpoint) -> String {
    format!("{} {}", endpoint.method(), endpoint.path())
}

#[test]
fn the_http_api_serves_exactly_the_routers_routes_each_through_its_function() {
    let functions = sam::functions(&sam::template());
    let from_template: BTreeMap<String, String> = functions
        .iter()
        .flat_map(|f| f.http_routes.iter().map(move |r| (r.key(), f.binary.clone().unwrap_or_else(|| f.logical_id.clone()))))
        .collect();
    let event_count: usize = functions.iter().map(|f| f.http_routes.len()).sum();
    assert_eq!(event_count, from_template.len(), "a route appears in more than one HttpApi event");

    let from_router: BTreeMap<String, String> = Endpoint::ALL.iter().map(|e| (route_key(*e), e.function().to_owned())).collect();
    assert_eq!(from_template, from_router, "template.yaml routes (left) differ from plan_http::Endpoint::ALL (right)");
}

#[test]
fn every_route_is_on_the_one_http_api_and_only_health_schema_and_docs_are_public() {
    for function in sam::functions(&sam::template()) {
        for route in &function.http_routes {
            assert_eq!(route.api.as_deref(), Some("PlanApi"), "{}: {} must be on PlanApi", function.logical_id, route.key());
            let public = PUBLIC_ROUTES.iter().any(|e| route_key(*e) == route.key());
            let endpoint = Endpoint::ALL.into_iter().find(|e| route_key(*e) == route.key());
            assert_eq!(endpoint.map(|e| e.scope().is_none()), Some(public), "{}: Endpoint::scope agrees", route.key());
            assert_eq!(route.public, public, "{}: {} public={} but expected {public}", function.logical_id, route.key(), route.public);
        }
    }
}

#[test]
fn every_function_crate_has_exactly_one_function_resource_and_vice_versa() {
    let functions = sam::functions(&sam::template());
    let crates: BTreeSet<String> = sam::function_crates().into_iter().collect();
    for name in &crates {
        let count = functions.iter().filter(|f| f.binary.as_deref() == Some(name.as_str())).count();
        assert_eq!(count, 1, "functions/{name} has {count} function resources in template.yaml (Metadata.BuildProperties.Binary)");
    }
    for function in &functions {
        let binary = function.binary.as_deref().unwrap_or_else(|| panic!("{} has no Metadata.BuildProperties.Binary", function.logical_id));
        assert!(crates.contains(binary), "{} builds {binary}, which is not a crate under functions/", function.logical_id);
        assert_eq!(function.build_method.as_deref(), Some("rust-cargolambda"), "{}: BuildMethod", function.logical_id);
        // The workspace root: so that cached builds notice changes in shared/ (see template.yaml).
        let code_uri = function.properties.get("CodeUri").map(untag).and_then(|v| v.as_str());
        assert_eq!(code_uri, Some("."), "{}: CodeUri", function.logical_id);
    }
}

#[test]
fn every_endpoint_function_is_a_crate() {
    let crates = sam::function_crates();
    for endpoint in Endpoint::ALL {
        assert!(crates.iter().any(|c| c == endpoint.function()), "{endpoint:?} names {}, missing under functions/", endpoint.function());
    }
}

#[test]
fn the_cargo_lambda_watch_router_lists_the_same_routes() {
    let path = sam::workspace_root().join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).expect("read Cargo.toml").parse().expect("parse Cargo.toml");
    let router = manifest
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("lambda"))
        .and_then(|l| l.get("watch"))
        .and_then(|w| w.get("router"))
        .and_then(|r| r.as_table())
        .expect("[workspace.metadata.lambda.watch.router] in Cargo.toml");

    let mut from_watch = BTreeMap::new();
    for (route_path, routes) in router {
        let routes =
            routes.as_array().unwrap_or_else(|| panic!("{route_path}: use [{{ method, function }}] so each method names its function"));
        for route in routes {
            let method = route.get("method").and_then(|m| m.as_str()).expect("method");
            let function = route.get("function").and_then(|f| f.as_str()).expect("function");
            from_watch.insert(format!("{method} {route_path}"), function.to_owned());
        }
    }
    let from_router: BTreeMap<String, String> = Endpoint::ALL.iter().map(|e| (route_key(*e), e.function().to_owned())).collect();
    assert_eq!(from_watch, from_router, "cargo lambda watch router (left) differs from plan_http::Endpoint::ALL (right)");
}

/// The local poller plays the indexer's event source mapping, so its batches are no larger than
/// the mapping's; its window is shorter on purpose (see `plan_events::poller::BATCH_WINDOW`).
#[test]
fn the_local_poller_batches_no_more_records_than_the_event_source_mapping() {
    let functions = sam::functions(&sam::template());
    let mappings: Vec<&serde_norway::Value> = functions
        .iter()
        .filter_map(|f| f.properties.get("Events").and_then(serde_norway::Value::as_mapping))
        .flat_map(|events| events.values())
        .filter(|event| untag(&event["Type"]).as_str() == Some("MSK"))
        .collect();
    assert_eq!(mappings.len(), 1, "one MSK event source (the indexer's)");
    let batch_size = untag(&mappings[0]["Properties"]["BatchSize"]).as_u64().expect("BatchSize");
    assert_eq!(batch_size, plan_events::poller::BATCH_SIZE as u64);
    let window = untag(&mappings[0]["Properties"]["MaximumBatchingWindowInSeconds"]).as_u64().expect("MaximumBatchingWindowInSeconds");
    assert!(
        plan_events::poller::BATCH_WINDOW <= std::time::Duration::from_secs(window),
        "the local window is no longer than the deployed one"
    );
}
