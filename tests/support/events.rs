//! The sample events in events/ and what each must produce. One table serves both replays: the
//! in-process one (tests/events.rs) and the real Lambda runtime under the emulator
//! (tests/lambda_rie.rs). A file without a row here, or a row without a file, fails both.

use std::path::PathBuf;

use plan::{Caller, Representation, Tenant};
use plan_wiring::Backends;
use serde_json::Value;

use crate::sam::workspace_root;

/// What the store holds before the event arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    Nothing,
    /// The common sample plan (examples/plan.json, `12xvxc345ssdsds-508`), created as a client
    /// would, so its ETag is the one the write events carry in If-Match.
    SamplePlan,
    /// The sample plan, stored and also indexed (the search functions read the index).
    IndexedSamplePlan,
}

#[derive(Debug, Clone, Copy)]
pub struct Expectation {
    /// File name in events/.
    pub file: &'static str,
    /// The function (crate and binary) the event is for.
    pub function: &'static str,
    pub seed: Seed,
    /// The HTTP status the function must answer; for the indexer and reindex functions, which
    /// are not behind the HTTP API, 200 means "handled without error".
    pub status: u16,
}

/// Every file in events/, with its function and expected answer.
pub const EXPECTATIONS: &[Expectation] = &[
    Expectation { file: "create-plan.json", function: "create-plan", seed: Seed::Nothing, status: 201 },
    Expectation { file: "list-plans.json", function: "list-plans", seed: Seed::SamplePlan, status: 200 },
    Expectation { file: "get-plan.json", function: "get-plan", seed: Seed::SamplePlan, status: 200 },
    Expectation { file: "put-plan.json", function: "put-plan", seed: Seed::SamplePlan, status: 200 },
    Expectation { file: "patch-plan.json", function: "patch-plan", seed: Seed::SamplePlan, status: 200 },
    Expectation { file: "delete-plan.json", function: "delete-plan", seed: Seed::SamplePlan, status: 204 },
    Expectation { file: "health.json", function: "health", seed: Seed::Nothing, status: 200 },
    Expectation { file: "get-schema.json", function: "get-schema", seed: Seed::Nothing, status: 200 },
    Expectation { file: "api-docs.json", function: "api-docs", seed: Seed::Nothing, status: 200 },
    Expectation { file: "search-plans.json", function: "search-plans", seed: Seed::IndexedSamplePlan, status: 200 },
    Expectation { file: "search-plans-query.json", function: "search-plans-query", seed: Seed::IndexedSamplePlan, status: 200 },
    Expectation { file: "get-indexed-plan.json", function: "get-indexed-plan", seed: Seed::IndexedSamplePlan, status: 200 },
    Expectation { file: "get-index-data.json", function: "get-index-data", seed: Seed::IndexedSamplePlan, status: 200 },
    Expectation { file: "indexer-msk-batch.json", function: "indexer", seed: Seed::Nothing, status: 200 },
    Expectation { file: "reindex-schedule.json", function: "reindex", seed: Seed::SamplePlan, status: 200 },
    Expectation { file: "reindex-drift.json", function: "reindex", seed: Seed::IndexedSamplePlan, status: 200 },
];

/// The functions fed by other AWS events than the HTTP API (MSK, EventBridge, direct invoke).
pub const NON_HTTP_FUNCTIONS: &[&str] = &["indexer", "reindex"];

pub fn events_dir() -> PathBuf {
    workspace_root().join("events")
}

/// The names of the files in events/, sorted.
pub fn event_files() -> Vec<String> {
    let dir = events_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_file())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The raw text and the parsed JSON of one event file.
pub fn read_event(file: &str) -> (String, Value) {
    let path = events_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    (text, json)
}

/// Puts `seed` into the store behind `backends` (and its index); the created sample plan when
/// there is one.
pub async fn seed(backends: &Backends, seed: Seed) -> Option<Representation> {
    seed_into(backends, backends.index().as_ref(), seed).await
}

/// As [`seed`], indexing into `index` (a function under the emulator reads another process's).
pub async fn seed_into(backends: &Backends, index: &dyn plan_index::PlanIndex, seed: Seed) -> Option<Representation> {
    if seed == Seed::Nothing {
        return None;
    }
    let caller = Caller::new(Tenant::unrestricted(), "seed");
    let created = backends.writes().create(crate::sample_plan(), &caller).await.expect("seed the sample plan");
    if seed == Seed::IndexedSamplePlan {
        let plan = plan::validate::parse_plan(crate::sample_plan()).expect("the sample plan");
        let change = plan_index::IndexChange::Upsert { plan, version: created.version };
        index.apply(&[change]).await.expect("index the sample plan");
    }
    Some(created)
}

/// A header of an event, by lower-case name (API Gateway lower-cases them).
pub fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event.get("headers")?.get(name)?.as_str()
}

/// Change events as one partition of a topic holds them (offsets from 0): what the indexer's
/// tests feed it.
pub fn topic_records(events: &[plan::events::ChangeEvent]) -> Vec<plan_events::ConsumedRecord> {
    events
        .iter()
        .enumerate()
        .map(|(offset, event)| plan_events::ConsumedRecord::of_event("plan_operations", 0, offset as i64, 0, event))
        .collect()
}
