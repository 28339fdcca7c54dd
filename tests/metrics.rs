//! The metrics vocabulary end to end: what requests through the local server's accept loop, the
//! indexer and the sweep record, as Prometheus text (scraped from the exporter's own listener)
//! and as CloudWatch embedded metric format lines.
//!
//! The `metrics` facade's global recorder is one per process, so no test here installs one:
//! each runs its workload on a current-thread runtime inside `metrics::with_local_recorder`,
//! where every task (the server's connections included) is polled on the test's own thread and
//! records into the test's own recorder. Parallel tests in this binary therefore never share a
//! series.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use plan::metrics::{CATALOG, FUNCTION_DIMENSION, Kind};
use plan::probe::{Probe, ProbeError};
use plan::store::{
    Expected, PageMark, PlanPage, PlanReader, PlanState, PlanWrite, PlanWriter, Repair, StoreError, StoreWalk, StoredPlan, TimedOut,
    WriteError,
};
use plan::{ObjectId, WritePolicy};
use plan_e2e::app::{TEST_AUDIENCE, TEST_ISSUER, TestApp, spawn_app, test_issuer};
use plan_e2e::jwks::key_set;
use plan_e2e::{set_org, unique_plan};
use plan_events::{ConsumedRecord, msk_event};
use plan_http::auth::{ClaimRules, JwksCache, JwksSource, JwksTiming, JwtRules, JwtVerifier};
use plan_http::{Authenticator, Endpoint};
use plan_index::{OpenSearchConfig, OpenSearchIndex};
use plan_local::exporter::{Sample, Summary};
use plan_store::EmbeddedStore;
use plan_wiring::Backends;
use plan_wiring::emf::{EmfRecorder, MAX_VALUES_PER_LINE};
use plan_wiring::reindex::{ReindexJob, ReindexReport};
use reqwest::Method;
use serde_json::{Value, json};

// ---- Test doubles: a store and a publisher whose failures the workload switches on ----------

/// The embedded store, able to lose the next compare-and-set and to time out.
#[derive(Default)]
struct FaultyStore {
    inner: EmbeddedStore,
    lose_next_commit: AtomicBool,
    timing_out: AtomicBool,
}

impl FaultyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.timing_out.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(TimedOut(std::time::Duration::from_millis(1500))));
        }
        Ok(())
    }
}

#[async_trait]
impl PlanReader for FaultyStore {
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        self.check()?;
        self.inner.plan(id).await
    }

    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        self.check()?;
        self.inner.owner(object_id).await
    }

    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError> {
        self.check()?;
        self.inner.page(org, after, limit).await
    }
}

#[async_trait]
impl PlanWriter for FaultyStore {
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError> {
        if matches!(write.expected, Expected::Version(_)) && self.lose_next_commit.swap(false, Ordering::SeqCst) {
            return Err(WriteError::VersionConflict);
        }
        self.inner.commit(write).await
    }

    async fn delete(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError> {
        self.inner.delete(id, expected).await
    }

    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError> {
        self.inner.mark_published(id, version).await
    }
}

#[async_trait]
impl StoreWalk for FaultyStore {
    async fn walk(&self, cursor: Option<String>, batch: usize) -> Result<(Vec<PlanState>, Option<String>), StoreError> {
        self.inner.walk(cursor, batch).await
    }

    async fn repair(&self, plans: &[PlanState]) -> Result<Vec<Repair>, StoreError> {
        self.inner.repair(plans).await
    }
}

#[async_trait]
impl Probe for FaultyStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), ProbeError> {
        Ok(self.check()?)
    }
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const REJECTING: u8 = 2;

/// Records what it publishes; down (every publish fails) or rejecting (the broker refuses the
/// record) on demand.
#[derive(Default)]
struct SwitchPublisher {
    mode: AtomicU8,
    events: Mutex<Vec<ChangeEvent>>,
}

#[async_trait]
impl ChangePublisher for SwitchPublisher {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Err(PublishError::new("the broker is down")),
            REJECTING => Err(PublishError::rejected("record too large")),
            _ => {
                self.events.lock().unwrap().push(event.clone());
                Ok(())
            }
        }
    }
}

// ---- The workload ---------------------------------------------------------------------------

struct World {
    app: TestApp,
    backends: Backends,
    store: Arc<FaultyStore>,
    publisher: Arc<SwitchPublisher>,
    /// An app whose index service is unreachable.
    no_index: TestApp,
    _jwks_dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Verifies test-issuer tokens against a JWKS file (so key loads are real fetches).
fn file_auth(dir: &std::path::Path) -> Authenticator {
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&key_set(&[test_issuer()])).unwrap()).unwrap();
    let rules = JwtRules { issuers: vec![TEST_ISSUER.into()], audiences: vec![TEST_AUDIENCE.into()], algorithms: vec![Algorithm::RS256] };
    let cache = Arc::new(JwksCache::new(JwksSource::File(path), JwksTiming::default()));
    Authenticator::verifying(JwtVerifier::new(cache, &rules), ClaimRules::default())
}

async fn world() -> World {
    let dir = std::env::temp_dir().join(format!("plan-metrics-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(FaultyStore::default());
    let publisher = Arc::new(SwitchPublisher::default());
    let policy = WritePolicy { require_if_match: false };
    let backends = Backends::with_parts(store.clone(), publisher.clone(), policy).with_auth(file_auth(&dir));
    let app = spawn_app(backends.clone()).await;
    let unreachable = Arc::new(OpenSearchIndex::new(&OpenSearchConfig::for_tests("http://127.0.0.1:1", "plans")).unwrap());
    let no_index = spawn_app(Backends::embedded(policy).with_index(unreachable).with_auth(file_auth(&dir))).await;
    World { app, backends, store, publisher, no_index, _jwks_dir: TempDir(dir) }
}

fn id_of(plan: &Value) -> String {
    plan["objectId"].as_str().unwrap().to_owned()
}

async fn status(response: reqwest::Response) -> u16 {
    response.status().as_u16()
}

/// What the workload wrote, so the cardinality test can look for it among the label values.
#[derive(Default)]
struct Written {
    ids: BTreeSet<String>,
    orgs: BTreeSet<String>,
}

/// Goes through every path that records a catalog metric, with plans and organisations of its
/// own (`tag`), `extra_plans` more plans besides.
async fn workload(world: &World, tag: &str, extra_plans: usize) -> Written {
    let mut written = Written::default();
    let app = &world.app;
    let org = format!("org-{tag}.example");
    written.orgs.insert(org.clone());
    let mut plan = unique_plan(tag);
    set_org(&mut plan, &org);
    let id = id_of(&plan);
    let nested = plan["planCostShares"]["objectId"].as_str().unwrap().to_owned();
    written.ids.extend([id.clone(), nested.clone()]);

    assert_eq!(status(app.as_caller(None).request(Method::GET, "/v1/health").send().await.unwrap()).await, 200);
    assert_eq!(status(app.as_caller(None).get(&id).await).await, 401, "no token");
    assert_eq!(status(app.create(&plan).await).await, 201);
    assert_eq!(status(app.get(&id).await).await, 200);
    assert_eq!(status(app.get(&nested).await).await, 200);
    assert_eq!(status(app.get(&format!("missing-{tag}")).await).await, 404);
    assert_eq!(status(app.request(Method::GET, "/v1/plan").send().await.unwrap()).await, 200);
    assert_eq!(status(app.request(Method::GET, &format!("/v1/nowhere/{tag}")).send().await.unwrap()).await, 404);

    // A compare-and-set lost to another writer: retried, then written.
    world.store.lose_next_commit.store(true, Ordering::SeqCst);
    assert_eq!(status(app.merge_patch(&id, &json!({"planType": "outOfNetwork"}), None).await).await, 200);
    // Another plan claiming this plan's objects: refused.
    let mut thief = plan.clone();
    thief["objectId"] = Value::from(format!("thief-{tag}"));
    assert_eq!(status(app.create(&thief).await).await, 409);

    // The broker down at write time: the change is acknowledged and left for the sweep, which
    // first meets a broker refusing the record, then one taking it.
    world.publisher.mode.store(DOWN, Ordering::SeqCst);
    assert_eq!(status(app.merge_patch(&id, &json!({"planType": "inNetwork"}), None).await).await, 200);
    world.publisher.mode.store(REJECTING, Ordering::SeqCst);
    let parts = world.backends.reindex_parts();
    plan_wiring::reindex::run(&parts, ReindexJob::Sweep, &|_| {}).await.unwrap();
    world.publisher.mode.store(UP, Ordering::SeqCst);
    let report = plan_wiring::reindex::run(&parts, ReindexJob::Sweep, &|_| {}).await.unwrap();
    assert!(matches!(report, ReindexReport::Sweep { republished: 1, .. }), "{report:?}");

    // Many plans of many organisations.
    for i in 0..extra_plans {
        let mut other = unique_plan(&format!("{tag}-{i}"));
        let other_org = format!("org-{tag}-{i}.example");
        set_org(&mut other, &other_org);
        assert_eq!(status(app.create(&other).await).await, 201);
        assert_eq!(status(app.get(&id_of(&other)).await).await, 200);
        written.ids.insert(id_of(&other));
        written.orgs.insert(other_org);
    }
    let mut doomed = unique_plan(&format!("{tag}-doomed"));
    set_org(&mut doomed, &org);
    assert_eq!(status(app.create(&doomed).await).await, 201);
    assert_eq!(status(app.delete(&id_of(&doomed), None).await).await, 204);
    written.ids.insert(id_of(&doomed));

    // The indexer: every published change, a poison record, then the same batch again.
    let events = std::mem::take(&mut *world.publisher.events.lock().unwrap());
    let mut records = plan_e2e::events::topic_records(&events);
    records.push(ConsumedRecord {
        topic: "plan_operations".into(),
        partition: 0,
        offset: records.len() as i64,
        key: Some(id.as_bytes().to_vec()),
        value: Some(b"{not a change event".to_vec()),
        timestamp_ms: 0,
        headers: Vec::new(),
    });
    let batch = msk_event(&records, "arn:aws:kafka:eu-west-1:123456789012:cluster/plans/abc");
    let report = world.backends.indexer().index_batch(&batch).await.unwrap();
    assert!(report.applied > 0 && report.dead_lettered == 1, "{report:?}");
    let report = world.backends.indexer().index_batch(&batch).await.unwrap();
    assert!(report.already_applied > 0, "{report:?}");

    // Searches of every kind, then one against an unreachable index.
    assert_eq!(status(app.request(Method::POST, "/v1/search").json(&json!({})).send().await.unwrap()).await, 200);
    assert_eq!(status(app.request(Method::GET, "/v1/search?planType=inNetwork").send().await.unwrap()).await, 200);
    assert_eq!(status(app.request(Method::GET, &format!("/v1/plan/es_plan/{id}")).send().await.unwrap()).await, 200);
    assert_eq!(status(app.request(Method::GET, &format!("/v1/plan/es_data?id={nested}")).send().await.unwrap()).await, 200);
    let unreachable = world.no_index.request(Method::POST, "/v1/search").json(&json!({})).send().await.unwrap();
    assert_eq!(status(unreachable).await, 503);

    // The store timing out.
    world.store.timing_out.store(true, Ordering::SeqCst);
    assert_eq!(status(app.get(&id).await).await, 503);
    world.store.timing_out.store(false, Ordering::SeqCst);

    plan_wiring::lambda::record_cold_start();
    written
}

/// Runs `work` on a current-thread runtime whose every task records into `recorder`.
fn recording<T>(recorder: &dyn metrics::Recorder, work: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(work))
}

// ---- Prometheus ------------------------------------------------------------------------------

/// The series of a scrape: name and labels -> value.
fn series(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    text.lines()
        .filter_map(Sample::parse)
        .map(|sample| {
            let labels = sample.labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            ((sample.name.to_owned(), labels), sample.value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The metric a Prometheus series belongs to (a histogram's `_bucket`, `_sum`, `_count`).
fn metric_of(series_name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series_name.strip_suffix(suffix).filter(|base| plan::metrics::find(base).is_some()))
        .unwrap_or(series_name)
}

#[test]
fn a_request_through_the_local_server_moves_exactly_its_counters() {
    let recorder = plan_local::exporter::recorder().unwrap();
    let handle = recorder.handle();
    recording(&recorder, async {
        let world = world().await;
        workload(&world, &plan_e2e::tag(), 0).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let exporter = tokio::spawn(plan_local::exporter::serve(listener, handle.clone(), std::future::pending()));
        let scrape = || async {
            let response = reqwest::get(&metrics_url).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(plan_e2e::app::header(&response, "content-type"), "text/plain; version=0.0.4; charset=utf-8");
            response.text().await.unwrap()
        };

        let mut plan = unique_plan(&plan_e2e::tag());
        set_org(&mut plan, "example.com");
        assert_eq!(world.app.create(&plan).await.status(), 201);
        let before = scrape().await;
        assert!(before.contains("# TYPE http_request_duration_seconds histogram"), "histograms, not summaries:\n{before}");
        assert_eq!(world.app.get(&id_of(&plan)).await.status(), 200);
        let after = scrape().await;

        let (before, after) = (series(&before), series(&after));
        let changed: BTreeMap<_, f64> = after
            .iter()
            .filter(|(key, _)| !key.0.ends_with("_bucket") && !key.0.ends_with("_sum"))
            .filter_map(|(key, value)| {
                let delta = value - before.get(key).copied().unwrap_or(0.0);
                (delta != 0.0).then(|| (key.clone(), delta))
            })
            .collect();
        let expected: BTreeMap<_, f64> = [
            ("http_requests_total", labels(&[("route", "/v1/plan/{id}"), ("method", "GET"), ("status", "200")])),
            ("http_request_duration_seconds_count", labels(&[("route", "/v1/plan/{id}"), ("method", "GET")])),
            ("store_operations_total", labels(&[("op", "plan"), ("outcome", "ok")])),
            ("store_operation_duration_seconds_count", labels(&[("op", "plan")])),
            ("store_reads_total", labels(&[("result", "hit")])),
        ]
        .into_iter()
        .map(|(name, labels)| ((name.to_owned(), labels), 1.0))
        .collect();
        assert_eq!(changed, expected, "one GET of a plan moves exactly these series, by one");

        // Every metric of the catalog is rendered, as its kind.
        let text = scrape().await;
        let rendered: BTreeSet<&str> = text.lines().filter_map(Sample::parse).map(|s| metric_of(s.name)).collect();
        let catalog: BTreeSet<&str> = CATALOG.iter().map(|m| m.name).collect();
        assert_eq!(rendered, catalog, "the catalog is exactly what the code emits");
        for metric in CATALOG {
            let kind = if metric.kind == Kind::Counter { "counter" } else { "histogram" };
            assert!(text.contains(&format!("# TYPE {} {kind}", metric.name)), "{} is a {kind}", metric.name);
        }
        let summary = Summary::from_text(&text);
        assert!(summary.requests > 0 && summary.store_hits > 0 && summary.records_indexed > 0 && summary.events_pending == 1, "{summary}");
        exporter.abort();
    });
}

#[test]
fn series_do_not_grow_with_the_data() {
    let recorder = plan_local::exporter::recorder().unwrap();
    let handle = recorder.handle();
    recording(&recorder, async {
        let world = world().await;
        let mut written = workload(&world, &plan_e2e::tag(), 3).await;
        let first: BTreeSet<_> = series(&handle.render()).into_keys().collect();
        for _ in 0..2 {
            let more = workload(&world, &plan_e2e::tag(), 25).await;
            written.ids.extend(more.ids);
            written.orgs.extend(more.orgs);
        }
        let last: BTreeSet<_> = series(&handle.render()).into_keys().collect();
        assert_eq!(first, last, "three times the plans, objectIds and organisations, the same series");
        assert!(written.ids.len() > 50 && written.orgs.len() > 50);

        for (name, labels) in &last {
            let metric = plan::metrics::find(metric_of(name)).unwrap_or_else(|| panic!("{name} is not in the catalog"));
            for (label, value) in labels {
                if label == "le" {
                    continue;
                }
                assert!(metric.labels.contains(&label.as_str()), "{name}: label {label} is not in the catalog");
                assert!(!written.ids.iter().any(|id| value.contains(id.as_str())), "{name}{{{label}={value}}} names an objectId");
                assert!(!written.orgs.iter().any(|org| value.contains(org.as_str())), "{name}{{{label}={value}}} names an organisation");
                let allowed = match label.as_str() {
                    "route" => value == "unmatched" || Endpoint::ALL.iter().any(|e| e.path() == value) || value == plan_http::JWKS_PATH,
                    "status" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()),
                    _ => plan::metrics::allowed_values(label).is_some_and(|values| values.contains(&value.as_str())),
                };
                assert!(allowed, "{name}: {label}={value} is outside the label's closed set");
            }
        }
    });
}

// ---- CloudWatch embedded metric format --------------------------------------------------------

#[test]
fn lambda_output_is_valid_emf_naming_exactly_the_catalog() {
    let recorder = EmfRecorder::new("HealthPlan", "create-plan");
    recording(&recorder, async {
        let world = world().await;
        workload(&world, &plan_e2e::tag(), 2).await;
    });
    let mut out = Vec::new();
    recorder.flush(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();

    let schema: Value = serde_json::from_str(include_str!("support/emf.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut emitted = BTreeSet::new();
    for line in text.lines() {
        let document: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        let errors: Vec<String> = validator.iter_errors(&document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:?} in {line}");
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "HealthPlan");
        assert_eq!(document[FUNCTION_DIMENSION], "create-plan");
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            let metric = plan::metrics::find(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
            assert_eq!(definition["Unit"], metric.unit.cloudwatch(), "{name}");
            let mut dimensions = vec![FUNCTION_DIMENSION];
            dimensions.extend_from_slice(metric.dimensions);
            assert_eq!(directive["Dimensions"], json!([dimensions]), "{name}: exactly the catalog's dimension set");
            for dimension in &dimensions {
                assert!(document[dimension].is_string(), "{name}: dimension {dimension} has no value in {line}");
            }
            for label in metric.labels {
                assert!(document[label].is_string(), "{name}: label {label} is not written as a property in {line}");
            }
            match (metric.kind, &document[name]) {
                (Kind::Counter, value) => assert!(value.as_u64().is_some_and(|n| n > 0), "{name}: {value}"),
                (Kind::Histogram, Value::Array(values)) => {
                    assert!(!values.is_empty() && values.len() <= MAX_VALUES_PER_LINE, "{name}: {} values", values.len());
                    assert!(values.iter().all(|v| v.as_f64().is_some_and(|v| v >= 0.0)), "{name}: {values:?}");
                }
                (Kind::Histogram, other) => panic!("{name}: {other} is not an array of values"),
            }
            emitted.insert(metric.name);
        }
    }
    let catalog: BTreeSet<&str> = CATALOG.iter().map(|m| m.name).collect();
    assert_eq!(emitted, catalog, "every catalog metric is emitted by some exercised path, and nothing else");

    let mut again = Vec::new();
    recorder.flush(&mut again).unwrap();
    assert!(again.is_empty(), "a flush writes each observation once");
}
