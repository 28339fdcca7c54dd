//! Write-to-searchable latency: from sending a write over HTTP to the index holding its version,
//! through Redis, Kafka (the tansu broker of the test script) and the local poller; and the same
//! through the in-process bus of the embedded mode. Run it with the services of the test script:
//!
//! ```sh
//! scripts/test --services-only   # prints the PLAN_TEST_* exports; or start your own
//! PLAN_TEST_REDIS_URL=... PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS=... cargo bench -p plan-e2e --bench write_to_searchable
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use plan::WritePolicy;
use plan::probe::Probe;
use plan_e2e::app::{TestApp, header, spawn_app, test_auth};
use plan_e2e::{plan_service, redis_config, tag, unique_plan};
use plan_events::indexer::{Indexer, MemoryDeadLetters};
use plan_events::{KafkaAuth, KafkaConfig, KafkaPublisher, Offsets, run_poller};
use plan_index::{EmbeddedIndex, PlanIndex};
use plan_store::{EmbeddedStore, RedisStore};
use plan_wiring::Backends;
use serde_json::json;

const WRITES: usize = 300;

async fn measure(app: &TestApp, index: &dyn PlanIndex) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(WRITES);
    let plan = unique_plan(&tag());
    let id = plan::ObjectId::parse(plan["objectId"].as_str().unwrap()).unwrap();
    let started = Instant::now();
    let created = app.create(&plan).await;
    assert_eq!(created.status(), 201);
    let mut etag = header(&created, "etag");
    latencies.push(until_version(index, &id, 1, started).await);
    for write in 1..WRITES {
        // Every tenth write adds a linked plan service, the others change a cost share: plans stay
        // the size of real ones.
        let patch = if write % 10 == 0 {
            json!({"linkedPlanServices": [plan_service(&format!("{}-{write}", tag()), "bench", write as u64)]})
        } else {
            json!({"planCostShares": {"copay": write}})
        };
        let started = Instant::now();
        let response = app.merge_patch(id.as_str(), &patch, Some(&etag)).await;
        assert_eq!(response.status(), 200);
        etag = header(&response, "etag");
        latencies.push(until_version(index, &id, write as u64 + 1, started).await);
    }
    latencies
}

async fn until_version(index: &dyn PlanIndex, id: &plan::ObjectId, version: u64, started: Instant) -> Duration {
    loop {
        if index.indexed(id).await.unwrap().is_some_and(|indexed| indexed.plan_version == Some(version)) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "version {version} never became searchable");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{name}: {} writes, write-to-searchable p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    // Embedded: store, in-process bus, indexer and index in this process.
    let backends = Backends::embedded(WritePolicy::default()).with_auth(test_auth(None));
    let index = backends.index();
    let app = spawn_app(backends).await;
    report("embedded (in-process bus)", measure(&app, index.as_ref()).await);

    let (Ok(redis), Ok(bootstrap)) = (std::env::var("PLAN_TEST_REDIS_URL"), std::env::var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS")) else {
        println!("set PLAN_TEST_REDIS_URL and PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS for the Redis + Kafka + poller figure");
        return;
    };
    let store = Arc::new(RedisStore::new(&redis_config(vec![redis], false)).unwrap());
    store.ping().await.unwrap();
    let kafka = KafkaConfig {
        bootstrap_servers: vec![bootstrap],
        topic: format!("plan_operations_bench_{}", tag()),
        tls: false,
        timeout: Duration::from_secs(5),
        create_partitions: 3,
        topic_creation: plan_events::TopicCreation::WithReplicationFactor(1),
        auth: KafkaAuth::None,
        linger: Duration::from_millis(2),
    };
    let index = Arc::new(EmbeddedIndex::new());
    let indexer = Arc::new(Indexer::new(index.clone(), Arc::new(MemoryDeadLetters::default())));
    let publisher = Arc::new(KafkaPublisher::new(kafka.clone()));
    let poller = tokio::spawn(run_poller(kafka, indexer, Offsets::default()));
    let app = spawn_app(Backends::with_parts(store, publisher, WritePolicy::default()).with_auth(test_auth(None))).await;
    report("Redis + Kafka (tansu) + local poller", measure(&app, index.as_ref()).await);
    poller.abort();
    let _ = EmbeddedStore::new();
}
