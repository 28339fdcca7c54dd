//! Indexer throughput through the OpenSearch adapter, and the canonical searches over HTTP.
//! Needs a cluster: osmem-server as the test script runs it, or a real one.
//!
//!     OPENSEARCH_URL=http://127.0.0.1:9200 cargo bench -p plan-index --bench opensearch
//!     PLANS=20000 BATCH=200 OPENSEARCH_URL=... cargo bench -p plan-index --bench opensearch
//!
//! It writes to a fresh alias `plan-bench-<random>` and deletes it at the end. Against
//! osmem-server the figures measure osmem (an in-memory test double, not built for speed) as much
//! as the adapter; against a real cluster they measure the adapter and the cluster.

mod workload;

use std::time::Instant;

use plan::Tenant;
use plan_index::{ChangeOutcome, IndexChange, OpenSearchConfig, OpenSearchIndex, PlanIndex};

/// Timed runs of each search (after two warm-up runs).
const RUNS: usize = 20;

fn main() {
    let vars = std::env::vars().collect();
    let Some(mut config) = OpenSearchConfig::from_vars(&vars).unwrap_or_else(|problems| panic!("OPENSEARCH_*: {problems:?}")) else {
        eprintln!("set OPENSEARCH_URL (for example to an osmem-server: see the README's Benchmarks section)");
        return;
    };
    config.alias = format!("plan-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // osmem-server answers join searches over tens of thousands of documents in seconds.
    config.timeout = config.timeout.max(std::time::Duration::from_secs(120));
    let count: usize = std::env::var("PLANS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let batch: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("tokio: {e}"));
    let index = OpenSearchIndex::new(&config).unwrap_or_else(|e| panic!("client: {e}"));
    runtime.block_on(index.ensure_index()).unwrap_or_else(|e| panic!("create the index: {e}"));

    let plans = workload::plans(count);
    let objects: usize = plans.iter().map(|p| 2 + 3 * p.linked_plan_services.len()).sum();
    let changes: Vec<IndexChange> = plans.into_iter().map(|plan| IndexChange::Upsert { plan, version: 1 }).collect();
    println!("OpenSearch adapter at {}: {count} plans, {objects} documents, batches of {batch}", config.url);
    let started = Instant::now();
    for chunk in changes.chunks(batch) {
        let outcomes = runtime.block_on(index.apply(chunk)).unwrap_or_else(|e| panic!("apply: {e}"));
        assert!(outcomes.iter().all(|o| *o == ChangeOutcome::Applied), "{outcomes:?}");
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "  indexing (mget + bulk per batch): {took:.2} s, {:.0} documents/s, {:.0} plans/s",
        objects as f64 / took,
        count as f64 / took
    );

    // Every plan again at version 2: a full update replaces each document.
    let updates: Vec<IndexChange> = changes
        .iter()
        .map(|c| match c {
            IndexChange::Upsert { plan, .. } => IndexChange::Upsert { plan: plan.clone(), version: 2 },
            other => other.clone(),
        })
        .collect();
    let started = Instant::now();
    for chunk in updates.chunks(batch) {
        runtime.block_on(index.apply(chunk)).unwrap_or_else(|e| panic!("apply: {e}"));
    }
    let took = started.elapsed().as_secs_f64();
    println!("  updating every plan: {took:.2} s, {:.0} documents/s", objects as f64 / took);
    let started = Instant::now();
    for chunk in updates.chunks(batch) {
        runtime.block_on(index.apply(chunk)).unwrap_or_else(|e| panic!("apply: {e}"));
    }
    println!("  replaying them (all AlreadyApplied, mget only): {:.0} plans/s", count as f64 / started.elapsed().as_secs_f64());

    println!("\n  {:<42} {:>8} {:>9} {:>9}", "search (one request; two with a service)", "total", "p50 ms", "p99 ms");
    let tenant = Tenant::unrestricted();
    for (name, query) in workload::canonical_searches() {
        let mut samples = Vec::new();
        let mut total = 0;
        for run in 0..RUNS + 2 {
            let started = Instant::now();
            let page = runtime.block_on(index.search(&query, &tenant)).unwrap_or_else(|e| panic!("search: {e}"));
            if run >= 2 {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            total = page.total;
        }
        samples.sort_by(f64::total_cmp);
        println!("  {:<42} {:>8} {:>9.1} {:>9.1}", name, total, workload::percentile(&samples, 50.0), workload::percentile(&samples, 99.0));
    }
    runtime.block_on(index.delete_all()).unwrap_or_else(|e| panic!("delete the bench index: {e}"));
}
