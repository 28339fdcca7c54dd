//! Change events: one per committed change, keyed by plan id, carrying the full snapshot so that
//! replaying any suffix of the topic converges to the same index. The format is documented in
//! `schema/change-event.schema.json` and the README.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::id::ObjectId;
use crate::model::Plan;

/// Bumped on any incompatible change of the event format.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of a change event.
pub const CHANGE_EVENT_SCHEMA: &str = include_str!("../schema/change-event.schema.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Upsert,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "planId")]
    pub plan_id: ObjectId,
    /// The plan version this change produced (a delete's is the tombstone version).
    pub version: u64,
    pub operation: Operation,
    /// The whole plan after an upsert; absent for a delete.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plan: Option<Plan>,
    /// When the change was committed, RFC 3339 UTC.
    #[serde(rename = "occurredAt")]
    pub occurred_at: String,
    /// The request that made the change (empty for changes replayed by the sweep).
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// The X-Ray trace of the request that made the change, on Lambda. Not part of the JSON
    /// document: it travels in the record's headers ([`TraceContext`]), as the request id does.
    #[serde(skip)]
    pub trace_id: Option<String>,
}

/// The record headers of a change event: the schema version, and what ties the record to the
/// request that made it (the request id, and the X-Ray trace id on Lambda). Consumers read the
/// trace context from the headers without parsing the value, so a poison record is still logged
/// under the request that wrote it.
pub mod headers {
    pub const SCHEMA_VERSION: &str = "schemaVersion";
    pub const REQUEST_ID: &str = "requestId";
    pub const TRACE_ID: &str = "traceId";
}

/// The longest request or trace id read back from a record's headers; longer values are cut
/// (the producer writes at most 128-byte request ids and X-Ray's ~80-byte trace headers).
pub const MAX_TRACE_VALUE: usize = 256;

/// Where a consumed record came from, as its headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
}

impl TraceContext {
    /// Reads the trace headers of a record; a missing, empty or non-UTF-8 value is `None`.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let text = |value: &[u8]| {
            let value = value.get(..value.len().min(MAX_TRACE_VALUE)).unwrap_or_default();
            std::str::from_utf8(value).ok().filter(|v| !v.is_empty()).map(str::to_owned)
        };
        let mut context = Self::default();
        for (name, value) in headers {
            match name {
                headers::REQUEST_ID => context.request_id = text(value),
                headers::TRACE_ID => context.trace_id = text(value),
                _ => {}
            }
        }
        context
    }
}

impl ChangeEvent {
    pub fn upsert(plan: Plan, version: u64, request_id: &str) -> Self {
        Self {
            schema_version: EVENT_SCHEMA_VERSION,
            plan_id: plan.object_id.clone(),
            version,
            operation: Operation::Upsert,
            plan: Some(plan),
            occurred_at: now_rfc3339(),
            request_id: request_id.to_owned(),
            trace_id: None,
        }
    }

    pub fn delete(plan_id: ObjectId, version: u64, request_id: &str) -> Self {
        Self {
            schema_version: EVENT_SCHEMA_VERSION,
            plan_id,
            version,
            operation: Operation::Delete,
            plan: None,
            occurred_at: now_rfc3339(),
            request_id: request_id.to_owned(),
            trace_id: None,
        }
    }

    /// The same event under the X-Ray trace of the request that made it.
    pub fn traced(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// The record headers this event is published with ([`headers`]); the request and trace ids
    /// only when known.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(headers::SCHEMA_VERSION.to_owned(), self.schema_version.to_string().into_bytes())];
        if !self.request_id.is_empty() {
            out.push((headers::REQUEST_ID.to_owned(), self.request_id.clone().into_bytes()));
        }
        if let Some(trace_id) = &self.trace_id {
            out.push((headers::TRACE_ID.to_owned(), trace_id.clone().into_bytes()));
        }
        out
    }

    /// The same event dated at its commit (ms since the Unix epoch) rather than now: what the
    /// sweep publishes for a change committed earlier.
    pub fn committed_at(mut self, epoch_ms: i64) -> Self {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000);
        if let Some(text) = at.ok().and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()) {
            self.occurred_at = text;
        }
        self
    }

    /// When the change was committed (`occurredAt`, written just after the commit by a live write
    /// and from the store's commit time by the sweep), in ms since the Unix epoch: the start of
    /// the write-to-indexed lag. `None` when the field is not RFC 3339.
    pub fn committed_at_ms(&self) -> Option<i64> {
        let at = time::OffsetDateTime::parse(&self.occurred_at, &time::format_description::well_known::Rfc3339).ok()?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
    }

    /// Parses an event and checks what serde cannot: a supported schema version, and a snapshot
    /// exactly when the operation is an upsert, for the same plan.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let event: Self = serde_json::from_slice(bytes).map_err(|e| format!("not a change event: {e}"))?;
        if event.schema_version != EVENT_SCHEMA_VERSION {
            return Err(format!("unsupported schemaVersion {}", event.schema_version));
        }
        match (&event.operation, &event.plan) {
            (Operation::Upsert, Some(plan)) if plan.object_id == event.plan_id => Ok(event),
            (Operation::Upsert, Some(_)) => Err("the snapshot's objectId differs from planId".to_owned()),
            (Operation::Upsert, None) => Err("an upsert without a plan snapshot".to_owned()),
            (Operation::Delete, None) => Ok(event),
            (Operation::Delete, Some(_)) => Err("a delete must not carry a snapshot".to_owned()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these derived types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[error("could not publish the change event ({kind}): {source}")]
pub struct PublishError {
    pub kind: PublishErrorKind,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// What a failed publish says about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishErrorKind {
    /// The broker is unreachable, timed out or not ready: the next record would fail too.
    Unavailable,
    /// The broker refused this record (too large, invalid): others may still go through.
    Rejected,
}

impl std::fmt::Display for PublishErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "broker unavailable",
            Self::Rejected => "record rejected",
        })
    }
}

impl PublishError {
    /// An unreachable or failing broker.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: PublishErrorKind::Unavailable, source: source.into() }
    }

    /// A record the broker refused for what it is.
    pub fn rejected(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: PublishErrorKind::Rejected, source: source.into() }
    }
}

/// Where committed changes go: the Kafka topic, or the in-process bus locally.
/// `publish` returns only once the event is durably acknowledged (acks = all), or fails within
/// the adapter's own deadline.
#[async_trait]
pub trait ChangePublisher: Send + Sync {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        crate::validate::parse_plan(serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap()).unwrap()
    }

    #[test]
    fn events_round_trip_and_match_their_schema() {
        let schema: serde_json::Value = serde_json::from_str(CHANGE_EVENT_SCHEMA).unwrap();
        let plan_schema: serde_json::Value = serde_json::from_str(crate::PLAN_SCHEMA).unwrap();
        let registry =
            jsonschema::Registry::new().add("https://healthplan.dev/schemas/plan.schema.json", plan_schema).unwrap().prepare().unwrap();
        let validator = jsonschema::options().with_registry(&registry).build(&schema).unwrap();
        let upsert = ChangeEvent::upsert(plan(), 3, "req-1");
        let delete = ChangeEvent::delete(upsert.plan_id.clone(), 4, "req-2");
        for event in [upsert, delete] {
            let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
            let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(ChangeEvent::decode(&event.to_json()).unwrap(), event);
        }
    }

    #[test]
    fn the_request_and_trace_travel_in_the_headers_only() {
        let event = ChangeEvent::upsert(plan(), 3, "req-1").traced(Some("Root=1-abc".to_owned()));
        let headers = event.headers();
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, [headers::SCHEMA_VERSION, headers::REQUEST_ID, headers::TRACE_ID]);
        let context = TraceContext::from_headers(headers.iter().map(|(name, value)| (name.as_str(), value.as_slice())));
        assert_eq!(context, TraceContext { request_id: Some("req-1".into()), trace_id: Some("Root=1-abc".into()) });
        // The document is unchanged: what consumers of the value (and its schema) know.
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert!(json.get("traceId").is_none());
        assert_eq!(ChangeEvent::decode(&event.to_json()).unwrap().trace_id, None);
        // A sweep's republished change has no request: no header rather than an empty one.
        assert_eq!(ChangeEvent::delete(event.plan_id.clone(), 4, "").headers().len(), 1);
    }

    #[test]
    fn trace_headers_are_bounded_and_must_be_text() {
        let long = vec![b'a'; 10_000];
        let context = TraceContext::from_headers([(headers::REQUEST_ID, long.as_slice()), (headers::TRACE_ID, &[0xff, 0xfe][..])]);
        assert_eq!(context.request_id.map(|id| id.len()), Some(MAX_TRACE_VALUE));
        assert_eq!(context.trace_id, None, "not UTF-8");
        assert_eq!(TraceContext::from_headers([(headers::REQUEST_ID, &b""[..])]).request_id, None);
    }

    #[test]
    fn a_republished_event_carries_its_commit_time() {
        let event = ChangeEvent::delete(ObjectId::parse("x").unwrap(), 2, "").committed_at(1_764_000_000_123);
        assert_eq!(event.occurred_at, "2025-11-24T16:00:00.123Z");
        assert_eq!(event.committed_at_ms(), Some(1_764_000_000_123));
    }

    #[test]
    fn inconsistent_events_are_refused() {
        let mut event = ChangeEvent::upsert(plan(), 1, "");
        event.plan = None;
        assert!(ChangeEvent::decode(&event.to_json()).is_err());
        let mut event = ChangeEvent::delete(ObjectId::parse("x").unwrap(), 2, "");
        event.plan = Some(plan());
        assert!(ChangeEvent::decode(&event.to_json()).is_err());
        let mut event = ChangeEvent::upsert(plan(), 1, "");
        event.schema_version = 2;
        assert!(ChangeEvent::decode(&event.to_json()).is_err());
        assert!(ChangeEvent::decode(b"{not json").is_err());
        let mut event = ChangeEvent::upsert(plan(), 1, "");
        event.plan_id = ObjectId::parse("other").unwrap();
        assert!(ChangeEvent::decode(&event.to_json()).is_err());
    }
}
