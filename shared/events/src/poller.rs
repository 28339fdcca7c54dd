//! The local stand-in for the MSK event source mapping: consumes the topic, calls the same batch
//! handler as the indexer Lambda with MSK-shaped batches of at most [`BATCH_SIZE`] records (a busy
//! partition's gathered for a [`BATCH_WINDOW`]), and commits a partition's offset only after the
//! handler succeeded. A failed batch is retried, never skipped (the handler itself
//! reports and skips poison records). Offsets live in this process: a restarted poller replays
//! the topic from the start, which the index absorbs because every document carries its plan
//! version as an external version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

use crate::batch::{BatchHandler, ConsumedRecord, msk_event};
use crate::config::KafkaConfig;
use crate::kafka::connect;

/// Bytes fetched per request, at most.
const MAX_FETCH_BYTES: i32 = 1024 * 1024;
/// How long a fetch waits for new records on the broker. Kafka answers a waiting fetch as soon as
/// a record arrives; tansu only at the end of the wait, so this bounds the local latency.
const MAX_WAIT_MS: i32 = 20;

/// Records per batch at most, as the mapping's `BatchSize` in template.yaml (a test keeps the two
/// equal).
pub const BATCH_SIZE: usize = 100;
/// While a partition receives records faster than it is read (a fetch brought more than one), it
/// is fetched at most once per window, so that what arrives meanwhile comes in one batch rather
/// than a fetch each: the mapping gathers records in the same way, for up to
/// `MaximumBatchingWindowInSeconds` (1 s in template.yaml; 500 ms by default). A quiet partition's
/// next record is fetched as soon as it comes, so that locally the index follows a lone write at
/// once.
pub const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// The committed offset of each partition: where the next batch starts.
#[derive(Debug, Default, Clone)]
pub struct Offsets(Arc<Mutex<HashMap<i32, i64>>>);

impl Offsets {
    pub fn committed(&self, partition: i32) -> Option<i64> {
        self.lock().get(&partition).copied()
    }

    fn commit(&self, partition: i32, next: i64) {
        self.lock().insert(partition, next);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How often the poller looks for a topic that does not exist yet: the first publish creates it,
/// and its record should reach the index at once, not after a long backoff.
pub const TOPIC_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Consumes every partition of the topic until the task is aborted.
pub async fn run_poller(config: KafkaConfig, handler: Arc<dyn BatchHandler>, offsets: Offsets) {
    let mut delay = Duration::from_millis(100);
    let mut told = false;
    let partitions = loop {
        match partitions(&config).await {
            Ok(partitions) if !partitions.is_empty() => break partitions,
            Ok(_) => {
                if !told {
                    tracing::info!(topic = %config.topic, "waiting for the topic to exist");
                    told = true;
                }
                // The broker answers: look again soon (a missing topic is cheap to ask about).
                delay = Duration::from_millis(100);
                tokio::time::sleep(TOPIC_CHECK_EVERY).await;
                continue;
            }
            Err(error) => tracing::warn!(%error, "poller cannot reach Kafka yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    };
    tracing::info!(topic = %config.topic, partitions = partitions.len(), "poller consuming");
    let tasks: Vec<_> =
        partitions.into_iter().map(|p| tokio::spawn(consume_partition(config.clone(), p, handler.clone(), offsets.clone()))).collect();
    for task in tasks {
        let _ = task.await;
    }
}

async fn partitions(config: &KafkaConfig) -> Result<Vec<i32>, rskafka::client::error::Error> {
    let client = connect(config).await?;
    let topics = client.list_topics().await?;
    Ok(topics.into_iter().find(|t| t.name == config.topic).map(|t| t.partitions.into_iter().collect()).unwrap_or_default())
}

async fn consume_partition(config: KafkaConfig, partition: i32, handler: Arc<dyn BatchHandler>, offsets: Offsets) {
    let mut delay = Duration::from_millis(100);
    loop {
        match poll_partition(&config, partition, handler.as_ref(), &offsets).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(partition, %error, "poller lost the broker; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn poll_partition(
    config: &KafkaConfig,
    partition: i32,
    handler: &dyn BatchHandler,
    offsets: &Offsets,
) -> Result<(), rskafka::client::error::Error> {
    let client = connect(config).await?;
    let partition_client = client.partition_client(config.topic.clone(), partition, UnknownTopicHandling::Retry).await?;
    let mut next = match offsets.committed(partition) {
        Some(offset) => offset,
        None => partition_client.get_offset(OffsetAt::Earliest).await?,
    };
    loop {
        let window = tokio::time::Instant::now() + BATCH_WINDOW;
        let records = match partition_client.fetch_records(next, 1..MAX_FETCH_BYTES, MAX_WAIT_MS).await {
            Ok((records, _high_watermark)) => records,
            // Like auto.offset.reset=earliest: the log was truncated (retention) or the topic
            // re-created under us; carry on from what the partition holds now.
            Err(rskafka::client::error::Error::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. }) => {
                let earliest = partition_client.get_offset(OffsetAt::Earliest).await?;
                tracing::warn!(partition, committed = next, earliest, "committed offset out of range; resuming from the earliest");
                next = earliest;
                continue;
            }
            Err(error) => return Err(error),
        };
        let fetched: Vec<ConsumedRecord> = records
            .into_iter()
            .filter(|r| r.offset >= next)
            .map(|r| ConsumedRecord {
                topic: config.topic.clone(),
                partition,
                offset: r.offset,
                key: r.record.key,
                value: r.record.value,
                timestamp_ms: r.record.timestamp.timestamp_millis(),
                headers: r.record.headers.into_iter().collect(),
            })
            .collect();
        if fetched.is_empty() {
            continue;
        }
        for batch in fetched.chunks(BATCH_SIZE) {
            let Some(last) = batch.last().map(|r| r.offset) else { continue };
            let event = msk_event(batch, "arn:local:poller");
            let mut delay = Duration::from_millis(50);
            while let Err(error) = handler.handle(event.clone()).await {
                tracing::warn!(partition, %error, "batch failed; retrying before committing");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            next = last + 1;
            offsets.commit(partition, next);
        }
        if fetched.len() > 1 {
            // Busy: what arrives meanwhile waits for the next window's fetch.
            tokio::time::sleep_until(window).await;
        }
    }
}
