//! The sample events in events/ and what each must produce. One table serves both replays: the
//! in-process one (tests/events.rs) and the real Lambda runtime under the emulator
//! (tests/lambda_rie.rs). A file without a row here, or a row without a file, fails both.

use std::path::PathBuf;

use plan::{Caller, Representation, Tenant};
use plan_http::Backends;
use serde_json::Value;

use crate::sam::workspace_root;

/// What the store holds before the event arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    Nothing,
    /// The common sample plan (examples/plan.json, `12xvxc345ssdsds-508`), created as a client
    /// would, so its ETag is the one the write events carry in If-Match.
    SamplePlan,
}

#[derive(Debug, Clone, Copy)]
pub struct Expectation {
    /// File name in events/.
    pub file: &'static str,
    /// The function (crate and binary) the event is for.
    pub function: &'static str,
    pub seed: Seed,
    /// The HTTP status the function must answer.
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
];

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

/// Puts `seed` into the store behind `backends`; the created sample plan when there is one.
pub async fn seed(backends: &Backends, seed: Seed) -> Option<Representation> {
    match seed {
        Seed::Nothing => None,
        Seed::SamplePlan => {
            let caller = Caller::new(Tenant::unrestricted(), "seed");
            Some(backends.writes().create(crate::sample_plan(), &caller).await.expect("seed the sample plan"))
        }
    }
}

/// A header of an event, by lower-case name (API Gateway lower-cases them).
pub fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event.get("headers")?.get(name)?.as_str()
}
