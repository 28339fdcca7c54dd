//! MSK-shaped record batches: what the MSK event source mapping hands the indexer Lambda, and what
//! the local poller and the in-process bus build so that the same handler runs everywhere.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use plan::events::{ChangeEvent, MAX_TRACE_VALUE, TraceContext};

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    /// The record's headers, in order (a change event's schema version, request and trace ids).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ConsumedRecord {
    /// A change event as a topic holds it: keyed by plan id, with the headers the Kafka publisher
    /// writes.
    pub fn of_event(topic: &str, partition: i32, offset: i64, timestamp_ms: i64, event: &ChangeEvent) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            offset,
            key: Some(event.plan_id.as_str().as_bytes().to_vec()),
            value: Some(event.to_json()),
            timestamp_ms,
            headers: event.headers(),
        }
    }
}

/// Builds the event the MSK event source mapping would deliver for these records: grouped by
/// `topic-partition`, values base64-encoded.
pub fn msk_event(records: &[ConsumedRecord], event_source_arn: &str) -> KafkaEvent {
    let mut grouped: HashMap<String, Vec<KafkaRecord>> = HashMap::new();
    for record in records {
        let mut msk = KafkaRecord::default();
        msk.topic = Some(record.topic.clone());
        msk.partition = i64::from(record.partition);
        msk.offset = record.offset;
        msk.timestamp = MillisecondTimestamp(chrono::DateTime::from_timestamp_millis(record.timestamp_ms).unwrap_or_default());
        msk.timestamp_type = Some("CREATE_TIME".to_owned());
        msk.key = record.key.as_ref().map(|k| STANDARD.encode(k));
        msk.value = record.value.as_ref().map(|v| STANDARD.encode(v));
        // As the event source mapping delivers them: one single-entry map per header, the bytes
        // as (signed) numbers.
        msk.headers =
            record.headers.iter().map(|(name, value)| HashMap::from([(name.clone(), value.iter().map(|&b| b as i8).collect())])).collect();
        grouped.entry(format!("{}-{}", record.topic, record.partition)).or_default().push(msk);
    }
    let mut event = KafkaEvent::default();
    event.event_source = Some("aws:kafka".to_owned());
    event.event_source_arn = Some(event_source_arn.to_owned());
    event.records = grouped;
    event
}

/// A record of a delivered batch, decoded from base64, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredRecord {
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `Err` when the value is not valid base64: a poison record.
    pub value: Result<Vec<u8>, String>,
    /// The request (and X-Ray trace) that wrote the record, from its headers.
    pub trace: TraceContext,
}

/// Every record of a batch in delivery order (by partition, then offset).
pub fn delivered_records(event: &KafkaEvent) -> Vec<DeliveredRecord> {
    let mut records: Vec<DeliveredRecord> = event
        .records
        .values()
        .flatten()
        .map(|r| DeliveredRecord {
            topic: r.topic.clone().unwrap_or_default(),
            partition: r.partition,
            offset: r.offset,
            key: r.key.as_ref().and_then(|k| STANDARD.decode(k).ok()),
            value: match &r.value {
                Some(v) => STANDARD.decode(v).map_err(|e| format!("value is not base64: {e}")),
                None => Err("record without a value".to_owned()),
            },
            trace: trace_context(&r.headers),
        })
        .collect();
    records.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    records
}

/// The trace headers of a delivered record. The mapping hands header values over as signed
/// bytes; only the trace headers are converted back, each bounded by `TraceContext`.
fn trace_context(headers: &[HashMap<String, Vec<i8>>]) -> TraceContext {
    let wanted = [plan::events::headers::REQUEST_ID, plan::events::headers::TRACE_ID];
    let bytes: Vec<(&str, Vec<u8>)> = headers
        .iter()
        .flatten()
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value.iter().take(MAX_TRACE_VALUE).map(|&b| b as u8).collect()))
        .collect();
    TraceContext::from_headers(bytes.iter().map(|(name, value)| (*name, value.as_slice())))
}

/// What handles a batch: the indexer. `Err` means "deliver this batch again" (a transient failure);
/// poison records are the handler's to report and skip, never a reason to fail the batch.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    async fn handle(&self, event: KafkaEvent) -> Result<(), BatchError>;
}

#[derive(Debug, thiserror::Error)]
#[error("batch not handled: {source}")]
pub struct BatchError {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl BatchError {
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { source: source.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_in_delivery_order() {
        let record = |partition, offset, value: &[u8]| ConsumedRecord {
            topic: "plan_operations".into(),
            partition,
            offset,
            key: Some(b"k".to_vec()),
            value: Some(value.to_vec()),
            timestamp_ms: 1_700_000_000_000,
            headers: vec![("requestId".to_owned(), format!("req-{offset}").into_bytes())],
        };
        let records = [record(1, 7, b"c"), record(0, 5, b"a"), record(0, 6, b"b")];
        let event = msk_event(&records, "arn:aws:kafka:local");
        assert_eq!(event.records.len(), 2);
        let json = serde_json::to_string(&event).unwrap();
        let parsed: KafkaEvent = serde_json::from_str(&json).unwrap();
        let delivered = delivered_records(&parsed);
        let order: Vec<(i64, i64, Vec<u8>, Option<String>)> =
            delivered.into_iter().map(|r| (r.partition, r.offset, r.value.unwrap(), r.trace.request_id)).collect();
        let id = |offset: i64| Some(format!("req-{offset}"));
        assert_eq!(order, vec![(0, 5, b"a".to_vec(), id(5)), (0, 6, b"b".to_vec(), id(6)), (1, 7, b"c".to_vec(), id(7))]);
    }

    #[test]
    fn trace_headers_come_through_the_mapping_s_signed_bytes() {
        // A sample of what the MSK event source mapping delivers: header values as signed bytes.
        let record = serde_json::json!({
            "topic": "plan_operations", "partition": 0, "offset": 1, "timestamp": 1_700_000_000_000_i64,
            "timestampType": "CREATE_TIME", "value": STANDARD.encode(b"{}"),
            "headers": [{"schemaVersion": [49]}, {"requestId": [114, 45, 49]}, {"traceId": [82, 111, 111, 116, 61, -61, -87]}],
        });
        let event: KafkaEvent = serde_json::from_value(serde_json::json!({
            "eventSource": "aws:kafka", "records": {"plan_operations-0": [record]},
        }))
        .unwrap();
        let delivered = delivered_records(&event);
        assert_eq!(delivered[0].trace.request_id.as_deref(), Some("r-1"));
        assert_eq!(delivered[0].trace.trace_id.as_deref(), Some("Root=\u{e9}"), "bytes above 127 are UTF-8 again");
    }
}
