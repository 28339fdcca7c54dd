//! The Kafka producer (rskafka: pure Rust, builds for Lambda with cargo-lambda, speaks to Apache
//! Kafka 3.x/4.x, MSK and the tansu broker).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use plan::store::{Probe, StoreError};
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::{Mutex, OnceCell};

use crate::murmur2::partition_for;

/// Where and how to produce.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port` of the bootstrap brokers.
    pub bootstrap_servers: Vec<String>,
    pub topic: String,
    /// TLS to the brokers (MSK's 9094 / 9098 listeners).
    pub tls: bool,
    /// Upper bound for one publish, connection included.
    pub timeout: Duration,
    /// Partitions for the topic when this client has to create it (local brokers).
    pub create_partitions: i32,
    /// How the brokers authenticate this client.
    pub auth: KafkaAuth,
}

/// Broker authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// None (local brokers, or MSK's plaintext/TLS listeners).
    None,
    /// Amazon MSK IAM: SASL OAUTHBEARER with tokens signed by the function's role for `region`.
    /// Needs the `msk` feature.
    MskIam { region: String },
}

/// A producer with durable acknowledgement (rskafka always asks for acks = all), connected on
/// first use so that a cold start never waits for the brokers.
pub struct KafkaPublisher {
    config: KafkaConfig,
    client: OnceCell<Arc<Client>>,
    partitions: Mutex<HashMap<i32, Arc<PartitionClient>>>,
    partition_count: OnceCell<i32>,
}

impl KafkaPublisher {
    pub fn new(config: KafkaConfig) -> Self {
        Self { config, client: OnceCell::new(), partitions: Mutex::new(HashMap::new()), partition_count: OnceCell::new() }
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    async fn client(&self) -> Result<Arc<Client>, rskafka::client::error::Error> {
        self.client.get_or_try_init(|| connect(&self.config)).await.cloned()
    }

    /// The topic's partition count, creating the topic when it does not exist yet.
    async fn partition_count(&self, client: &Client) -> Result<i32, rskafka::client::error::Error> {
        self.partition_count
            .get_or_try_init(|| async {
                let topics = client.list_topics().await?;
                if let Some(topic) = topics.iter().find(|t| t.name == self.config.topic) {
                    return Ok(topic.partitions.len().max(1) as i32);
                }
                let controller = client.controller_client()?;
                match controller.create_topic(&self.config.topic, self.config.create_partitions, 1, 5_000).await {
                    Ok(()) => Ok(self.config.create_partitions),
                    // Created meanwhile by someone else: ask again.
                    Err(_) => {
                        let topics = client.list_topics().await?;
                        Ok(topics
                            .iter()
                            .find(|t| t.name == self.config.topic)
                            .map_or(self.config.create_partitions, |t| t.partitions.len() as i32))
                    }
                }
            })
            .await
            .copied()
    }

    async fn partition_client(&self, partition: i32) -> Result<Arc<PartitionClient>, rskafka::client::error::Error> {
        let mut clients = self.partitions.lock().await;
        if let Some(client) = clients.get(&partition) {
            return Ok(client.clone());
        }
        let client = self.client().await?;
        let partition_client = Arc::new(client.partition_client(self.config.topic.clone(), partition, UnknownTopicHandling::Retry).await?);
        clients.insert(partition, partition_client.clone());
        Ok(partition_client)
    }

    /// Produces one keyed record; returns its partition and offset.
    pub async fn produce(&self, key: &str, value: Vec<u8>, headers: BTreeMap<String, Vec<u8>>) -> Result<(i32, i64), PublishError> {
        let work = async {
            let client = self.client().await?;
            let partitions = self.partition_count(&client).await?;
            let partition = partition_for(key.as_bytes(), partitions);
            let partition_client = self.partition_client(partition).await?;
            let record = Record { key: Some(key.as_bytes().to_vec()), value: Some(value), headers, timestamp: chrono::Utc::now() };
            let offsets = partition_client.produce(vec![record], Compression::NoCompression).await?;
            Ok::<_, rskafka::client::error::Error>((partition, offsets.first().copied().unwrap_or_default()))
        };
        match tokio::time::timeout(self.config.timeout, work).await {
            Ok(result) => result.map_err(PublishError::new),
            Err(_) => Err(PublishError::new(format!("Kafka did not acknowledge within {:?}", self.config.timeout))),
        }
    }
}

#[async_trait]
impl ChangePublisher for KafkaPublisher {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        let headers = BTreeMap::from([("schemaVersion".to_owned(), event.schema_version.to_string().into_bytes())]);
        let (partition, offset) = self.produce(event.plan_id.as_str(), event.to_json(), headers).await?;
        tracing::debug!(plan = %event.plan_id, version = event.version, partition, offset, "change event published");
        Ok(())
    }
}

#[async_trait]
impl Probe for KafkaPublisher {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let check = async {
            let client = self.client().await?;
            client.list_topics().await.map(drop)
        };
        match tokio::time::timeout(self.config.timeout, check).await {
            Ok(result) => result.map_err(StoreError::unavailable),
            Err(_) => Err(StoreError::unavailable("Kafka did not answer in time")),
        }
    }
}

/// A client for these brokers that retries inside the configured deadline only and comes back
/// quickly after a broker restart.
pub async fn connect(config: &KafkaConfig) -> Result<Arc<Client>, rskafka::client::error::Error> {
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
        deadline: Some(config.timeout),
    };
    let mut builder = ClientBuilder::new(config.bootstrap_servers.clone()).client_id("plan-api").backoff_config(backoff);
    if config.tls {
        builder = builder.tls_config(Arc::new(tls_config()));
    }
    match &config.auth {
        KafkaAuth::None => {}
        #[cfg(feature = "msk")]
        KafkaAuth::MskIam { region } => builder = builder.sasl_config(crate::msk::iam_sasl(region.clone())),
        #[cfg(not(feature = "msk"))]
        KafkaAuth::MskIam { .. } => {
            return Err(rskafka::client::error::Error::InvalidResponse("MSK IAM authentication needs the `msk` feature".into()));
        }
    }
    builder.build().await.map(Arc::new)
}

fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}
