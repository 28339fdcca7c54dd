//! The embedded index: the whole index in this process's memory, with the same contract and the
//! same answers as OpenSearch. Used by the local server and the tests, and sized for 100,000
//! plans (see the `embedded` benchmark).
//!
//! One `RwLock`: a batch of changes is applied under the write lock, so a search sees a batch
//! whole or not at all; searches share the read lock and never wait on I/O. The search columns
//! are kept per plan slot in flat arrays, updated in place by each change, so a search is one
//! pass over contiguous memory and no write makes the next search pay for a rebuild.

mod arena;
mod scan;
mod state;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use plan::probe::{Probe, ProbeError};
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
        let slot = inner.live.owner_of(object_id)?;
        if !tenant.sees(&slot.plan.org) {
            return None;
        }
        let owner = slot.plan.object_id.clone();
        let docs = document::documents(&slot.plan, slot.version).ok()?;
        let docs = docs
            .into_iter()
            .map(|doc| IndexedDocument { id: doc.id, routing: owner.clone(), version: slot.version, source: doc.source })
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
        Ok(inner.live.plan(plan_id).map(|slot| IndexedPlan {
            plan_version: Some(slot.version),
            objects: slot.plan.object_ids().into_iter().map(|id| (id, slot.version)).collect(),
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
        let Some(slot) = inner.live.plan(plan_id).filter(|slot| tenant.sees(&slot.plan.org)) else { return Ok(None) };
        let sources: Vec<_> =
            document::documents(&slot.plan, slot.version).map_err(IndexError::corrupt)?.into_iter().map(|d| d.source).collect();
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

    async fn ping(&self) -> Result<(), ProbeError> {
        drop(self.read());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::Plan;
    use serde_json::json;

    fn plan(n: usize, round: usize) -> Plan {
        let names = ["physical exam", "well baby", "dental", "vision care", "urgent care", "x-ray"];
        let services: Vec<serde_json::Value> = (0..(n + round) % 7)
            .map(|s| {
                json!({
                    "_org": "o", "objectId": format!("ps{s}-{n}"), "objectType": "planservice",
                    "linkedService": {"_org": "o", "objectId": format!("s{s}-{n}"), "objectType": "service", "name": names[(n * 7 + s + round) % names.len()]},
                    "planserviceCostShares": {"_org": "o", "objectId": format!("c{s}-{n}"), "objectType": "membercostshare", "deductible": s, "copay": (n + round * 13 + s) % 200}
                })
            })
            .collect();
        let plan_type = ["a", "b"][round % 2];
        plan::validate::parse_plan(json!({
            "_org": "o", "objectId": format!("p{n}"), "objectType": "plan", "planType": plan_type,
            "creationDate": format!("2020-01-{:02}", 1 + (n + round) % 28),
            "planCostShares": {"_org": "o", "objectId": format!("pc-{n}"), "objectType": "membercostshare", "deductible": round, "copay": n % 50},
            "linkedPlanServices": services
        }))
        .unwrap()
    }

    async fn pages(index: &EmbeddedIndex, body: serde_json::Value) -> Vec<(String, Vec<ObjectId>)> {
        let mut out = Vec::new();
        let mut body = body;
        loop {
            let page = index.search(&SearchQuery::from_json(&body).unwrap(), &Tenant::unrestricted()).await.unwrap();
            out.extend(page.hits.into_iter().map(|h| (h.plan.to_json(), h.matched_services)));
            match page.next_cursor {
                Some(cursor) => body["cursor"] = json!(cursor),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn churn_and_compaction_keep_the_same_answers_as_a_fresh_index() {
        let churned = EmbeddedIndex::new();
        for round in 0..40 {
            let changes: Vec<IndexChange> =
                (0..300).map(|n| IndexChange::Upsert { plan: plan(n, round), version: round as u64 + 1 }).collect();
            churned.apply(&changes).await.unwrap();
        }
        let deletes: Vec<IndexChange> =
            (0..300).step_by(7).map(|n| IndexChange::Delete { plan_id: ObjectId::parse(&format!("p{n}")).unwrap(), version: 99 }).collect();
        churned.apply(&deletes).await.unwrap();
        let fresh = EmbeddedIndex::new();
        let finals: Vec<IndexChange> =
            (0..300).filter(|n| n % 7 != 0).map(|n| IndexChange::Upsert { plan: plan(n, 39), version: 40 }).collect();
        fresh.apply(&finals).await.unwrap();
        for body in [
            json!({"size": 7}),
            json!({"service": {"name": "care", "copay": {"gte": 50}}, "size": 13}),
            json!({"text": "baby", "planType": "b"}),
            json!({"service": {"deductible": {"gte": 3}}, "planCostShares": {"copay": {"lt": 25}}}),
        ] {
            let expected = pages(&fresh, body.clone()).await;
            assert!(!expected.is_empty(), "{body}");
            assert_eq!(pages(&churned, body.clone()).await, expected, "{body}");
        }
        for n in [1, 8, 299] {
            let id = ObjectId::parse(&format!("s0-{n}")).unwrap();
            let doc = churned.document(&id, &Tenant::unrestricted()).await.unwrap();
            assert_eq!(doc, fresh.document(&id, &Tenant::unrestricted()).await.unwrap());
        }
        // Garbage never exceeds half an arena (beyond a small floor): compaction ran.
        for (items, live) in churned.read().live.arena_sizes() {
            assert!(items - live <= live.max(4096), "{items} items, {live} live");
        }
    }
}
