//! The indexer: turns a batch of change events (an MSK batch on Lambda, the same shape from the
//! local poller and the in-process bus) into one bulk write to the search index. A record that
//! cannot be decoded or applied goes to the dead-letter destination with its topic, partition and
//! offset, and never blocks its partition or the rest of its batch; a transient index failure
//! fails the batch, which is then delivered again (every write is idempotent under external
//! versioning, so a redelivery converges to the same index).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use plan::events::{ChangeEvent, Operation, PublishError};
use plan::metrics::{INDEXER_BATCH_DURATION, INDEXER_BATCHES, INDEXER_LAG, INDEXER_RECORDS};
use plan_index::{ChangeOutcome, IndexChange, PlanIndex};
use serde_json::json;

use crate::batch::{BatchError, BatchHandler, DeliveredRecord, delivered_records};

/// Attempts at the index before the batch is handed back for redelivery.
const INDEX_ATTEMPTS: u32 = 3;

/// A record that was reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub reason: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl DeadLetter {
    fn of(record: &DeliveredRecord, reason: impl Into<String>) -> Self {
        Self {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            reason: reason.into(),
            key: record.key.clone(),
            value: record.value.as_ref().ok().cloned(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let encode = |bytes: &Option<Vec<u8>>| bytes.as_ref().map(|b| STANDARD.encode(b));
        json!({
            "topic": self.topic, "partition": self.partition, "offset": self.offset, "reason": self.reason,
            "key": encode(&self.key), "value": encode(&self.value),
        })
        .to_string()
        .into_bytes()
    }
}

/// Where poison records go: a Kafka dead-letter topic, or memory locally and in tests.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), PublishError>;

    /// Makes the destination exist before the first letter (the topic is created at start).
    async fn prepare(&self) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Dead letters kept in memory, for the embedded mode and tests.
#[derive(Default)]
pub struct MemoryDeadLetters(Mutex<Vec<DeadLetter>>);

impl MemoryDeadLetters {
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), PublishError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(letter.clone());
        Ok(())
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub applied: usize,
    pub already_applied: usize,
    pub dead_lettered: usize,
    /// Poison records whose dead letter could not be sent: logged whole at error level instead.
    pub dead_letters_lost: usize,
}

pub struct Indexer {
    index: Arc<dyn PlanIndex>,
    dead_letters: Arc<dyn DeadLetters>,
}

impl Indexer {
    pub fn new(index: Arc<dyn PlanIndex>, dead_letters: Arc<dyn DeadLetters>) -> Self {
        Self { index, dead_letters }
    }

    /// Creates the dead-letter destination if it is missing; a failure is logged, and the first
    /// letter tries again.
    pub async fn prepare(&self) {
        if let Err(error) = self.dead_letters.prepare().await {
            tracing::warn!(%error, "dead-letter topic not ready yet; the first dead letter creates it");
        }
    }

    /// Indexes one batch. Every record is logged under the request that wrote it (`request_id`
    /// and, on Lambda, `trace_id` from its headers): one search for a request id in the logs finds
    /// the write and its indexing. The batch is recorded by outcome (`ok`, or `retry` when it goes
    /// back for redelivery) with its duration, its records by outcome, and each applied change's
    /// write-to-indexed lag.
    pub async fn index_batch(&self, event: &KafkaEvent) -> Result<BatchReport, BatchError> {
        let started = Instant::now();
        let result = self.index_batch_unrecorded(event).await;
        metrics::histogram!(INDEXER_BATCH_DURATION.name).record(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "retry" };
        metrics::counter!(INDEXER_BATCHES.name, "outcome" => outcome).increment(1);
        if let Ok(report) = &result {
            for (outcome, count) in [
                ("applied", report.applied),
                ("already_applied", report.already_applied),
                ("dead_lettered", report.dead_lettered),
                ("dead_letter_lost", report.dead_letters_lost),
            ] {
                if count > 0 {
                    metrics::counter!(INDEXER_RECORDS.name, "outcome" => outcome).increment(count as u64);
                }
            }
        }
        result
    }

    async fn index_batch_unrecorded(&self, event: &KafkaEvent) -> Result<BatchReport, BatchError> {
        let mut report = BatchReport::default();
        let mut changes = Vec::new();
        let mut sources = Vec::new();
        for record in delivered_records(event) {
            match decode(&record) {
                Ok(Decoded { change, request_id, committed_at_ms }) => {
                    let span = record_span(&record, &request_id);
                    changes.push(change);
                    sources.push((record, span, committed_at_ms));
                }
                Err(reason) => {
                    let letter = DeadLetter::of(&record, reason);
                    let span = record_span(&record, "");
                    tracing::Instrument::instrument(self.dead_letter(&letter, &mut report), span).await?;
                }
            }
        }
        if changes.is_empty() {
            return Ok(report);
        }
        let outcomes = self.apply_with_retries(&changes).await?;
        let accepted_at_ms = chrono::Utc::now().timestamp_millis();
        for ((record, span, committed_at_ms), (change, outcome)) in sources.iter().zip(changes.iter().zip(outcomes)) {
            let (plan, version) = (change.plan_id(), change.version());
            match outcome {
                ChangeOutcome::Applied => {
                    report.applied += 1;
                    span.in_scope(|| tracing::info!(plan = %plan, version, outcome = "applied", "record indexed"));
                    if let Some(committed_at_ms) = committed_at_ms {
                        // Clocks of two hosts: a lag below zero is skew, and reads as zero.
                        let lag_ms = accepted_at_ms.saturating_sub(*committed_at_ms).max(0);
                        metrics::histogram!(INDEXER_LAG.name).record(lag_ms as f64 / 1000.0);
                    }
                }
                ChangeOutcome::AlreadyApplied => {
                    report.already_applied += 1;
                    span.in_scope(|| tracing::info!(plan = %plan, version, outcome = "already_applied", "record indexed"));
                }
                ChangeOutcome::Rejected(reason) => {
                    let letter = DeadLetter::of(record, reason);
                    tracing::Instrument::instrument(self.dead_letter(&letter, &mut report), span.clone()).await?;
                }
            }
        }
        tracing::info!(
            applied = report.applied,
            already_applied = report.already_applied,
            dead_lettered = report.dead_lettered,
            dead_letters_lost = report.dead_letters_lost,
            "batch indexed"
        );
        Ok(report)
    }

    async fn apply_with_retries(&self, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, BatchError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.index.apply(changes).await {
                Ok(outcomes) if outcomes.len() == changes.len() => return Ok(outcomes),
                Ok(outcomes) => {
                    return Err(BatchError::new(format!("the index answered {} outcomes for {} changes", outcomes.len(), changes.len())));
                }
                Err(error) if attempt < INDEX_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "index write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(BatchError::new(error)),
            }
        }
    }

    /// Reports and skips a poison record. A dead letter that cannot be sent does not fail the
    /// batch (redelivering it would not cure the record, and would block its partition): the
    /// letter is logged whole at error level instead, key and value base64 as in the topic.
    async fn dead_letter(&self, letter: &DeadLetter, report: &mut BatchReport) -> Result<(), BatchError> {
        tracing::error!(topic = %letter.topic, partition = letter.partition, offset = letter.offset, reason = %letter.reason, "poison record dead-lettered and skipped");
        match self.dead_letters.send(letter).await {
            Ok(()) => report.dead_lettered += 1,
            Err(error) => {
                let record = String::from_utf8_lossy(&letter.to_json()).into_owned();
                tracing::error!(%error, dead_letter = %record, "dead letter not sent; the record is logged here instead and skipped");
                report.dead_letters_lost += 1;
            }
        }
        Ok(())
    }
}

/// The span of one record: where it sits in the topic, and the request (and trace) that wrote it.
/// A record without trace headers (written before they existed) falls back to the request id in
/// its value (`from_value`, empty when the value did not parse).
fn record_span(record: &DeliveredRecord, from_value: &str) -> tracing::Span {
    tracing::info_span!(
        "record",
        request_id = record.trace.request_id.as_deref().unwrap_or(from_value),
        trace_id = record.trace.trace_id.as_deref().unwrap_or_default(),
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
    )
}

/// What the indexer reads from a record: the change it asks for, the request id its value
/// carries, and when the change was committed (the start of the write-to-indexed lag).
struct Decoded {
    change: IndexChange,
    request_id: String,
    committed_at_ms: Option<i64>,
}

fn decode(record: &DeliveredRecord) -> Result<Decoded, String> {
    let value = record.value.as_ref().map_err(Clone::clone)?;
    let event = ChangeEvent::decode(value)?;
    let committed_at_ms = event.committed_at_ms();
    let change = match (event.operation, event.plan) {
        (Operation::Upsert, Some(plan)) => IndexChange::Upsert { plan, version: event.version },
        _ => IndexChange::Delete { plan_id: event.plan_id, version: event.version },
    };
    Ok(Decoded { change, request_id: event.request_id, committed_at_ms })
}

#[async_trait]
impl BatchHandler for Indexer {
    async fn handle(&self, event: KafkaEvent) -> Result<(), BatchError> {
        self.index_batch(&event).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ConsumedRecord, msk_event};

    struct Unreachable;

    #[async_trait]
    impl DeadLetters for Unreachable {
        async fn send(&self, _letter: &DeadLetter) -> Result<(), PublishError> {
            Err(PublishError::new("the dead-letter topic is unreachable"))
        }
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_sent_does_not_fail_the_batch() {
        let index = Arc::new(plan_index::EmbeddedIndex::new());
        let indexer = Indexer::new(index, Arc::new(Unreachable));
        let poison = ConsumedRecord {
            topic: "plan_operations".into(),
            partition: 0,
            offset: 7,
            key: Some(b"p".to_vec()),
            value: Some(b"{not an event".to_vec()),
            timestamp_ms: 0,
            headers: Vec::new(),
        };
        let report = indexer.index_batch(&msk_event(&[poison], "arn:test")).await.expect("the batch succeeds");
        assert_eq!((report.dead_lettered, report.dead_letters_lost), (0, 1));
    }
}
