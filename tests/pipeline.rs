//! The event pipeline end to end: HTTP write -> Redis -> Kafka (tansu) -> local poller -> indexer
//! -> index, and its failure modes: replays, out-of-order batches, poison records, a broker that
//! stops in the middle of a burst of writes.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plan::WritePolicy;
use plan::jobs::sweep;
use plan::store::{PlanReader, PlanWriter, StoreWalk};
use plan_e2e::app::{TestApp, header, spawn_app, test_auth};
use plan_e2e::{plan_service, redis_store, service_var, tag, unique_plan};
use plan_events::indexer::{Indexer, MemoryDeadLetters};
use plan_events::{ConsumedRecord, KafkaAuth, KafkaConfig, KafkaPublisher, Offsets, msk_event, run_poller};
use plan_index::{EmbeddedIndex, PlanIndex};
use plan_store::RedisStore;
use plan_wiring::Backends;
use plan_wiring::reindex::drift_check;
use serde_json::{Value, json};

fn kafka_config(bootstrap: &str, timeout: Duration) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: vec![bootstrap.to_owned()],
        topic: format!("plan_operations_{}", tag()),
        tls: false,
        timeout,
        create_partitions: 3,
        topic_creation: plan_events::TopicCreation::WithReplicationFactor(1),
        auth: KafkaAuth::None,
        linger: Duration::from_millis(2),
    }
}

struct Pipeline {
    app: TestApp,
    store: Arc<RedisStore>,
    index: Arc<EmbeddedIndex>,
    dead_letters: Arc<MemoryDeadLetters>,
    publisher: Arc<KafkaPublisher>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

async fn pipeline(bootstrap: &str, timeout: Duration) -> Option<Pipeline> {
    let store = redis_store()?;
    let kafka = kafka_config(bootstrap, timeout);
    let index = Arc::new(EmbeddedIndex::new());
    let dead_letters = Arc::new(MemoryDeadLetters::default());
    let indexer = Arc::new(Indexer::new(index.clone(), dead_letters.clone()));
    let publisher = Arc::new(KafkaPublisher::new(kafka.clone()));
    let poller = tokio::spawn(run_poller(kafka, indexer, Offsets::default()));
    let app = spawn_app(Backends::with_parts(store.clone(), publisher.clone(), WritePolicy::default()).with_auth(test_auth(None))).await;
    Some(Pipeline { app, store, index, dead_letters, publisher, poller })
}

/// Waits until the index holds exactly this version of the plan (or, for `None`, nothing).
async fn until_indexed(index: &dyn PlanIndex, plan: &Value, version: Option<u64>) {
    let id = plan::ObjectId::parse(plan["objectId"].as_str().unwrap()).unwrap();
    let object_ids = plan::validate::parse_plan(plan.clone()).unwrap().object_ids();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let indexed = index.indexed(&id).await.unwrap();
        let done = match (version, &indexed) {
            (Some(version), Some(indexed)) => indexed.matches(version, &object_ids),
            (None, None) => true,
            _ => false,
        };
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "index never reached version {version:?} of {id}: {indexed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id_of(plan: &Value) -> String {
    plan["objectId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_writes_reach_the_index_through_kafka() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let Some(p) = pipeline(&bootstrap, Duration::from_secs(5)).await else { return };
    let mut plan = unique_plan(&tag());
    let id = id_of(&plan);
    let created = p.app.create(&plan).await;
    assert_eq!(created.status(), 201);
    until_indexed(p.index.as_ref(), &plan, Some(1)).await;

    // PUT that drops a linked plan service: its documents disappear.
    plan["linkedPlanServices"].as_array_mut().unwrap().pop();
    let replaced = p.app.put(&id, &plan, Some(&header(&created, "etag"))).await;
    assert_eq!(replaced.status(), 200);
    until_indexed(p.index.as_ref(), &plan, Some(2)).await;

    // PATCH that adds one: its documents appear.
    let added = plan_service(&tag(), "dental", 15);
    let patched = p.app.merge_patch(&id, &json!({"linkedPlanServices": [added.clone()]}), Some(&header(&replaced, "etag"))).await;
    assert_eq!(patched.status(), 200);
    plan["linkedPlanServices"].as_array_mut().unwrap().push(added);
    until_indexed(p.index.as_ref(), &plan, Some(3)).await;
    let rebuilt = p.index.plan_from_index(&plan::ObjectId::parse(&id).unwrap(), &plan::Tenant::unrestricted()).await.unwrap().unwrap();
    assert!(rebuilt.complete);
    assert_eq!(serde_json::from_str::<Value>(&rebuilt.body).unwrap(), plan, "the index holds exactly the plan's objects");

    // DELETE: nothing of the plan is left.
    assert_eq!(p.app.delete(&id, Some(&header(&patched, "etag"))).await.status(), 204);
    until_indexed(p.index.as_ref(), &plan, None).await;
    assert!(p.dead_letters.letters().is_empty());
}

/// One write followed through the logs, as an operator would: the HTTP function (in process, with
/// the Lambda runtime's context) writes with a request id and an X-Ray trace id, both travel in the
/// Kafka record's headers, and the indexer logs the record under both. `current_thread`: every
/// task of the test logs into this thread's capture.
#[tokio::test]
async fn a_write_and_its_indexing_are_logged_under_one_request_id() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let Some(store) = redis_store() else { return };
    let logs = plan_e2e::logs::LogCapture::default();
    let _capture = logs.install();
    let kafka = kafka_config(&bootstrap, Duration::from_secs(5));
    let index = Arc::new(EmbeddedIndex::new());
    let indexer = Arc::new(Indexer::new(index.clone(), Arc::new(MemoryDeadLetters::default())));
    let poller = tokio::spawn(run_poller(kafka.clone(), indexer, Offsets::default()));
    let backends =
        Backends::with_parts(store, Arc::new(KafkaPublisher::new(kafka.clone())), WritePolicy::default()).with_auth(test_auth(None));

    let plan = unique_plan(&tag());
    let request_id = format!("trace-test-{}", tag());
    let trace_id = "Root=1-6740a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/plan")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", plan_e2e::app::full_token()))
        .header("x-request-id", &request_id)
        .body(lambda_http::Body::from(plan.to_string()))
        .unwrap();
    let mut context = lambda_http::Context::default();
    context.xray_trace_id = Some(trace_id.to_owned());
    request.extensions_mut().insert(context);
    let response = tower::ServiceExt::oneshot(plan_wiring::router(&[plan_http::Endpoint::CreatePlan], &backends), request).await.unwrap();
    assert_eq!(response.status(), 201);
    until_indexed(index.as_ref(), &plan, Some(1)).await;
    poller.abort();

    // The record's headers.
    let client = plan_events::kafka::connect(&kafka).await.unwrap();
    let partition = plan_events::partition_for(id_of(&plan).as_bytes(), kafka.create_partitions);
    let partition_client =
        client.partition_client(kafka.topic.clone(), partition, rskafka::client::partition::UnknownTopicHandling::Retry).await.unwrap();
    let (records, _) = partition_client.fetch_records(0, 1..1_000_000, 100).await.unwrap();
    let headers =
        &records.iter().find(|r| r.record.key.as_deref() == Some(id_of(&plan).as_bytes())).expect("the plan's record").record.headers;
    let text = |name: &str| headers.get(name).map(|value| String::from_utf8_lossy(value).into_owned());
    assert_eq!(text("requestId").as_deref(), Some(request_id.as_str()));
    assert_eq!(text("traceId").as_deref(), Some(trace_id));
    assert_eq!(text("schemaVersion").as_deref(), Some("1"));

    // The logs: the request's answer and the record's indexing under the same ids.
    let lines = logs.lines();
    let under_request = |message: &str| {
        lines
            .iter()
            .filter(|line| line["fields"]["message"] == message && line["span"]["request_id"] == request_id.as_str())
            .cloned()
            .collect::<Vec<Value>>()
    };
    let answered = under_request("answered");
    assert_eq!(answered.len(), 1, "{lines:#?}");
    assert_eq!(answered[0]["span"]["trace_id"], trace_id);
    assert_eq!(answered[0]["fields"]["status"], 201);
    let indexed = under_request("record indexed");
    assert_eq!(indexed.len(), 1, "{lines:#?}");
    assert_eq!(indexed[0]["span"]["trace_id"], trace_id);
    assert_eq!(indexed[0]["fields"]["plan"], id_of(&plan).as_str());
    assert_eq!(indexed[0]["fields"]["outcome"], "applied");
    assert_eq!(indexed[0]["span"]["partition"], partition);
}

/// A record whose value is not an event is still logged under the request that wrote it: the
/// trace context comes from the headers, not from the value.
#[tokio::test]
async fn a_poison_record_is_logged_under_the_request_that_wrote_it() {
    let logs = plan_e2e::logs::LogCapture::default();
    let _capture = logs.install();
    let dead_letters = Arc::new(MemoryDeadLetters::default());
    let indexer = Indexer::new(Arc::new(EmbeddedIndex::new()), dead_letters.clone());
    let poison = ConsumedRecord {
        topic: "plan_operations".into(),
        partition: 2,
        offset: 9,
        key: Some(b"p".to_vec()),
        value: Some(b"{not an event".to_vec()),
        timestamp_ms: 0,
        headers: vec![("requestId".to_owned(), b"req-poison".to_vec()), ("traceId".to_owned(), b"Root=1-abc".to_vec())],
    };
    let report = indexer.index_batch(&msk_event(&[poison], "arn:test")).await.unwrap();
    assert_eq!(report.dead_lettered, 1);
    let lines = logs.lines();
    let line =
        lines.iter().find(|l| l["fields"]["message"] == "poison record dead-lettered and skipped").expect("the poison record's line");
    assert_eq!((&line["span"]["request_id"], &line["span"]["trace_id"]), (&json!("req-poison"), &json!("Root=1-abc")));
    assert_eq!((&line["span"]["partition"], &line["span"]["offset"]), (&json!(2), &json!(9)));
}

/// Records of a sequence of changes to several plans, as a topic would hold them.
async fn recorded_changes() -> Vec<ConsumedRecord> {
    let publisher = Arc::new(plan_e2e::RecordingPublisher::default());
    let app = spawn_app(
        Backends::with_parts(Arc::new(plan_store::EmbeddedStore::new()), publisher.clone(), WritePolicy::default())
            .with_auth(test_auth(None)),
    )
    .await;
    let plans: Vec<Value> = (0..4).map(|_| unique_plan(&tag())).collect();
    for plan in &plans {
        assert_eq!(app.create(plan).await.status(), 201);
    }
    for (i, plan) in plans.iter().enumerate() {
        let etag = app.etag(&id_of(plan)).await;
        let patch = json!({"planType": format!("type-{i}"), "linkedPlanServices": [plan_service(&tag(), "vision", i as u64)]});
        assert_eq!(app.merge_patch(&id_of(plan), &patch, Some(&etag)).await.status(), 200);
    }
    let mut dropped = plans[1].clone();
    dropped["linkedPlanServices"].as_array_mut().unwrap().truncate(1);
    let etag = app.etag(&id_of(&plans[1])).await;
    let current: Value = app.get(&id_of(&plans[1])).await.json().await.unwrap();
    dropped["planType"] = current["planType"].clone();
    assert_eq!(app.put(&id_of(&plans[1]), &dropped, Some(&etag)).await.status(), 200);
    let etag = app.etag(&id_of(&plans[2])).await;
    assert_eq!(app.delete(&id_of(&plans[2]), Some(&etag)).await.status(), 204);
    plan_e2e::events::topic_records(&publisher.events())
}

/// Everything the index holds for these plans, as comparable text.
async fn index_state(index: &dyn PlanIndex, records: &[ConsumedRecord]) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for record in records {
        let id = plan::ObjectId::parse(std::str::from_utf8(record.key.as_ref().unwrap()).unwrap()).unwrap();
        let indexed = index.indexed(&id).await.unwrap();
        let rebuilt = index.plan_from_index(&id, &plan::Tenant::unrestricted()).await.unwrap();
        state.insert(id.to_string(), format!("{indexed:?} {:?}", rebuilt.map(|r| (r.version, r.body, r.complete))));
    }
    state
}

#[tokio::test]
async fn replays_and_out_of_order_batches_leave_the_index_identical() {
    let records = recorded_changes().await;
    assert!(records.len() >= 10);
    let indexer_over = |index: Arc<EmbeddedIndex>| Indexer::new(index, Arc::new(MemoryDeadLetters::default()));

    let reference = Arc::new(EmbeddedIndex::new());
    let indexer = indexer_over(reference.clone());
    indexer.index_batch(&msk_event(&records, "arn")).await.unwrap();
    let expected = index_state(reference.as_ref(), &records).await;

    // The whole topic replayed twice, in batches of three.
    for _ in 0..2 {
        for batch in records.chunks(3) {
            indexer.index_batch(&msk_event(batch, "arn")).await.unwrap();
        }
    }
    assert_eq!(index_state(reference.as_ref(), &records).await, expected, "replays change nothing");

    // Delivered out of order: newest first, then everything again in a shuffled order.
    let shuffled = Arc::new(EmbeddedIndex::new());
    let indexer = indexer_over(shuffled.clone());
    let mut reversed: Vec<ConsumedRecord> = records.iter().rev().cloned().collect();
    for (i, record) in reversed.iter_mut().enumerate() {
        record.partition = (i % 3) as i32; // other partitions, so delivery order really is reversed
    }
    for record in &reversed {
        indexer.index_batch(&msk_event(std::slice::from_ref(record), "arn")).await.unwrap();
    }
    assert_eq!(index_state(shuffled.as_ref(), &records).await, expected, "older versions never regress the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_and_the_partition_moves_on() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let Some(p) = pipeline(&bootstrap, Duration::from_secs(5)).await else { return };
    let before = unique_plan(&tag());
    assert_eq!(p.app.create(&before).await.status(), 201);
    until_indexed(p.index.as_ref(), &before, Some(1)).await;
    // A record no indexer can decode, on the same partition as the next plan's events.
    let after = unique_plan(&tag());
    let (partition, offset) =
        p.publisher.produce(&id_of(&after), b"{\"not\": \"a change event\"}".to_vec(), Default::default()).await.unwrap();
    assert_eq!(p.app.create(&after).await.status(), 201);
    until_indexed(p.index.as_ref(), &after, Some(1)).await;
    let letters = p.dead_letters.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].partition, letters[0].offset), (i64::from(partition), offset));
    assert!(letters[0].reason.contains("not a change event"), "{}", letters[0].reason);
    assert_eq!(letters[0].value.as_deref(), Some(b"{\"not\": \"a change event\"}".as_slice()));
}

/// A tansu broker of this test's own, to stop and resume.
struct OwnBroker(Child, String);

impl OwnBroker {
    fn start(binary: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child, format!("127.0.0.1:{port}"))
    }

    fn signal(&self, signal: &str) {
        assert!(Command::new("kill").arg(format!("-{signal}")).arg(self.0.id().to_string()).status().unwrap().success());
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_stopped_during_200_writes_loses_no_acknowledged_write() {
    let Some(tansu) = service_var("PLAN_TEST_TANSU") else { return };
    let broker = OwnBroker::start(&tansu);
    let Some(p) = pipeline(&broker.1, Duration::from_millis(250)).await else { return };
    let plans: Vec<Value> = (0..20).map(|_| unique_plan(&tag())).collect();
    let mut acknowledged = 0;
    // Stopped for writes 60..120, running again, then stopped for the last 20 (one per plan), so
    // that the newest version of every plan was acknowledged while the broker was down.
    for write in 0..200 {
        match write {
            60 | 180 => broker.signal("STOP"),
            120 => broker.signal("CONT"),
            _ => {}
        }
        let plan = &plans[write % plans.len()];
        let response = if write < plans.len() {
            p.app.create(plan).await
        } else {
            let etag = p.app.etag(&id_of(plan)).await;
            p.app.merge_patch(&id_of(plan), &json!({"planCostShares": {"copay": write}}), Some(&etag)).await
        };
        assert!(response.status().is_success(), "write {write}: {}", response.status());
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 200);
    broker.signal("CONT");

    // The sweep publishes what the stopped broker never acknowledged; then store and index agree.
    let store_walk: &dyn StoreWalk = p.store.as_ref();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut republished = 0;
    loop {
        let swept = sweep(store_walk, p.store.as_ref() as &dyn PlanWriter, p.publisher.as_ref()).await;
        republished += swept.as_ref().map_or(0, |report| report.republished);
        let drift = drift_check(store_walk, p.index.as_ref(), &|_| {}).await.unwrap();
        if swept.is_ok() && drift.drift.is_empty() {
            assert_eq!(drift.plans_checked, plans.len());
            // Every version the stopped broker never acknowledged: at least each plan's newest (the
            // last 20 writes), at most the 80 writes made while it was stopped.
            assert!((plans.len()..=80).contains(&republished), "the sweep published {republished} unacknowledged versions");
            break;
        }
        eprintln!("sweep: {swept:?}; {} plan(s) differ", drift.drift.len());
        assert!(Instant::now() < deadline, "store and index never converged: {swept:?} {:?}", drift.drift);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged write is searchable: the index holds each plan's latest version.
    for plan in &plans {
        let stored = p.store.plan(&plan::ObjectId::parse(&id_of(plan)).unwrap()).await.unwrap().unwrap();
        let indexed = p.index.indexed(&stored.id).await.unwrap().unwrap();
        assert_eq!(indexed.plan_version, Some(stored.version));
    }
}
