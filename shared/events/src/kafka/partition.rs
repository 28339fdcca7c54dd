//! Producing to one partition: each record alone, or, with a linger, together with the records
//! other requests produce meanwhile (rskafka's `BatchProducer`), so that a busy process sends one
//! produce request per batch rather than one per record.

use std::sync::Arc;
use std::time::Duration;

use plan::events::PublishError;
use rskafka::client::partition::Compression;
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{self, BatchProducer, BatchProducerBuilder, ProducerClient};
use rskafka::record::Record;

use super::{KafkaError, is_refusal, publish_error};

/// At most this many bytes of records (keys, values and headers, before compression) go in one
/// batch: under Kafka's default `message.max.bytes` (1,048,588 bytes), which limits the compressed
/// batch, so a batch is not refused for its size on a broker with that default. A larger record
/// goes alone.
pub(super) const MAX_BATCH_BYTES: usize = 1_000_000;

/// The producer of one partition of the topic.
pub(super) struct PartitionProducer {
    client: Arc<dyn ProducerClient>,
    compression: Compression,
    /// With a linger: the records waiting to go out together.
    batches: Option<BatchProducer<RecordAggregator>>,
}

impl PartitionProducer {
    /// `linger` zero: every record is its own produce request.
    pub(super) fn new(client: Arc<dyn ProducerClient>, compression: Compression, linger: Duration) -> Self {
        let batches = (!linger.is_zero()).then(|| {
            BatchProducerBuilder::new_with_client(client.clone())
                .with_linger(linger)
                .with_compression(compression)
                .build(RecordAggregator::new(MAX_BATCH_BYTES))
        });
        Self { client, compression, batches }
    }

    /// Produces `record` (in a batch when lingering) and returns its offset once the brokers
    /// acknowledged it.
    pub(super) async fn produce(&self, record: Record) -> Result<i64, PublishError> {
        let Some(batches) = &self.batches else {
            return self.alone(record).await;
        };
        match batches.produce(record.clone()).await {
            Ok(offset) => Ok(offset),
            // Too large to share a batch, or refused with its batch-mates: a batch is written or
            // refused as a whole, so nothing of it was stored, and alone the brokers judge this
            // record by itself (the one that caused the refusal fails again; the others go).
            Err(producer::Error::TooLarge) => self.alone(record).await,
            Err(producer::Error::Client(error)) if is_refusal(&error) => self.alone(record).await,
            Err(error) => Err(PublishError::new(error)),
        }
    }

    async fn alone(&self, record: Record) -> Result<i64, PublishError> {
        let offsets = self.client.produce(vec![record], self.compression).await.map_err(publish_error)?;
        offsets.first().copied().ok_or_else(|| publish_error(KafkaError::InvalidResponse("no offset for the record".into())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use futures_util::future::{BoxFuture, join_all};
    use plan::events::PublishErrorKind;
    use rskafka::client::error::{ProtocolError, RequestContext};

    use super::*;

    /// A partition that stores what it is sent, refuses a batch holding a record whose value is
    /// `poison` (as a broker refuses an invalid record: the whole batch), and fails every request
    /// while `down`.
    #[derive(Debug, Default)]
    struct FakePartition {
        requests: Mutex<Vec<Vec<Vec<u8>>>>,
        log: Mutex<Vec<Vec<u8>>>,
        down: bool,
    }

    impl ProducerClient for FakePartition {
        fn produce(&self, records: Vec<Record>, _: Compression) -> BoxFuture<'_, Result<Vec<i64>, KafkaError>> {
            Box::pin(async move {
                let values: Vec<Vec<u8>> = records.into_iter().map(|r| r.value.unwrap_or_default()).collect();
                self.requests.lock().unwrap().push(values.clone());
                if self.down {
                    return Err(KafkaError::Timeout);
                }
                if values.iter().any(|v| v == b"poison") {
                    return Err(KafkaError::ServerError {
                        protocol_error: ProtocolError::InvalidRecord,
                        error_message: None,
                        request: RequestContext::Partition("plan_operations".into(), 0),
                        response: None,
                        is_virtual: false,
                    });
                }
                let mut log = self.log.lock().unwrap();
                let first = log.len() as i64;
                log.extend(values.iter().cloned());
                Ok((first..first + values.len() as i64).collect())
            })
        }
    }

    fn record(value: &[u8]) -> Record {
        Record { key: Some(b"plan".to_vec()), value: Some(value.to_vec()), headers: BTreeMap::new(), timestamp: chrono::Utc::now() }
    }

    async fn produce_all(partition: &Arc<FakePartition>, linger: Duration, values: &[Vec<u8>]) -> Vec<Result<i64, PublishError>> {
        let producer = PartitionProducer::new(partition.clone(), Compression::NoCompression, linger);
        join_all(values.iter().map(|value| producer.produce(record(value)))).await
    }

    fn values(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("event-{i}").into_bytes()).collect()
    }

    #[tokio::test]
    async fn concurrent_records_go_out_in_one_request_each_with_its_own_offset() {
        let partition = Arc::new(FakePartition::default());
        let sent = values(32);
        let results = produce_all(&partition, Duration::from_millis(1), &sent).await;
        assert_eq!(partition.requests.lock().unwrap().len(), 1, "one produce request for the 32 records");
        let log = partition.log.lock().unwrap();
        for (value, result) in sent.iter().zip(results) {
            let offset = result.unwrap();
            assert_eq!(&log[offset as usize], value, "each caller is told the offset of its own record");
        }
    }

    #[tokio::test]
    async fn without_a_linger_every_record_is_its_own_request() {
        let partition = Arc::new(FakePartition::default());
        let results = produce_all(&partition, Duration::ZERO, &values(5)).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(partition.requests.lock().unwrap().iter().map(Vec::len).collect::<Vec<_>>(), vec![1; 5]);
    }

    #[tokio::test]
    async fn a_refused_record_fails_alone_and_its_batch_mates_are_stored() {
        let partition = Arc::new(FakePartition::default());
        let mut sent = values(7);
        sent.insert(3, b"poison".to_vec());
        let results = produce_all(&partition, Duration::from_millis(1), &sent).await;
        for (value, result) in sent.iter().zip(&results) {
            match result {
                Ok(offset) => assert_eq!(&partition.log.lock().unwrap()[*offset as usize], value),
                Err(error) => {
                    assert_eq!(value, b"poison");
                    assert_eq!(error.kind, PublishErrorKind::Rejected, "{error}");
                }
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        let mut stored = partition.log.lock().unwrap().clone();
        stored.sort();
        let mut expected: Vec<Vec<u8>> = sent.into_iter().filter(|v| v != b"poison").collect();
        expected.sort();
        assert_eq!(stored, expected, "every other record stored exactly once");
    }

    #[tokio::test]
    async fn a_record_too_large_for_a_batch_goes_alone() {
        let partition = Arc::new(FakePartition::default());
        let mut sent = values(3);
        sent.push(vec![b'x'; MAX_BATCH_BYTES + 1]);
        let results = produce_all(&partition, Duration::from_millis(1), &sent).await;
        assert!(results.iter().all(Result::is_ok));
        let requests = partition.requests.lock().unwrap();
        assert!(requests.iter().any(|r| r.len() == 1 && r[0].len() == MAX_BATCH_BYTES + 1), "the large record went alone");
        assert_eq!(partition.log.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn an_unreachable_broker_fails_every_record_of_the_batch_as_unavailable() {
        let partition = Arc::new(FakePartition { down: true, ..Default::default() });
        let results = produce_all(&partition, Duration::from_millis(1), &values(4)).await;
        assert!(results.iter().all(|r| r.as_ref().is_err_and(|e| e.kind == PublishErrorKind::Unavailable)), "{results:?}");
        assert_eq!(partition.requests.lock().unwrap().len(), 1, "not retried record by record");
    }
}
