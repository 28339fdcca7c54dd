//! The search-index port: what the indexer, the reindex job and the search functions may ask of
//! an index. [`crate::EmbeddedIndex`] and [`crate::OpenSearchIndex`] implement it and pass one
//! contract suite (`tests/index_contract.rs`).
//!
//! # Versions
//!
//! Every document of a plan carries the plan's version, which is also its external version.
//! Changes of one plan may arrive in any order and any number of times:
//! - an upsert or delete older than (or as old as) what the index holds for the plan changes
//!   nothing and is [`ChangeOutcome::AlreadyApplied`];
//! - an upsert leaves exactly the plan's objects: objects the previous version had and this one
//!   has not are deleted;
//! - a delete leaves no document of the plan, and remembers its version so that an older upsert
//!   arriving later does not bring the plan back. The embedded index remembers forever;
//!   OpenSearch remembers deletes for the index's `index.gc_deletes` (set to
//!   [`crate::opensearch::GC_DELETES`] when the index is created). An upsert older than a delete
//!   that arrives after that window re-creates the old plan until a newer change or a rebuild;
//!   the drift check reports it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use plan::probe::Probe;
use plan::{ObjectId, Plan, Tenant};
use serde::Serialize;

use crate::document::{DocSource, RebuiltPlan, Relation};
use crate::error::IndexError;
use crate::query::SearchQuery;

/// One committed change of a plan, as the indexer receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexChange {
    /// The plan as of `version`: the index will hold exactly its objects.
    Upsert { plan: Plan, version: u64 },
    /// The plan was deleted, the deletion being `version`.
    Delete { plan_id: ObjectId, version: u64 },
}

impl IndexChange {
    pub fn plan_id(&self) -> &ObjectId {
        match self {
            Self::Upsert { plan, .. } => &plan.object_id,
            Self::Delete { plan_id, .. } => plan_id,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Upsert { version, .. } | Self::Delete { version, .. } => *version,
        }
    }
}

/// What became of one change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// The index now reflects this change.
    Applied,
    /// The index already held this version of the plan or a newer one (or a newer delete):
    /// nothing was written. Replays and late deliveries end here.
    AlreadyApplied,
    /// This change can never be applied (a plan the index cannot hold): report it and send it to
    /// the dead letter; retrying will not help.
    Rejected(String),
}

/// What the index holds for one plan, for the drift check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedPlan {
    /// The plan document's version; None when only orphans of the plan are left.
    pub plan_version: Option<u64>,
    /// Every document of the plan: objectId -> the version of its document.
    pub objects: BTreeMap<ObjectId, u64>,
}

impl IndexedPlan {
    /// Whether the index holds exactly this version of a plan with exactly these objects.
    pub fn matches(&self, version: u64, object_ids: &[ObjectId]) -> bool {
        self.plan_version == Some(version)
            && self.objects.len() == object_ids.len()
            && object_ids.iter().all(|id| self.objects.get(id) == Some(&version))
    }
}

/// A fresh index being filled by a rebuild; opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildTarget {
    pub(crate) name: String,
}

impl RebuildTarget {
    /// The backend's name for the new index (for logs and progress output).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchPage {
    /// Plans matching the search, over all pages.
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// The cursor of the next page; None on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The plan as indexed.
    pub plan: Plan,
    pub version: u64,
    /// With a `service` filter: the objectIds of the plan's linked plan services that satisfy it,
    /// in plan order. Empty without one.
    pub matched_services: Vec<ObjectId>,
}

/// One indexed document as the index holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexedDocument {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_routing")]
    pub routing: ObjectId,
    #[serde(rename = "_version")]
    pub version: u64,
    #[serde(rename = "_source")]
    pub source: DocSource,
}

/// The relations that have children: `plan` and `linkedPlanServices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentRelation(Relation);

impl ParentRelation {
    pub const PLAN: Self = Self(Relation::Plan);
    pub const LINKED_PLAN_SERVICES: Self = Self(Relation::LinkedPlanServices);

    pub fn parse(raw: &str) -> Option<Self> {
        Relation::parse(raw).filter(|r| !r.children().is_empty()).map(Self)
    }

    pub fn relation(self) -> Relation {
        self.0
    }
}

/// The search index. Object safe: callers hold an `Arc<dyn PlanIndex>`.
///
/// Reads take the caller's [`Tenant`]: documents of another organisation read as absent.
#[async_trait]
pub trait PlanIndex: Probe {
    /// Applies a batch of changes in order, one outcome per change. On OpenSearch this is one
    /// realtime multi-get (what the index holds for the batch's plans) and one bulk request
    /// (split only above a few megabytes). While a rebuild is running, every change is also
    /// applied to the rebuild's index, so the swap loses nothing written meanwhile.
    ///
    /// `Err` means nothing can be said about the batch (the cluster is unreachable, overloaded or
    /// refused us): retry the whole batch; changes already applied then come back
    /// [`ChangeOutcome::AlreadyApplied`].
    async fn apply(&self, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError>;

    /// What the index holds for one plan (documents of every version, orphans included).
    async fn indexed(&self, plan_id: &ObjectId) -> Result<Option<IndexedPlan>, IndexError>;

    /// Starts a rebuild: a fresh, empty index that searches do not see yet. A rebuild left
    /// unfinished by an earlier run is abandoned (its index deleted).
    async fn begin_rebuild(&self) -> Result<RebuildTarget, IndexError>;

    /// Applies changes to the rebuild's index only, with the semantics of [`PlanIndex::apply`].
    async fn apply_to(&self, target: &RebuildTarget, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError>;

    /// Makes the rebuilt index the one searches read, in one atomic alias swap, and drops the
    /// old one. Fails with [`crate::IndexErrorKind::Rejected`] when this rebuild was superseded.
    async fn finish_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError>;

    /// Abandons a rebuild and deletes its index; searches never saw it.
    async fn abort_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError>;

    /// One page of plans matching `query` that `tenant` may see, in the order creationDate
    /// descending then plan id ascending. One request to the cluster, plus one for
    /// `matchedServices` when the query has a `service` filter, whatever the page size.
    async fn search(&self, query: &SearchQuery, tenant: &Tenant) -> Result<SearchPage, IndexError>;

    /// The plan rebuilt from its index documents alone (not from the stored snapshot), for
    /// comparison with the stored plan.
    async fn plan_from_index(&self, plan_id: &ObjectId, tenant: &Tenant) -> Result<Option<RebuiltPlan>, IndexError>;

    /// The document of the object with this objectId. Should two plans briefly hold one (an id
    /// released by one plan and taken by another, before the first's change is indexed), the
    /// one of the lowest plan id.
    async fn document(&self, object_id: &ObjectId, tenant: &Tenant) -> Result<Option<IndexedDocument>, IndexError>;

    /// The direct children of the `parent` document with this objectId, or None when no such
    /// parent is indexed. Children come in plan order.
    async fn children(
        &self,
        parent: ParentRelation,
        parent_id: &ObjectId,
        tenant: &Tenant,
    ) -> Result<Option<Vec<IndexedDocument>>, IndexError>;
}

/// Children in plan order: the plan's cost shares, then its services by position; a service's
/// linked service, then its cost shares.
pub(crate) fn sort_children(children: &mut [IndexedDocument]) {
    children.sort_by(|a, b| {
        let key = |d: &IndexedDocument| (d.source.relation.relation, d.source.position, d.source.object_id.clone());
        key(a).cmp(&key(b))
    });
}
