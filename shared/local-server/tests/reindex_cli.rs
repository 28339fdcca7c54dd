//! `plan-local reindex <job>` with the real binary: the JSON report alone on stdout (logs on
//! stderr, so `| jq` works) and the documented exit status: 0 clean, 2 problems reported, 1 could
//! not run.

mod common;

use common::{mint, plan_local, serve, work_dir};
use serde_json::Value;

fn service(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| {
        assert!(std::env::var("PLAN_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"), "{name} is not set");
        eprintln!("skipping: {name} is not set");
        None
    })
}

#[test]
fn a_job_that_cannot_run_exits_1_with_nothing_on_stdout() {
    let dir = work_dir("reindex-usage");
    let output = plan_local(&dir, &[]).args(["reindex", "drift"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stderr).contains("set REDIS_URL"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn drift_prints_its_report_alone_on_stdout_and_exits_2_on_differences() {
    let (Some(redis), Some(opensearch)) = (service("PLAN_TEST_REDIS_URL"), service("PLAN_TEST_OPENSEARCH_URL")) else { return };
    let dir = work_dir("reindex-drift");
    let tag = format!("{}", std::process::id());
    let (prefix, alias) = (format!("cli{tag}"), format!("plan-test-cli-{tag}"));
    let vars = [
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("OPENSEARCH_URL", opensearch.as_str()),
        ("OPENSEARCH_INDEX", alias.as_str()),
    ];
    let token = mint(&dir, &["--org", "example.com"]);
    let (server, api) = serve(&dir, &vars);
    let client = reqwest::Client::new();
    let plan: Value = serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap();
    assert_eq!(client.post(format!("{api}/v1/plan")).bearer_auth(&token).json(&plan).send().await.unwrap().status(), 201);
    drop(server);

    let drift = |dir: &std::path::Path| plan_local(dir, &vars).args(["reindex", "drift"]).output().unwrap();
    let clean = drift(&dir);
    let report: Value = serde_json::from_slice(&clean.stdout).expect("stdout is the JSON report alone");
    assert_eq!((clean.status.code(), report["differences"].as_array().map(Vec::len)), (Some(0), Some(0)), "{report}");
    assert!(!clean.stderr.is_empty(), "the logs are on stderr");

    // The plan document goes missing from the index: drift reports it and exits 2.
    let gone =
        client.delete(format!("{opensearch}/{alias}/_doc/12xvxc345ssdsds-508?routing=12xvxc345ssdsds-508&refresh=true")).send().await;
    assert!(gone.unwrap().status().is_success());
    let drifted = drift(&dir);
    let report: Value = serde_json::from_slice(&drifted.stdout).expect("stdout is the JSON report alone");
    assert_eq!(drifted.status.code(), Some(2), "{report}");
    assert_eq!(report["differences"].as_array().map(Vec::len), Some(1), "{report}");
    let _ = client.delete(format!("{opensearch}/{alias}-*")).send().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
