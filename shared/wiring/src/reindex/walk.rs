//! The jobs that walk the whole store against the index: a full rebuild into a fresh index behind
//! the alias, and the drift check that compares store and index plan by plan.

use std::collections::BTreeSet;

use plan::ObjectId;
use plan::jobs::WALK_BATCH;
use plan::store::{PlanState, Repair, StoreError, StoreWalk};
use plan_index::{IndexChange, IndexError, PlanIndex};

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("stored plan {0} is not a valid plan")]
    Corrupt(ObjectId),
}

/// One plan whose index documents do not match the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Live in the store, absent from the index.
    Missing { plan: ObjectId, version: u64 },
    /// Indexed at another version than the store's (`None`: only orphan documents are left).
    Stale { plan: ObjectId, store_version: u64, index_version: Option<u64> },
    /// Same version, different objects.
    Objects { plan: ObjectId, missing: Vec<ObjectId>, extra: Vec<ObjectId> },
    /// Deleted in the store, documents still in the index.
    Deleted { plan: ObjectId, documents: usize },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { plan, version } => write!(f, "{plan}: missing from the index (store at version {version})"),
            Self::Stale { plan, store_version, index_version } => {
                write!(f, "{plan}: index at version {index_version:?}, store at {store_version}")
            }
            Self::Objects { plan, missing, extra } => write!(f, "{plan}: objects missing {missing:?}, extra {extra:?}"),
            Self::Deleted { plan, documents } => write!(f, "{plan}: deleted in the store, {documents} document(s) still indexed"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    pub plans_checked: usize,
    pub drift: Vec<Drift>,
    /// What the walk found out of step inside the store itself and mended (or, for an objectId
    /// two plans list, reported).
    pub repairs: Vec<Repair>,
}

/// Progress callback: plans done so far.
pub type Progress<'a> = &'a (dyn Fn(usize) + Send + Sync);

/// Compares every plan of the store with what the index holds for it.
pub async fn drift_check(walk: &dyn StoreWalk, index: &dyn PlanIndex, progress: Progress<'_>) -> Result<DriftReport, ReindexError> {
    let mut report = DriftReport::default();
    let mut cursor = None;
    let mut seen = BTreeSet::new();
    loop {
        let (states, next) = walk.walk(cursor, WALK_BATCH).await?;
        report.repairs.extend(walk.repair(&states).await?);
        for state in states {
            if !seen.insert(state.id.clone()) {
                continue;
            }
            report.plans_checked += 1;
            if let Some(drift) = compare(&state, index).await? {
                report.drift.push(drift);
            }
        }
        progress(report.plans_checked);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}

async fn compare(state: &PlanState, index: &dyn PlanIndex) -> Result<Option<Drift>, ReindexError> {
    let indexed = index.indexed(&state.id).await?;
    let plan = state.id.clone();
    Ok(match (&state.plan, indexed) {
        (None, None) => None,
        (None, Some(indexed)) => Some(Drift::Deleted { plan, documents: indexed.objects.len() }),
        (Some(_), None) => Some(Drift::Missing { plan, version: state.version }),
        (Some(_), Some(indexed)) if indexed.plan_version != Some(state.version) => {
            Some(Drift::Stale { plan, store_version: state.version, index_version: indexed.plan_version })
        }
        (Some(stored), Some(indexed)) => {
            let parsed: plan::Plan = serde_json::from_str(&stored.body).map_err(|_| ReindexError::Corrupt(plan.clone()))?;
            let expected = parsed.object_ids();
            if indexed.matches(state.version, &expected) {
                None
            } else {
                let expected: BTreeSet<ObjectId> = expected.into_iter().collect();
                let held: BTreeSet<ObjectId> =
                    indexed.objects.iter().filter(|(_, v)| **v == state.version).map(|(id, _)| id.clone()).collect();
                let missing = expected.difference(&held).cloned().collect();
                let extra = indexed.objects.keys().filter(|id| !expected.contains(*id) || !held.contains(*id)).cloned().collect();
                Some(Drift::Objects { plan, missing, extra })
            }
        }
    })
}

/// The index change that makes the index hold a plan's state.
fn change_of(state: &PlanState) -> Result<IndexChange, ReindexError> {
    Ok(match &state.plan {
        Some(stored) => IndexChange::Upsert {
            plan: serde_json::from_str(&stored.body).map_err(|_| ReindexError::Corrupt(state.id.clone()))?,
            version: state.version,
        },
        None => IndexChange::Delete { plan_id: state.id.clone(), version: state.version },
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub plans_indexed: usize,
}

/// Rebuilds the index from the store into a fresh index and swaps the alias to it atomically, so
/// search answers from the old index until the new one is complete. Changes the indexer applies
/// meanwhile go to both indexes (the index port's rebuild contract, visible to every process), and
/// external versions make the walk's older snapshots lose to them, so one walk is enough.
pub async fn rebuild(walk: &dyn StoreWalk, index: &dyn PlanIndex, progress: Progress<'_>) -> Result<RebuildReport, ReindexError> {
    let target = index.begin_rebuild().await?;
    let mut report = RebuildReport::default();
    let mut cursor = None;
    loop {
        let (states, next) = walk.walk(cursor, WALK_BATCH).await?;
        let changes: Vec<IndexChange> = states.iter().filter(|s| s.plan.is_some()).map(change_of).collect::<Result<_, _>>()?;
        report.plans_indexed += changes.len();
        if !changes.is_empty()
            && let Err(error) = index.apply_to(&target, &changes).await
        {
            let _ = index.abort_rebuild(target).await;
            return Err(error.into());
        }
        progress(report.plans_indexed);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    index.finish_rebuild(target).await?;
    Ok(report)
}
