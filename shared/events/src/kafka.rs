//! The Kafka producer (rskafka: pure Rust, builds for Lambda with cargo-lambda, speaks to Apache
//! Kafka 3.x/4.x, MSK and the tansu broker).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError, PublishErrorKind};
use plan::probe::{Probe, ProbeError};
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::Mutex;

use crate::config::{KafkaAuth, KafkaConfig, TopicCreation};
use crate::indexer::{DeadLetter, DeadLetters};
use crate::murmur2::partition_for;

mod partition;

use partition::PartitionProducer;

/// A producer with durable acknowledgement (rskafka always asks for acks = all), connected on
/// first use so that a cold start never waits for the brokers. After a failed produce the
/// connection, the topic metadata and the partition clients are all dropped and rebuilt on the
/// next call: a restarted broker, a moved partition leader or a re-created topic are picked up.
/// With a linger (`KAFKA_LINGER_MS`), the records that concurrent requests produce to a partition
/// go out together, one produce request per batch.
pub struct KafkaPublisher {
    config: KafkaConfig,
    connection: Mutex<Option<Arc<Connection>>>,
}

/// A live client and what it learnt about the topic.
struct Connection {
    client: Arc<Client>,
    partition_count: i32,
    partitions: Mutex<HashMap<i32, Arc<PartitionProducer>>>,
}

type KafkaError = rskafka::client::error::Error;

/// The codec of every record this producer writes.
pub const CHANGE_EVENT_COMPRESSION: Compression = Compression::Lz4;

impl KafkaPublisher {
    pub fn new(config: KafkaConfig) -> Self {
        Self { config, connection: Mutex::new(None) }
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    async fn connection(&self) -> Result<Arc<Connection>, KafkaError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let client = connect(&self.config).await?;
        let partition_count = self.partition_count(&client).await?;
        let connection = Arc::new(Connection { client, partition_count, partitions: Mutex::new(HashMap::new()) });
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// The topic's partition count, creating the topic when it does not exist yet and this
    /// producer may (never with replication factor 1 on a real cluster: see [`TopicCreation`]).
    async fn partition_count(&self, client: &Client) -> Result<i32, KafkaError> {
        let count = |topics: &[rskafka::topic::Topic]| {
            topics.iter().find(|t| t.name == self.config.topic).map(|t| t.partitions.len().max(1) as i32)
        };
        if let Some(n) = count(&client.list_topics().await?) {
            return Ok(n);
        }
        let TopicCreation::WithReplicationFactor(replication_factor) = self.config.topic_creation else {
            return Err(KafkaError::InvalidResponse(format!(
                "topic {} does not exist (this producer does not create topics; see README, \"Deploy to AWS\")",
                self.config.topic
            )));
        };
        let controller = client.controller_client()?;
        match controller.create_topic(&self.config.topic, self.config.create_partitions, replication_factor, 5_000).await {
            Ok(()) => Ok(self.config.create_partitions),
            // Created meanwhile by someone else: ask again.
            Err(_) => Ok(count(&client.list_topics().await?).unwrap_or(self.config.create_partitions)),
        }
    }

    async fn partition(&self, connection: &Connection, partition: i32) -> Result<Arc<PartitionProducer>, KafkaError> {
        let mut producers = connection.partitions.lock().await;
        if let Some(producer) = producers.get(&partition) {
            return Ok(producer.clone());
        }
        let client = connection.client.partition_client(self.config.topic.clone(), partition, UnknownTopicHandling::Retry).await?;
        // LZ4: a plan snapshot's JSON shrinks several times, the codec is cheap and every
        // consumer here (MSK's event source mapping, rskafka, Kafka's own clients) reads it.
        let producer = Arc::new(PartitionProducer::new(Arc::new(client), CHANGE_EVENT_COMPRESSION, self.config.linger));
        producers.insert(partition, producer.clone());
        Ok(producer)
    }

    /// Connects and makes sure the topic exists (creating it as [`TopicCreation`] allows: the
    /// dead-letter topic at start, so that it exists before the first poison record and can be
    /// watched, and the reindex function's `setup` job); returns its partition count.
    #[tracing::instrument(name = "kafka.ensure_topic", skip_all, fields(topic = %self.config.topic))]
    pub async fn ensure_topic(&self) -> Result<i32, PublishError> {
        let work = async { self.connection().await.map(|c| c.partition_count) };
        match tokio::time::timeout(self.config.timeout.max(Duration::from_secs(10)), work).await {
            Ok(result) => result.map_err(publish_error),
            Err(_) => Err(PublishError::new("Kafka did not answer in time")),
        }
    }

    /// Produces one keyed record; returns its partition and offset.
    #[tracing::instrument(name = "kafka.produce", skip_all, fields(topic = %self.config.topic, bytes = value.len()))]
    pub async fn produce(&self, key: &str, value: Vec<u8>, headers: BTreeMap<String, Vec<u8>>) -> Result<(i32, i64), PublishError> {
        let work = async {
            let connection = self.connection().await.map_err(publish_error)?;
            let partition = partition_for(key.as_bytes(), connection.partition_count);
            let producer = self.partition(&connection, partition).await.map_err(publish_error)?;
            let record = Record { key: Some(key.as_bytes().to_vec()), value: Some(value), headers, timestamp: chrono::Utc::now() };
            Ok::<_, PublishError>((partition, producer.produce(record).await?))
        };
        let result = match tokio::time::timeout(self.config.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::new(format!("Kafka did not acknowledge within {:?}", self.config.timeout))),
        };
        // A refused record says nothing about the connection; anything else rebuilds it.
        if result.as_ref().is_err_and(|e| e.kind == PublishErrorKind::Unavailable) {
            *self.connection.lock().await = None;
        }
        result
    }
}

/// A broker's refusal of the record itself is `Rejected` (the next record may go through); every
/// other failure says the broker cannot be reached.
fn publish_error(error: KafkaError) -> PublishError {
    if is_refusal(&error) { PublishError::rejected(error) } else { PublishError::new(error) }
}

/// Whether the brokers refused the records for what they are, rather than failed to take them.
fn is_refusal(error: &KafkaError) -> bool {
    use rskafka::client::error::ProtocolError;
    matches!(
        error,
        KafkaError::ServerError {
            protocol_error: ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::CorruptMessage
                | ProtocolError::InvalidTimestamp,
            ..
        }
    )
}

#[async_trait]
impl ChangePublisher for KafkaPublisher {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        let headers: BTreeMap<String, Vec<u8>> = event.headers().into_iter().collect();
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

    /// Asks the brokers for their topics over the publisher's own connection, so a health check
    /// costs no new connection; a failure drops it, as a failed produce does, and the next call
    /// connects afresh.
    #[tracing::instrument(name = "kafka.ping", skip_all)]
    async fn ping(&self) -> Result<(), ProbeError> {
        let check = async {
            let connection = self.connection().await?;
            connection.client.list_topics().await.map(drop)
        };
        let result = match tokio::time::timeout(self.config.timeout, check).await {
            Ok(result) => result.map_err(ProbeError::new),
            Err(_) => Err(ProbeError::timed_out("Kafka did not answer in time")),
        };
        if result.is_err() {
            *self.connection.lock().await = None;
        }
        result
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
        #[cfg(feature = "aws")]
        KafkaAuth::MskIam { region } => builder = builder.sasl_config(crate::msk::iam_sasl(region.clone())),
        #[cfg(not(feature = "aws"))]
        KafkaAuth::MskIam { .. } => {
            return Err(rskafka::client::error::Error::InvalidResponse("MSK IAM authentication needs the `aws` feature".into()));
        }
        KafkaAuth::ScramSha512 { username, password } => {
            let credentials = rskafka::client::Credentials::new(username.clone(), password.0.clone());
            builder = builder.sasl_config(rskafka::client::SaslConfig::ScramSha512(credentials));
        }
    }
    builder.build().await.map(Arc::new)
}

fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}

/// The dead-letter topic (`KAFKA_DLQ_TOPIC`), keyed like the source record.
pub struct KafkaDeadLetters(pub KafkaPublisher);

#[async_trait]
impl DeadLetters for KafkaDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), PublishError> {
        let key = letter.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
        self.0.produce(&key, letter.to_json(), Default::default()).await.map(drop)
    }

    async fn prepare(&self) -> Result<(), PublishError> {
        self.0.ensure_topic().await.map(drop)
    }
}
