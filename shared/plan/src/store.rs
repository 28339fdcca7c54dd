//! The storage port. Adapters (Redis, embedded) live in `plan-store` and pass one contract suite.
//!
//! Guarantees every adapter gives:
//! - `commit` and `delete` are atomic per plan and compare-and-set on the plan version;
//! - versions only grow, across deletes and re-creates of the same plan id;
//! - an objectId belongs to at most one live plan; `commit` refuses one owned by another plan;
//! - `plan` is one round trip, `owner` is one lookup, and `page` costs O(limit), never a scan;
//! - every commit and delete puts its version, as committed, in the plan's outbox in the same
//!   atomic step, until `mark_published` takes it out (a change is never lost between store and
//!   topic, and a superseded version is not lost either, up to [`MAX_OUTBOX_PER_PLAN`]).

use std::fmt;

use async_trait::async_trait;

use crate::etag::ETag;
use crate::id::ObjectId;

/// A plan as stored: its canonical JSON body, the ETag of that body, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub id: ObjectId,
    /// The plan's `_org`, kept beside the body so tenant checks need no parse.
    pub org: String,
    pub version: u64,
    pub etag: ETag,
    pub body: String,
}

/// What the writer believes the plan is now; the store refuses the write otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No live plan with this id (a deleted one may have existed).
    Absent,
    /// The live plan at exactly this version.
    Version(u64),
}

/// A whole-plan write: the new canonical body and every objectId in it.
#[derive(Debug, Clone)]
pub struct PlanWrite {
    pub id: ObjectId,
    pub org: String,
    pub expected: Expected,
    pub body: String,
    pub etag: ETag,
    pub object_ids: Vec<ObjectId>,
}

/// A page of plans, newest first.
#[derive(Debug, Clone, Default)]
pub struct PlanPage {
    pub plans: Vec<StoredPlan>,
    /// Where the next page starts, when there is one.
    pub next: Option<PageMark>,
}

/// An adapter's position in the newest-first order of plans. Plans created later get higher
/// marks, so a page boundary never moves while plans are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageMark(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the plan is not at the expected version")]
    VersionConflict,
    #[error("objectId '{0}' belongs to another plan")]
    IdTaken(ObjectId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the store itself, with the kind callers branch on and the source for the logs.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Unreachable, timed out, or refusing: worth retrying later (503).
    Unavailable,
    /// Data that breaks the store's own invariants (500).
    Corrupt,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "store unavailable",
            Self::Corrupt => "store data corrupt",
        })
    }
}

/// The source of a [`StoreError`] when the store did not answer within its deadline, so that
/// timeouts can be told apart from refusals (`store_errors_total{kind="timeout"}`) without a new
/// error kind: both are "unavailable" to callers.
#[derive(Debug, thiserror::Error)]
#[error("the store did not answer within {0:?}")]
pub struct TimedOut(pub std::time::Duration);

impl StoreError {
    /// Whether the store timed out (see [`TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        self.source.downcast_ref::<TimedOut>().is_some()
    }

    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: StoreErrorKind::Unavailable, source: source.into() }
    }

    pub fn corrupt(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: StoreErrorKind::Corrupt, source: source.into() }
    }
}

/// Reads: what the get-plan and list-plans functions are allowed to do.
#[async_trait]
pub trait PlanReader: Send + Sync {
    /// The live plan with this id, in one round trip.
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError>;

    /// The id of the live plan that holds this objectId (the plan's own id included).
    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError>;

    /// Up to `limit` plans, newest first, starting after `after`; only `org`'s plans when given.
    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError>;
}

/// Writes: what the create, replace, patch and delete functions are allowed to do.
#[async_trait]
pub trait PlanWriter: PlanReader {
    /// Writes a whole plan if it is still as `expected`; returns the new version.
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError>;

    /// Deletes the plan and releases every objectId it held if it is still at `expected`;
    /// returns the version of the deletion (the tombstone's).
    async fn delete(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError>;

    /// Takes `version` out of the plan's outbox (other unpublished versions stay).
    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError>;
}

/// A plan as the reindex job sees it: live or deleted, and whether its latest change still has to
/// reach the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanState {
    pub id: ObjectId,
    pub version: u64,
    /// `None` once deleted.
    pub plan: Option<StoredPlan>,
    /// Some change of this plan has not reached the topic yet (`outbox` says which, unless the
    /// mark predates the outbox: then only the latest version is known).
    pub unpublished: bool,
    /// Every unpublished change still held, oldest version first.
    pub outbox: Vec<Unpublished>,
    /// When that latest change was committed (ms since the Unix epoch, the store's clock), so a
    /// republished event tells the commit's time, not the sweep's. `None` for changes stored
    /// before the store recorded it.
    pub committed_at_ms: Option<i64>,
}

/// What the walk found out of step with the plans, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// An objectId in a live plan's id set whose owner entry was missing, another plan's stale
    /// leftover, or a claim older than the lease that was never confirmed (a lost reply, a crash):
    /// now confirmed for the plan. `found` is the entry as it was.
    OwnerRestored { plan: ObjectId, object_id: ObjectId, found: Option<String> },
    /// The id sets of two plans both list the objectId: the ownership invariant is broken (clock
    /// skew beyond the store's tolerance, or keys edited by hand). Reported, never guessed at.
    SharedObjectId { object_id: ObjectId, plans: [ObjectId; 2] },
    /// A live plan missing from a listing it belongs to: added back.
    ListingRestored { plan: ObjectId, org: String },
    /// A listing entry for a plan that is deleted or belongs to another organisation: removed.
    ListingRemoved { plan: ObjectId, listing: String },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerRestored { plan, object_id, found } => {
                write!(f, "objectId {object_id}: owner entry {found:?} restored to plan {plan}")
            }
            Self::SharedObjectId { object_id, plans: [a, b] } => write!(f, "objectId {object_id}: listed by both {a} and {b}"),
            Self::ListingRestored { plan, org } => write!(f, "plan {plan}: added back to the listings (org {org})"),
            Self::ListingRemoved { plan, listing } => write!(f, "plan {plan}: removed from listing {listing}"),
        }
    }
}

/// One committed change that has not reached the topic yet, as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpublished {
    pub version: u64,
    /// The plan's canonical JSON at that version; `None` for a delete.
    pub body: Option<String>,
    /// When it was committed (ms since the Unix epoch, the store's clock).
    pub committed_at_ms: Option<i64>,
}

/// Unpublished versions an adapter keeps per plan, at most: beyond that the oldest superseded ones
/// are dropped (a plan rewritten thousands of times while the broker is down must not hold
/// thousands of bodies); the latest is always kept.
pub const MAX_OUTBOX_PER_PLAN: usize = 32;

/// Walks every plan ever written, a batch at a time. Only the reindex job (sweep, rebuild, drift
/// check) may walk the whole store; no request path does.
#[async_trait]
pub trait StoreWalk: Send + Sync {
    /// The next batch after `cursor` (`None` starts), and the cursor to continue from, `None` at
    /// the end. Every plan that exists for the whole walk is seen at least once (Redis' SSCAN may
    /// repeat one); callers are idempotent.
    async fn walk(&self, cursor: Option<String>, batch: usize) -> Result<(Vec<PlanState>, Option<String>), StoreError>;

    /// Checks the derived keys of these walked plans (owner entries, listings) against the plans
    /// themselves and mends what a lost reply or a crash left behind. An adapter whose writes are
    /// atomic end to end (the embedded store) has nothing to mend.
    async fn repair(&self, _plans: &[PlanState]) -> Result<Vec<Repair>, StoreError> {
        Ok(Vec::new())
    }
}
