//! Shared helpers for the end-to-end and contract tests: which real services the test script
//! started, unique sample plans, and a running local server on a free port.

pub mod app;
mod publisher;

pub use publisher::RecordingPublisher;
pub mod events;
pub mod index;
pub mod jwks;
pub mod logs;
pub mod raw_redis;
pub mod sam;

use std::sync::Arc;
use std::time::Duration;

use plan::store::{Expected, PlanWrite};
use plan::{ETag, ObjectId, Plan};
use plan_store::{RedisConfig, RedisStore};
use serde_json::Value;

/// A service the test script provides through an environment variable. Unset means "skip" for a
/// developer's plain `cargo test`, but a failure when `PLAN_TEST_REQUIRE_SERVICES=1` (the test
/// script sets it) so CI can never pass by skipping.
pub fn service_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("PLAN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{name} is not set but PLAN_TEST_REQUIRE_SERVICES=1: run the tests with scripts/test, which starts the services")
        }
        _ => {
            eprintln!("skipping: {name} is not set (scripts/test sets it)");
            None
        }
    }
}

/// A key prefix no other test uses, so tests share one Redis without seeing each other.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

pub fn redis_config(urls: Vec<String>, cluster: bool) -> RedisConfig {
    RedisConfig { urls, cluster, key_prefix: unique_prefix(), op_timeout: Duration::from_millis(1500), ca_pem: None, auth_secret_arn: None }
}

/// A store on the standalone Redis of the test script, with its own key prefix.
pub fn redis_store() -> Option<Arc<RedisStore>> {
    let url = service_var("PLAN_TEST_REDIS_URL")?;
    Some(Arc::new(RedisStore::new(&redis_config(vec![url], false)).expect("Redis client")))
}

/// The same store writing in the three steps a cluster needs (see `RedisStore::stepwise`).
pub fn redis_stepwise_store() -> Option<Arc<RedisStore>> {
    let url = service_var("PLAN_TEST_REDIS_URL")?;
    Some(Arc::new(RedisStore::new(&redis_config(vec![url], false)).expect("Redis client").stepwise()))
}

/// A store on the 3-node Redis Cluster of the test script.
pub fn redis_cluster_store() -> Option<Arc<RedisStore>> {
    let urls = service_var("PLAN_TEST_REDIS_CLUSTER_URLS")?;
    let urls = urls.split(',').map(str::to_owned).collect();
    Some(Arc::new(RedisStore::new(&redis_config(urls, true)).expect("Redis cluster client")))
}

/// The common sample plan (`examples/plan.json`).
pub fn sample_plan() -> Value {
    serde_json::from_str(include_str!("../../examples/plan.json")).expect("examples/plan.json")
}

/// The sample plan with every objectId made unique by `tag`, so tests never collide.
pub fn unique_plan(tag: &str) -> Value {
    let mut plan = sample_plan();
    retag(&mut plan, tag);
    plan
}

fn retag(value: &mut Value, tag: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get_mut("objectId") {
                id.push('-');
                id.push_str(tag);
            }
            map.values_mut().for_each(|v| retag(v, tag));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| retag(v, tag)),
        _ => {}
    }
}

/// Moves every object of a plan document to another organisation.
pub fn set_org(value: &mut Value, org: &str) {
    match value {
        Value::Object(map) => {
            if map.contains_key("_org") {
                map.insert("_org".to_owned(), Value::from(org));
            }
            map.values_mut().for_each(|v| set_org(v, org));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| set_org(v, org)),
        _ => {}
    }
}

/// A fresh tag for [`unique_plan`].
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A linked plan service with its own ids, for PATCH tests.
pub fn plan_service(tag: &str, name: &str, copay: u64) -> Value {
    serde_json::json!({
        "_org": "example.com",
        "objectId": format!("ps-{tag}"),
        "objectType": "planservice",
        "linkedService": {"_org": "example.com", "objectId": format!("svc-{tag}"), "objectType": "service", "name": name},
        "planserviceCostShares": {
            "_org": "example.com", "objectId": format!("pcs-{tag}"), "objectType": "membercostshare",
            "deductible": 10, "copay": copay
        }
    })
}

/// A store write of a whole plan document, as the domain would make it.
pub fn write_of(document: Value, expected: Expected) -> PlanWrite {
    let plan: Plan = plan::validate::parse_plan(document).expect("valid plan");
    let body = plan.to_json();
    PlanWrite {
        id: plan.object_id.clone(),
        org: plan.org.clone(),
        expected,
        etag: ETag::of(body.as_bytes()),
        object_ids: plan.object_ids(),
        body,
    }
}

pub fn id(raw: &str) -> ObjectId {
    ObjectId::parse(raw).expect("valid id")
}
