//! The embedded index: the whole index in this process's memory, with the same contract and the
//! same answers as OpenSearch. Used by the local server and the tests, and sized for 100,000
//! plans (see the `embedded` benchmark).
//!
//! One `RwLock`: a batch of changes is applied under the write lock, so a search sees a batch
//! whole or not at all; searches share the read lock and never wait on I/O.

mod scan;
mod state;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use plan::store::{Probe, StoreError};
use plan::{ObjectId, Tenant};

use self::state::{Interner, State};
use crate::document::{self, RebuiltPlan, doc_id};
use crate::error::IndexError;
use crate::port::{ChangeOutcome, IndexChange, IndexedDocument, IndexedPlan, ParentRelation, PlanIndex, RebuildTarget, SearchPage};
use crate::query::SearchQuery;

#[derive(Default)]
pub struct EmbeddedIndex {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    words: Interner,
    live: State,
    rebuild: Option<(RebuildTarget, State)>,
    rebuilds: u64,
}

impl EmbeddedIndex {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock leaves at most one change half-applied to the search rows of
    // one plan; the next change of that plan replaces them, so carrying on beats failing forever.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The documents of the live plan holding `object_id` (the lowest plan id if two do).
    fn documents_of_owner(&self, object_id: &ObjectId, tenant: &Tenant) -> Option<(ObjectId, Vec<IndexedDocument>)> {
        let inner = self.read();
        let owner = inner.live.owners(object_id).first()?.clone();
        let row = inner.live.row(&owner)?;
        if !tenant.sees(&row.plan.org) {
            return None;
        }
        let docs = document::documents(&row.plan, row.version).ok()?;
        let docs = docs
            .into_iter()
            .map(|doc| IndexedDocument { id: doc.id, routing: owner.clone(), version: row.version, source: doc.source })
            .collect();
        Some((owner, docs))
    }
}

fn no_such_rebuild(target: &RebuildTarget) -> IndexError {
    IndexError::rejected(format!("'{}' is not the running rebuild (superseded or finished)", target.name()))
}

#[async_trait]
impl PlanIndex for EmbeddedIndex {
    async fn apply(&self, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        let mut inner = self.write();
        let Inner { words, live, rebuild, .. } = &mut *inner;
        Ok(changes
            .iter()
            .map(|change| {
                if let Some((_, target)) = rebuild.as_mut() {
                    target.apply(change, words);
                }
                live.apply(change, words)
            })
            .collect())
    }

    async fn indexed(&self, plan_id: &ObjectId) -> Result<Option<IndexedPlan>, IndexError> {
        let inner = self.read();
        Ok(inner.live.row(plan_id).map(|row| IndexedPlan {
            plan_version: Some(row.version),
            objects: row.plan.object_ids().into_iter().map(|id| (id, row.version)).collect(),
        }))
    }

    async fn begin_rebuild(&self) -> Result<RebuildTarget, IndexError> {
        let mut inner = self.write();
        inner.rebuilds += 1;
        let target = RebuildTarget { name: format!("embedded-rebuild-{}", inner.rebuilds) };
        if let Some((abandoned, _)) = inner.rebuild.replace((target.clone(), State::default())) {
            tracing::warn!(rebuild = abandoned.name(), "abandoning an unfinished rebuild");
        }
        Ok(target)
    }

    async fn apply_to(&self, target: &RebuildTarget, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        let mut inner = self.write();
        let Inner { words, rebuild, .. } = &mut *inner;
        match rebuild {
            Some((running, state)) if running == target => Ok(changes.iter().map(|change| state.apply(change, words)).collect()),
            _ => Err(no_such_rebuild(target)),
        }
    }

    async fn finish_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        let mut inner = self.write();
        match inner.rebuild.take() {
            Some((running, state)) if running == target => {
                inner.live = state;
                Ok(())
            }
            other => {
                inner.rebuild = other;
                Err(no_such_rebuild(&target))
            }
        }
    }

    async fn abort_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        let mut inner = self.write();
        match inner.rebuild.take() {
            Some((running, _)) if running == target => Ok(()),
            other => {
                inner.rebuild = other;
                Err(no_such_rebuild(&target))
            }
        }
    }

    async fn search(&self, query: &SearchQuery, tenant: &Tenant) -> Result<SearchPage, IndexError> {
        let inner = self.read();
        Ok(scan::search(&inner.live, &inner.words, query, tenant))
    }

    async fn plan_from_index(&self, plan_id: &ObjectId, tenant: &Tenant) -> Result<Option<RebuiltPlan>, IndexError> {
        let inner = self.read();
        let Some(row) = inner.live.row(plan_id).filter(|row| tenant.sees(&row.plan.org)) else { return Ok(None) };
        let sources: Vec<_> =
            document::documents(&row.plan, row.version).map_err(IndexError::corrupt)?.into_iter().map(|d| d.source).collect();
        Ok(document::rebuild(plan_id, &sources))
    }

    async fn document(&self, object_id: &ObjectId, tenant: &Tenant) -> Result<Option<IndexedDocument>, IndexError> {
        let Some((_, docs)) = self.documents_of_owner(object_id, tenant) else { return Ok(None) };
        Ok(docs.into_iter().find(|doc| &doc.source.object_id == object_id))
    }

    async fn children(
        &self,
        parent: ParentRelation,
        parent_id: &ObjectId,
        tenant: &Tenant,
    ) -> Result<Option<Vec<IndexedDocument>>, IndexError> {
        let Some((owner, docs)) = self.documents_of_owner(parent_id, tenant) else { return Ok(None) };
        let parent_doc = doc_id(&owner, parent_id);
        if !docs.iter().any(|doc| doc.id == parent_doc && doc.source.relation.relation == parent.relation()) {
            return Ok(None);
        }
        let mut children: Vec<IndexedDocument> =
            docs.into_iter().filter(|doc| doc.source.relation.parent.as_deref() == Some(parent_doc.as_str())).collect();
        crate::port::sort_children(&mut children);
        Ok(Some(children))
    }
}

#[async_trait]
impl Probe for EmbeddedIndex {
    fn name(&self) -> &'static str {
        "embedded-index"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        drop(self.read());
        Ok(())
    }
}
