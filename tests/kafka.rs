//! The Kafka adapter against a real broker (tansu from the test script, or any Kafka through
//! PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS: docker compose, MSK).

use std::collections::BTreeMap;
use std::time::Duration;

use plan::events::{ChangeEvent, ChangePublisher, Operation};
use plan::probe::Probe;
use plan_e2e::{service_var, tag, unique_plan};
use plan_events::{KafkaAuth, KafkaConfig, KafkaPublisher, partition_for};
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

fn config(bootstrap: &str, topic: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: vec![bootstrap.to_owned()],
        topic: topic.to_owned(),
        tls: false,
        timeout: Duration::from_secs(5),
        create_partitions: 3,
        topic_creation: plan_events::TopicCreation::WithReplicationFactor(1),
        auth: KafkaAuth::None,
        linger: Duration::from_millis(2),
    }
}

/// Every record of every partition of a topic, as (partition, key, event).
async fn read_all(config: &KafkaConfig) -> Vec<(i32, String, ChangeEvent)> {
    let client = plan_events::kafka::connect(config).await.unwrap();
    let mut out = Vec::new();
    for partition in 0..config.create_partitions {
        let partition_client = client.partition_client(config.topic.clone(), partition, UnknownTopicHandling::Retry).await.unwrap();
        let mut offset = partition_client.get_offset(OffsetAt::Earliest).await.unwrap();
        loop {
            let (records, _) = partition_client.fetch_records(offset, 1..1_000_000, 100).await.unwrap();
            let records: Vec<_> = records.into_iter().filter(|r| r.offset >= offset).collect();
            let Some(last) = records.last().map(|r| r.offset) else { break };
            for record in records {
                let key = String::from_utf8(record.record.key.unwrap()).unwrap();
                out.push((partition, key, ChangeEvent::decode(&record.record.value.unwrap()).unwrap()));
            }
            offset = last + 1;
        }
    }
    out
}

#[tokio::test]
async fn events_are_keyed_by_plan_and_keep_per_plan_order() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let config = config(&bootstrap, &format!("plan_operations_test_{}", tag()));
    let publisher = KafkaPublisher::new(config.clone());
    publisher.ping().await.unwrap();
    let plans: Vec<_> = (0..4).map(|_| plan::validate::parse_plan(unique_plan(&tag())).unwrap()).collect();
    for version in 1..=3 {
        for plan in &plans {
            publisher.publish(&ChangeEvent::upsert(plan.clone(), version, "req")).await.unwrap();
        }
    }
    publisher.publish(&ChangeEvent::delete(plans[0].object_id.clone(), 4, "req-delete")).await.unwrap();

    let records = read_all(&config).await;
    assert_eq!(records.len(), 4 * 3 + 1);
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (partition, key, event) in &records {
        assert_eq!(key, event.plan_id.as_str(), "keyed by plan id");
        assert_eq!(*partition, partition_for(key.as_bytes(), 3), "Kafka's default partitioner");
        versions.entry(key.clone()).or_default().push(event.version);
    }
    for plan in &plans[1..] {
        assert_eq!(versions[plan.object_id.as_str()], [1, 2, 3], "per-plan order");
    }
    assert_eq!(versions[plans[0].object_id.as_str()], [1, 2, 3, 4]);
    let last = records.iter().find(|(_, _, e)| e.version == 4).unwrap();
    assert_eq!(last.2.operation, Operation::Delete);
    assert!(last.2.plan.is_none());
}

#[tokio::test]
async fn an_unreachable_broker_fails_within_the_deadline() {
    let Some(_) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = config(&format!("127.0.0.1:{port}"), "nowhere");
    config.timeout = Duration::from_millis(500);
    let publisher = KafkaPublisher::new(config);
    let event = ChangeEvent::upsert(plan::validate::parse_plan(unique_plan(&tag())).unwrap(), 1, "");
    let started = std::time::Instant::now();
    assert!(publisher.publish(&event).await.is_err());
    assert!(publisher.ping().await.is_err());
    eprintln!("unreachable broker: publish failed after {:?}", started.elapsed());
}

/// Concurrent publishes through the batching producer (a linger of 2 ms, the local default; that
/// they share produce requests is shown in `kafka/partition.rs`, which can count them): each
/// caller is told its own record's place, the record at every acknowledged offset is that
/// caller's event, and every event is stored exactly once.
#[tokio::test]
async fn concurrent_publishes_each_land_where_acknowledged() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let config = config(&bootstrap, &format!("plan_operations_test_{}", tag()));
    assert_eq!(config.linger, Duration::from_millis(2));
    let publisher = KafkaPublisher::new(config.clone());
    publisher.ensure_topic().await.unwrap();
    let events: Vec<ChangeEvent> =
        (0..64).map(|_| ChangeEvent::upsert(plan::validate::parse_plan(unique_plan(&tag())).unwrap(), 1, "req-batch")).collect();
    let produced = futures_util::future::join_all(events.iter().map(|event| {
        let headers: BTreeMap<String, Vec<u8>> = event.headers().into_iter().collect();
        publisher.produce(event.plan_id.as_str(), event.to_json(), headers)
    }))
    .await;
    let records = read_all(&config).await;
    assert_eq!(records.len(), events.len(), "each event stored once");
    let client = plan_events::kafka::connect(&config).await.unwrap();
    for (event, place) in events.iter().zip(produced) {
        let (partition, offset) = place.unwrap();
        let partition_client = client.partition_client(config.topic.clone(), partition, UnknownTopicHandling::Retry).await.unwrap();
        let (fetched, _) = partition_client.fetch_records(offset, 1..1_000_000, 100).await.unwrap();
        let at = fetched.into_iter().find(|r| r.offset == offset).expect("a record at the acknowledged offset");
        assert_eq!(ChangeEvent::decode(&at.record.value.unwrap()).unwrap(), *event);
    }
}

/// A plan just under the stored-plan limit (long names everywhere), as a change event: it fits
/// the broker's record limit and comes back intact through the LZ4 codec.
#[tokio::test]
async fn the_largest_storable_plan_travels_compressed() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let config = config(&bootstrap, &format!("plan_operations_test_{}", tag()));
    let run = tag();
    let org = format!("{}.example.com", "o".repeat(200));
    let mut document = unique_plan(&run);
    let long = |prefix: &str, i: usize| format!("{prefix}-{run}-{i}-{}", "x".repeat(100));
    let service = |i: usize| {
        serde_json::json!({
            "_org": org, "objectId": long("ps", i), "objectType": "planservice",
            "linkedService": {"_org": org, "objectId": long("svc", i), "objectType": "service", "name": "n".repeat(256)},
            "planserviceCostShares": {"_org": org, "objectId": long("pcs", i), "objectType": "membercostshare", "deductible": 1, "copay": 2}
        })
    };
    document["linkedPlanServices"] = serde_json::Value::Array((0..660).map(service).collect());
    for pointer in ["", "/planCostShares"] {
        document.pointer_mut(pointer).unwrap()["_org"] = serde_json::json!(org);
    }
    let plan = plan::validate::parse_plan(document).unwrap();
    let size = plan.to_json().len();
    assert!((900_000..=plan::MAX_PLAN_BYTES).contains(&size), "{size} bytes");
    let event = ChangeEvent::upsert(plan, 1, "req-large");
    assert_eq!(plan_events::kafka::CHANGE_EVENT_COMPRESSION, rskafka::client::partition::Compression::Lz4);
    KafkaPublisher::new(config.clone()).publish(&event).await.unwrap();
    let records = read_all(&config).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].2, event, "the event came back whole");
}

/// The dead-letter topic (any missing topic) is created at start with the broker's default
/// replication factor, not a hard-coded 1.
#[tokio::test]
async fn a_missing_topic_is_created_on_ensure() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let topic = format!("dlq-{}", tag());
    let config = config(&bootstrap, &topic);
    KafkaPublisher::new(config.clone()).ensure_topic().await.expect("topic created");
    let client = plan_events::kafka::connect(&config).await.unwrap();
    let topics = client.list_topics().await.unwrap();
    assert!(topics.iter().any(|t| t.name == topic), "{topic} exists");
}

/// Counts the records it is handed.
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl plan_events::BatchHandler for Counting {
    async fn handle(&self, event: aws_lambda_events::event::kafka::KafkaEvent) -> Result<(), plan_events::BatchError> {
        self.0.fetch_add(plan_events::delivered_records(&event).len(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// The local poller started before its topic exists (a fresh local server) notices the topic the
/// first publish creates within a fraction of a second, not after a backoff grown to seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_finds_a_topic_created_after_it_started_at_once() {
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let config = config(&bootstrap, &format!("late-{}", tag()));
    let handler = std::sync::Arc::new(Counting::default());
    let poller = tokio::spawn(plan_events::run_poller(config.clone(), handler.clone(), plan_events::Offsets::default()));
    // Long enough for a doubling backoff to have grown past three seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let plan: plan::Plan = plan::validate::parse_plan(unique_plan(&tag())).unwrap();
    let started = std::time::Instant::now();
    KafkaPublisher::new(config).publish(&ChangeEvent::upsert(plan, 1, "")).await.unwrap();
    while handler.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the poller never consumed the record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    poller.abort();
    eprintln!("first record consumed {took:?} after the publish that created the topic");
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
}

/// Records the size of every batch it is handed.
#[derive(Default)]
struct Batches(std::sync::Mutex<Vec<usize>>);

#[async_trait::async_trait]
impl plan_events::BatchHandler for Batches {
    async fn handle(&self, event: aws_lambda_events::event::kafka::KafkaEvent) -> Result<(), plan_events::BatchError> {
        self.0.lock().unwrap().push(plan_events::delivered_records(&event).len());
        Ok(())
    }
}

impl Batches {
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Until the batches handed over since the last `take` hold `n` records.
    async fn wait_for(&self, n: usize) {
        let started = std::time::Instant::now();
        let delivered = || self.0.lock().unwrap().iter().sum::<usize>();
        while delivered() < n {
            assert!(started.elapsed() < Duration::from_secs(10), "the poller delivered {} of {n}", delivered());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The poller batches as the event source mapping does: a burst comes in batches of at most
/// `BATCH_SIZE` records; records that keep arriving faster than the partition is read come
/// together, one batch per window at most, rather than a fetch and a batch each; and a lone record
/// on a quiet partition is handed over at once, without waiting for a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_hands_over_batches_of_at_most_the_batch_size_once_per_window_while_busy() {
    use plan_events::poller::{BATCH_SIZE, BATCH_WINDOW};
    let Some(bootstrap) = service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS") else { return };
    let mut config = config(&bootstrap, &format!("batches-{}", tag()));
    config.create_partitions = 1;
    let publisher = KafkaPublisher::new(config.clone());
    publisher.ensure_topic().await.unwrap();
    let plan: plan::Plan = plan::validate::parse_plan(unique_plan(&tag())).unwrap();
    let mut version = 0;
    let mut events = |n: usize| {
        (0..n)
            .map(|_| {
                version += 1;
                ChangeEvent::upsert(plan.clone(), version, "")
            })
            .collect::<Vec<_>>()
    };
    let publish_all = |events: Vec<ChangeEvent>| {
        let publisher = &publisher;
        futures_util::future::join_all(events.into_iter().map(move |event| async move { publisher.publish(&event).await.unwrap() }))
    };

    let burst = 2 * BATCH_SIZE + 50;
    publish_all(events(burst)).await;
    let handler = std::sync::Arc::new(Batches::default());
    let poller = tokio::spawn(plan_events::run_poller(config.clone(), handler.clone(), plan_events::Offsets::default()));
    handler.wait_for(burst).await;
    let sizes = handler.take();
    assert!(sizes.iter().all(|n| *n <= BATCH_SIZE), "batches of the burst: {sizes:?}");
    assert!(sizes.len() >= 3, "batches of the burst: {sizes:?}");

    // Ten rounds of 20 records, 20 ms apart: each round alone would be a fetch and a batch.
    let (rounds, started) = (10, std::time::Instant::now());
    for _ in 0..rounds {
        publish_all(events(20)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    handler.wait_for(rounds * 20).await;
    let sizes = handler.take();
    let windows = (took.as_millis() / BATCH_WINDOW.as_millis()) as usize;
    eprintln!("{rounds} rounds of 20 records over {took:?} came in {} batches: {sizes:?}", sizes.len());
    assert!(sizes.len() <= windows + 2, "{} batches for {rounds} rounds over {took:?} ({windows} windows): {sizes:?}", sizes.len());

    // Then one record at a time, each published once the one before was handed over.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        publish_all(events(1)).await;
        handler.wait_for(1).await;
        waits.push(started.elapsed());
        handler.take();
    }
    poller.abort();
    waits.sort();
    eprintln!("a lone record handed over after {waits:?}");
    assert!(waits[2] < BATCH_WINDOW / 2, "the median lone record waited {:?}: {waits:?}", waits[2]);
}
