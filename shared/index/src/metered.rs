//! A decorator that counts failed calls to any [`PlanIndex`] (`index_errors_total`, by operation),
//! so that the embedded index and OpenSearch are measured alike. Search latency and outcomes are
//! recorded by the search endpoints, which know the kind of query.

use std::sync::Arc;

use async_trait::async_trait;
use plan::metrics::INDEX_ERRORS;
use plan::probe::{Probe, ProbeError};
use plan::{ObjectId, Tenant};

use crate::document::RebuiltPlan;
use crate::error::IndexError;
use crate::port::{ChangeOutcome, IndexChange, IndexedDocument, IndexedPlan, ParentRelation, PlanIndex, RebuildTarget, SearchPage};
use crate::query::SearchQuery;

pub struct MeteredIndex<I: ?Sized> {
    inner: Arc<I>,
}

impl<I: ?Sized> MeteredIndex<I> {
    pub fn new(inner: Arc<I>) -> Self {
        Self { inner }
    }
}

/// Counts the call as failed under `op` (read, write, rebuild or probe) when it failed.
fn counted<T, E>(op: &'static str, result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        metrics::counter!(INDEX_ERRORS.name, "op" => op).increment(1);
    }
    result
}

#[async_trait]
impl<I: PlanIndex + ?Sized> PlanIndex for MeteredIndex<I> {
    async fn apply(&self, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        counted("write", self.inner.apply(changes).await)
    }

    async fn indexed(&self, plan_id: &ObjectId) -> Result<Option<IndexedPlan>, IndexError> {
        counted("read", self.inner.indexed(plan_id).await)
    }

    async fn begin_rebuild(&self) -> Result<RebuildTarget, IndexError> {
        counted("rebuild", self.inner.begin_rebuild().await)
    }

    async fn apply_to(&self, target: &RebuildTarget, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        counted("rebuild", self.inner.apply_to(target, changes).await)
    }

    async fn finish_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        counted("rebuild", self.inner.finish_rebuild(target).await)
    }

    async fn abort_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        counted("rebuild", self.inner.abort_rebuild(target).await)
    }

    async fn search(&self, query: &SearchQuery, tenant: &Tenant) -> Result<SearchPage, IndexError> {
        counted("read", self.inner.search(query, tenant).await)
    }

    async fn plan_from_index(&self, plan_id: &ObjectId, tenant: &Tenant) -> Result<Option<RebuiltPlan>, IndexError> {
        counted("read", self.inner.plan_from_index(plan_id, tenant).await)
    }

    async fn document(&self, object_id: &ObjectId, tenant: &Tenant) -> Result<Option<IndexedDocument>, IndexError> {
        counted("read", self.inner.document(object_id, tenant).await)
    }

    async fn children(
        &self,
        parent: ParentRelation,
        parent_id: &ObjectId,
        tenant: &Tenant,
    ) -> Result<Option<Vec<IndexedDocument>>, IndexError> {
        counted("read", self.inner.children(parent, parent_id, tenant).await)
    }
}

#[async_trait]
impl<I: PlanIndex + ?Sized> Probe for MeteredIndex<I> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn ping(&self) -> Result<(), ProbeError> {
        counted("probe", self.inner.ping().await)
    }
}
