//! The health probe of the Kafka publisher against a real broker (tansu from the test script, or
//! any Kafka through PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS): it reuses the publisher's connection,
//! notices a broker that stopped answering, and then connects afresh.
//!
//! The publisher reaches the broker through a TCP forwarder that counts connections and can hold
//! every byte. Only the bootstrap connection of a new client passes through it (rskafka then
//! talks to the broker's advertised address), so its count is the number of clients built.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plan::probe::Probe;
use plan_events::{KafkaAuth, KafkaConfig, KafkaPublisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The broker of the test script; `None` (the test skips) without one, unless the script asked
/// for every service-backed test to run.
fn bootstrap_servers() -> Option<String> {
    const NAME: &str = "PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS";
    match std::env::var(NAME) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("PLAN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{NAME} is not set but PLAN_TEST_REQUIRE_SERVICES=1: run the tests with scripts/test, which starts the services")
        }
        _ => {
            eprintln!("skipping: {NAME} is not set (scripts/test sets it)");
            None
        }
    }
}

/// A TCP forwarder on a free loopback port to `upstream`.
struct Forwarder {
    address: String,
    connections: Arc<AtomicUsize>,
    held: watch::Sender<bool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Forwarder {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let (held, _) = watch::channel(false);
        let (counted, gate, upstream) = (connections.clone(), held.clone(), upstream.to_owned());
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(broker) = TcpStream::connect(&upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (broker_read, broker_write) = broker.into_split();
                tokio::spawn(pump(client_read, broker_write, gate.subscribe()));
                tokio::spawn(pump(broker_read, client_write, gate.subscribe()));
            }
        });
        Self { address, connections, held, accepting }
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// While held, nothing passes either way: a broker that stopped answering.
    fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut held: watch::Receiver<bool>) {
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.wait_for(|held| !*held).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

fn config(bootstrap: &str) -> KafkaConfig {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    KafkaConfig {
        bootstrap_servers: vec![bootstrap.to_owned()],
        topic: format!("plan_probe_test_{}_{nanos}", std::process::id()),
        tls: false,
        timeout: Duration::from_secs(1),
        create_partitions: 1,
        topic_creation: plan_events::TopicCreation::WithReplicationFactor(1),
        auth: KafkaAuth::None,
        linger: Duration::ZERO,
    }
}

#[tokio::test]
async fn the_probe_reuses_the_connection_and_reconnects_after_a_failure() {
    let Some(bootstrap) = bootstrap_servers() else { return };
    let forwarder = Forwarder::start(&bootstrap).await;
    let publisher = KafkaPublisher::new(config(&forwarder.address));

    for ping in 1..=3 {
        publisher.ping().await.unwrap_or_else(|e| panic!("ping {ping}: {e}"));
    }
    assert_eq!(forwarder.connections(), 1, "three health checks, one connection");

    // The broker stops answering: the probe says so within its deadline...
    forwarder.hold(true);
    assert!(publisher.ping().await.is_err(), "a broker that does not answer is reported down");
    forwarder.hold(false);
    // ...and the next probe does not trust the old connection: it builds a new one, then keeps it.
    publisher.ping().await.unwrap();
    publisher.ping().await.unwrap();
    assert_eq!(forwarder.connections(), 2, "one new connection after the failure");
}
