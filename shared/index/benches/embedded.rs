//! The embedded index at 100,000 plans (800,000 objects): indexing time and throughput, memory,
//! and p50/p99 of each canonical search. Not a timed test: figures to compare, printed.
//!
//!     cargo bench -p plan-index --bench embedded            # 100,000 plans
//!     PLANS=20000 cargo bench -p plan-index --bench embedded

mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use plan::Tenant;
use plan_index::{EmbeddedIndex, IndexChange, PlanIndex, SearchQuery};

/// Counts live heap bytes, so the index's own memory can be told from the input's.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BATCH: usize = 500;
const RUNS: usize = 200;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let count: usize = std::env::var("PLANS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("tokio: {e}"));
    let empty = LIVE.load(Ordering::Relaxed);
    let plans = workload::plans(count);
    let input = LIVE.load(Ordering::Relaxed).saturating_sub(empty);
    let objects: usize = plans.iter().map(|p| 2 + 3 * p.linked_plan_services.len()).sum();
    let changes: Vec<IndexChange> = plans.into_iter().map(|plan| IndexChange::Upsert { plan, version: 1 }).collect();

    let before = LIVE.load(Ordering::Relaxed);
    let index = EmbeddedIndex::new();
    let started = Instant::now();
    for batch in changes.chunks(BATCH) {
        runtime.block_on(index.apply(batch)).unwrap_or_else(|e| panic!("apply: {e}"));
    }
    let took = started.elapsed();
    let memory = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    println!("embedded index: {count} plans, {objects} objects (documents), batches of {BATCH}");
    println!(
        "  indexing: {:.2} s, {:.0} documents/s, {:.0} plans/s",
        took.as_secs_f64(),
        objects as f64 / took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
    println!(
        "  memory held by the index: {:.0} MiB ({:.0} bytes per plan; the typed plans themselves take {:.0} MiB of it)",
        mib(memory),
        memory as f64 / count as f64,
        mib(input)
    );

    // A replayed batch is all AlreadyApplied: the cost of a duplicate delivery.
    let started = Instant::now();
    for batch in changes.chunks(BATCH).take(20) {
        runtime.block_on(index.apply(batch)).unwrap_or_else(|e| panic!("apply: {e}"));
    }
    let replayed = (BATCH * 20).min(changes.len());
    println!("  replay of {replayed} plans already indexed: {:.0} plans/s", replayed as f64 / started.elapsed().as_secs_f64());

    println!("\n  {:<42} {:>8} {:>9} {:>9} {:>9}", "search (size 20 unless stated)", "total", "p50 ms", "p99 ms", "max ms");
    let tenant = Tenant::unrestricted();
    let mut searches = workload::canonical_searches();
    // A page in the middle of a long result: the cursor of the page after half of the matches.
    let search = |query: &SearchQuery| runtime.block_on(index.search(query, &tenant)).unwrap_or_else(|e| panic!("search: {e}"));
    let with_cursor = |cursor: &str, size: usize| {
        let body = serde_json::json!({"planType": "inNetwork", "size": size, "cursor": cursor});
        SearchQuery::from_json(&body).unwrap_or_else(|v| panic!("{v:?}"))
    };
    let mut page = search(&SearchQuery { size: 100, ..searches[5].1.clone() });
    let mut seen = page.hits.len() as u64;
    while seen < page.total / 2 {
        let Some(cursor) = page.next_cursor.clone() else { break };
        page = search(&with_cursor(&cursor, 100));
        seen += page.hits.len() as u64;
    }
    if let Some(cursor) = &page.next_cursor {
        searches.push(("planType inNetwork, page at half (cursor)", with_cursor(cursor, 20)));
    }
    for (name, query) in &searches {
        let mut samples = Vec::with_capacity(RUNS);
        let mut total = 0;
        for run in 0..RUNS + 10 {
            let started = Instant::now();
            let page = search(query);
            if run >= 10 {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            total = page.total;
        }
        report(name, total, &mut samples);
    }

    // A search right after a write pays for rebuilding the columns once.
    let query = &searches[1].1;
    let mut samples = Vec::new();
    let mut total = 0;
    for change in changes.iter().take(50) {
        let IndexChange::Upsert { plan, version } = change else { continue };
        let update = IndexChange::Upsert { plan: plan.clone(), version: version + 10 };
        runtime.block_on(index.apply(std::slice::from_ref(&update))).unwrap_or_else(|e| panic!("apply: {e}"));
        let started = Instant::now();
        total = search(query).total;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    report("service copay >= 100, right after a write", total, &mut samples);
}

fn report(name: &str, total: u64, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    println!(
        "  {:<42} {:>8} {:>9.2} {:>9.2} {:>9.2}",
        name,
        total,
        workload::percentile(samples, 50.0),
        workload::percentile(samples, 99.0),
        samples.last().copied().unwrap_or_default()
    );
}
