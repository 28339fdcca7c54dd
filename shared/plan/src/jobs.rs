//! The sweep of the reindex job: every change the store still marks unpublished (Kafka was down,
//! or the process died between commit and publish) is published again, as the plan's current
//! snapshot, then unmarked. Snapshots make this safe to repeat.

use crate::events::{ChangeEvent, ChangePublisher};
use crate::store::{PlanWriter, StoreError, StoreWalk};

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
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stops at the first failed publish: the broker is down, and the rest would fail too. What
    /// was not published stays marked for the next sweep.
    #[error("publishing stopped after {0:?}: {1}")]
    Publish(SweepReport, crate::events::PublishError),
    #[error("stored plan {0} is not a valid plan")]
    Corrupt(String),
}

pub async fn sweep(walk: &dyn StoreWalk, store: &dyn PlanWriter, publisher: &dyn ChangePublisher) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let mut cursor = None;
    loop {
        let (states, next) = walk.walk(cursor, WALK_BATCH).await?;
        report.walked += states.len();
        report.repaired += walk.repair(&states).await?.len();
        for state in states.into_iter().filter(|s| s.unpublished) {
            let event = match &state.plan {
                Some(stored) => {
                    let plan = serde_json::from_str(&stored.body).map_err(|_| SweepError::Corrupt(state.id.to_string()))?;
                    ChangeEvent::upsert(plan, state.version, "")
                }
                None => ChangeEvent::delete(state.id.clone(), state.version, ""),
            };
            if let Err(error) = publisher.publish(&event).await {
                return Err(SweepError::Publish(report, error));
            }
            store.mark_published(&state.id, state.version).await?;
            report.republished += 1;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}
