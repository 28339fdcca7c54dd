//! The sweep of the reindex job: every change the store still holds unpublished (Kafka was down,
//! or the process died between commit and publish) is published, each version as it was committed
//! and in version order, then taken out of the outbox. Snapshots make this safe to repeat. A plan the broker refuses (or that
//! cannot be read as a plan) is logged, counted and left marked, and the sweep goes on; only an
//! unreachable broker stops it.

use crate::events::{ChangeEvent, ChangePublisher, PublishErrorKind};
use crate::id::ObjectId;
use crate::metrics::{SWEEP_FAILURES, SWEEP_REPUBLISHED, SWEEP_RUNS};
use crate::store::{PlanState, PlanWriter, StoreError, StoreWalk};

/// Plans read per store round trip while walking.
pub const WALK_BATCH: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Plans walked (live and deleted).
    pub walked: usize,
    /// Unpublished changes published now.
    pub republished: usize,
    /// Owner entries and listings mended on the way (see `StoreWalk::repair`).
    pub repaired: usize,
    /// Unpublished changes that could not be published (the broker refused the record, or the
    /// stored plan is unreadable): still marked, tried again by the next sweep.
    pub failed: usize,
    /// The first of those, with the reason, at most [`MAX_FAILURES_LISTED`].
    pub failures: Vec<SweepFailure>,
}

/// Failures named in a sweep report, at most; the count is always complete.
pub const MAX_FAILURES_LISTED: usize = 100;

/// One plan the sweep could not publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepFailure {
    pub plan: ObjectId,
    pub version: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stops at the first publish that finds the broker unreachable: the rest would fail too.
    /// What was not published stays marked for the next sweep.
    #[error("publishing stopped after {0:?}: {1}")]
    Publish(SweepReport, crate::events::PublishError),
}

/// Runs one sweep and records it (`sweep_runs_total`, `sweep_republished_total`,
/// `sweep_failures_total`), a stopped sweep's partial report included.
pub async fn sweep(walk: &dyn StoreWalk, store: &dyn PlanWriter, publisher: &dyn ChangePublisher) -> Result<SweepReport, SweepError> {
    let result = sweep_unrecorded(walk, store, publisher).await;
    let (outcome, report) = match &result {
        Ok(report) => ("ok", Some(report)),
        Err(SweepError::Publish(report, _)) => ("error", Some(report)),
        Err(SweepError::Store(_)) => ("error", None),
    };
    ::metrics::counter!(SWEEP_RUNS.name, "outcome" => outcome).increment(1);
    if let Some(report) = report {
        ::metrics::counter!(SWEEP_REPUBLISHED.name).increment(report.republished as u64);
        ::metrics::counter!(SWEEP_FAILURES.name).increment(report.failed as u64);
    }
    result
}

async fn sweep_unrecorded(
    walk: &dyn StoreWalk,
    store: &dyn PlanWriter,
    publisher: &dyn ChangePublisher,
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let mut cursor = None;
    loop {
        let (states, next) = walk.walk(cursor, WALK_BATCH).await?;
        report.walked += states.len();
        report.repaired += walk.repair(&states).await?.len();
        for state in states.into_iter().filter(|s| s.unpublished) {
            for (version, event) in events_of(&state, &mut report) {
                match publisher.publish(&event).await {
                    Ok(()) => {}
                    Err(error) if error.kind == PublishErrorKind::Rejected => {
                        report.fail(&state.id, version, error.to_string());
                        continue;
                    }
                    Err(error) => return Err(SweepError::Publish(report, error)),
                }
                store.mark_published(&state.id, version).await?;
                report.republished += 1;
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}

/// The events of a plan's unpublished changes, oldest version first: each as it was committed,
/// or, for a mark older than the outbox, the plan's current state.
fn events_of(state: &PlanState, report: &mut SweepReport) -> Vec<(u64, ChangeEvent)> {
    let dated = |event: ChangeEvent, at: Option<i64>| match at {
        Some(at) => event.committed_at(at),
        None => event,
    };
    let mut events = Vec::new();
    if state.outbox.is_empty() {
        let event = match &state.plan {
            Some(stored) => match serde_json::from_str(&stored.body) {
                Ok(plan) => ChangeEvent::upsert(plan, state.version, ""),
                Err(error) => {
                    report.fail(&state.id, state.version, format!("stored plan is not a valid plan: {error}"));
                    return events;
                }
            },
            None => ChangeEvent::delete(state.id.clone(), state.version, ""),
        };
        events.push((state.version, dated(event, state.committed_at_ms)));
        return events;
    }
    for entry in &state.outbox {
        let event = match &entry.body {
            Some(body) => match serde_json::from_str(body) {
                Ok(plan) => ChangeEvent::upsert(plan, entry.version, ""),
                Err(error) => {
                    report.fail(&state.id, entry.version, format!("stored plan is not a valid plan: {error}"));
                    continue;
                }
            },
            None => ChangeEvent::delete(state.id.clone(), entry.version, ""),
        };
        events.push((entry.version, dated(event, entry.committed_at_ms)));
    }
    events
}

impl SweepReport {
    fn fail(&mut self, plan: &ObjectId, version: u64, reason: String) {
        tracing::error!(%plan, version, %reason, "sweep could not publish this change; it stays marked and the sweep goes on");
        self.failed += 1;
        if self.failures.len() < MAX_FAILURES_LISTED {
            self.failures.push(SweepFailure { plan: plan.clone(), version, reason });
        }
    }
}
