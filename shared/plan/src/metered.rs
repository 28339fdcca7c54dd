//! Decorators that record the [`crate::metrics`] vocabulary around any implementation of the store
//! and publisher ports, so that Redis, the embedded store, Kafka and the in-process bus are
//! measured the same way without a line of metrics code in any adapter.
//!
//! Every label value here is a `&'static str` from a closed set: recording allocates no string.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::events::{ChangeEvent, ChangePublisher, PublishError};
use crate::id::ObjectId;
use crate::metrics::{
    EVENTS_PUBLISH_DURATION, EVENTS_PUBLISHED, STORE_CAS_CONFLICTS, STORE_ERRORS, STORE_OPERATION_DURATION, STORE_OPERATIONS, STORE_READS,
};
use crate::probe::{Probe, ProbeError};
use crate::store::{
    PageMark, PlanPage, PlanReader, PlanState, PlanWrite, PlanWriter, Repair, StoreError, StoreErrorKind, StoreWalk, StoredPlan, WriteError,
};

/// A store port implementation, measured: operations by kind and outcome with their latency, reads
/// as hits or misses, refused writes by reason, failures by kind.
pub struct MeteredStore<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> MeteredStore<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }
}

/// The outcome label of a store failure, and its `store_errors_total` kind.
fn store_error_labels(error: &StoreError) -> (&'static str, &'static str) {
    match error.kind {
        StoreErrorKind::Corrupt => ("corrupt", "corrupt"),
        StoreErrorKind::Unavailable if error.is_timeout() => ("unavailable", "timeout"),
        StoreErrorKind::Unavailable => ("unavailable", "unavailable"),
    }
}

fn record_store_error(error: &StoreError) -> &'static str {
    let (outcome, kind) = store_error_labels(error);
    ::metrics::counter!(STORE_ERRORS.name, "kind" => kind).increment(1);
    outcome
}

fn record_probe_error(error: &ProbeError) -> &'static str {
    let kind = if error.is_timeout() { "timeout" } else { "unavailable" };
    ::metrics::counter!(STORE_ERRORS.name, "kind" => kind).increment(1);
    "unavailable"
}

fn write_outcome(error: &WriteError) -> &'static str {
    match error {
        WriteError::VersionConflict => {
            ::metrics::counter!(STORE_CAS_CONFLICTS.name, "reason" => "version").increment(1);
            "conflict"
        }
        WriteError::IdTaken(_) => {
            ::metrics::counter!(STORE_CAS_CONFLICTS.name, "reason" => "object_id").increment(1);
            "conflict"
        }
        WriteError::Store(error) => record_store_error(error),
    }
}

/// Runs one store call and records its operation, outcome and latency.
async fn measured<T, E>(op: &'static str, call: impl Future<Output = Result<T, E>>, outcome: impl Fn(&E) -> &'static str) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    ::metrics::histogram!(STORE_OPERATION_DURATION.name, "op" => op).record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => outcome(error),
    };
    ::metrics::counter!(STORE_OPERATIONS.name, "op" => op, "outcome" => outcome).increment(1);
    result
}

fn record_read<T>(found: &Result<Option<T>, StoreError>) {
    if let Ok(found) = found {
        let result = if found.is_some() { "hit" } else { "miss" };
        ::metrics::counter!(STORE_READS.name, "result" => result).increment(1);
    }
}

#[async_trait]
impl<S: PlanReader + ?Sized> PlanReader for MeteredStore<S> {
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        let found = measured("plan", self.inner.plan(id), record_store_error).await;
        record_read(&found);
        found
    }

    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        let found = measured("owner", self.inner.owner(object_id), record_store_error).await;
        record_read(&found);
        found
    }

    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError> {
        measured("page", self.inner.page(org, after, limit), record_store_error).await
    }
}

#[async_trait]
impl<S: PlanWriter + ?Sized> PlanWriter for MeteredStore<S> {
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError> {
        measured("commit", self.inner.commit(write), write_outcome).await
    }

    async fn delete(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError> {
        measured("delete", self.inner.delete(id, expected), write_outcome).await
    }

    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError> {
        measured("mark_published", self.inner.mark_published(id, version), record_store_error).await
    }
}

#[async_trait]
impl<S: StoreWalk + ?Sized> StoreWalk for MeteredStore<S> {
    async fn walk(&self, cursor: Option<String>, batch: usize) -> Result<(Vec<PlanState>, Option<String>), StoreError> {
        measured("walk", self.inner.walk(cursor, batch), record_store_error).await
    }

    async fn repair(&self, plans: &[PlanState]) -> Result<Vec<Repair>, StoreError> {
        measured("repair", self.inner.repair(plans), record_store_error).await
    }
}

#[async_trait]
impl<S: Probe + ?Sized> Probe for MeteredStore<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn ping(&self) -> Result<(), ProbeError> {
        measured("ping", self.inner.ping(), record_probe_error).await
    }
}

/// A publisher, measured: publishes by outcome and their latency until acknowledged.
pub struct MeteredPublisher<P: ?Sized> {
    inner: Arc<P>,
}

impl<P: ?Sized> MeteredPublisher<P> {
    pub fn new(inner: Arc<P>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl<P: ChangePublisher + ?Sized> ChangePublisher for MeteredPublisher<P> {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = self.inner.publish(event).await;
        ::metrics::histogram!(EVENTS_PUBLISH_DURATION.name).record(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        ::metrics::counter!(EVENTS_PUBLISHED.name, "outcome" => outcome).increment(1);
        result
    }
}
