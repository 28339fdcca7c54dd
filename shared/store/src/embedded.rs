//! The in-memory store: one mutex over plain maps. Every operation is atomic because it holds the
//! lock for its whole duration (and never across an await).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use plan::ObjectId;
use plan::probe::{Probe, ProbeError};
use plan::store::{
    Expected, MAX_OUTBOX_PER_PLAN, PageMark, PlanPage, PlanReader, PlanState, PlanWrite, PlanWriter, StoreError, StoreWalk, StoredPlan,
    Unpublished, WriteError,
};

#[derive(Default)]
pub struct EmbeddedStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every plan id ever written; a deleted plan keeps its version so versions only grow.
    plans: BTreeMap<ObjectId, Slot>,
    /// objectId -> the live plan that holds it.
    owners: HashMap<ObjectId, ObjectId>,
    /// Creation order, newest last: of all plans, and of each organisation's.
    order: BTreeMap<u64, ObjectId>,
    org_order: HashMap<String, BTreeMap<u64, ObjectId>>,
    next_seq: u64,
}

struct Slot {
    version: u64,
    live: Option<Live>,
    /// The outbox: every change of this plan that has not reached the topic yet, by version.
    outbox: BTreeMap<u64, Unpublished>,
    /// When the latest change was committed, ms since the Unix epoch.
    committed_at_ms: i64,
}

impl Slot {
    fn hold(&mut self, body: Option<String>, committed_at_ms: i64) {
        self.outbox.insert(self.version, Unpublished { version: self.version, body, committed_at_ms: Some(committed_at_ms) });
        while self.outbox.len() > MAX_OUTBOX_PER_PLAN {
            self.outbox.pop_first();
        }
    }
}

struct Live {
    org: String,
    body: String,
    etag: plan::ETag,
    seq: u64,
    object_ids: Vec<ObjectId>,
}

impl EmbeddedStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every mutation below
        // happens after all checks, so the data is consistent even if poisoned.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

impl State {
    fn stored(&self, id: &ObjectId) -> Option<StoredPlan> {
        let slot = self.plans.get(id)?;
        let live = slot.live.as_ref()?;
        Some(StoredPlan { id: id.clone(), org: live.org.clone(), version: slot.version, etag: live.etag.clone(), body: live.body.clone() })
    }
}

#[async_trait]
impl PlanReader for EmbeddedStore {
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        Ok(self.state().stored(id))
    }

    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        Ok(self.state().owners.get(object_id).cloned())
    }

    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError> {
        let state = self.state();
        let order = match org {
            None => &state.order,
            Some(org) => match state.org_order.get(org) {
                Some(order) => order,
                None => return Ok(PlanPage::default()),
            },
        };
        let upper = after.map_or(u64::MAX, |mark| mark.0);
        let mut ids = order.range(..upper).rev();
        let mut plans = Vec::with_capacity(limit);
        let mut next = None;
        for (seq, id) in ids.by_ref().take(limit) {
            plans.extend(state.stored(id));
            next = Some(PageMark(*seq));
        }
        if ids.next().is_none() {
            next = None;
        }
        Ok(PlanPage { plans, next })
    }
}

#[async_trait]
impl PlanWriter for EmbeddedStore {
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError> {
        let mut state = self.state();
        let state = &mut *state;
        let (version, live) = match state.plans.get(&write.id) {
            Some(slot) => (slot.version, slot.live.as_ref()),
            None => (0, None),
        };
        match (write.expected, live) {
            (Expected::Absent, None) => {}
            (Expected::Version(v), Some(_)) if v == version => {}
            _ => return Err(WriteError::VersionConflict),
        }
        if let Some(taken) = write.object_ids.iter().find(|id| state.owners.get(*id).is_some_and(|owner| owner != &write.id)) {
            return Err(WriteError::IdTaken(taken.clone()));
        }
        let seq = match live {
            Some(live) => {
                for id in live.object_ids.iter().filter(|id| !write.object_ids.contains(id)) {
                    state.owners.remove(id);
                }
                if live.org != write.org {
                    state.org_order.entry(live.org.clone()).or_default().remove(&live.seq);
                    state.org_order.entry(write.org.clone()).or_default().insert(live.seq, write.id.clone());
                }
                live.seq
            }
            None => {
                state.next_seq += 1;
                state.order.insert(state.next_seq, write.id.clone());
                state.org_order.entry(write.org.clone()).or_default().insert(state.next_seq, write.id.clone());
                state.next_seq
            }
        };
        for id in &write.object_ids {
            state.owners.insert(id.clone(), write.id.clone());
        }
        let version = version + 1;
        let live = Live { org: write.org, body: write.body, etag: write.etag, seq, object_ids: write.object_ids };
        let committed_at_ms = now_ms();
        let body = live.body.clone();
        let slot = state.plans.entry(write.id).or_insert_with(|| Slot { version: 0, live: None, outbox: BTreeMap::new(), committed_at_ms });
        slot.version = version;
        slot.live = Some(live);
        slot.committed_at_ms = committed_at_ms;
        slot.hold(Some(body), committed_at_ms);
        Ok(version)
    }

    async fn delete(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError> {
        let mut state = self.state();
        let state = &mut *state;
        let slot = state.plans.get_mut(id).filter(|slot| slot.live.is_some() && slot.version == expected);
        let Some(slot) = slot else { return Err(WriteError::VersionConflict) };
        if let Some(live) = slot.live.take() {
            for object_id in &live.object_ids {
                state.owners.remove(object_id);
            }
            state.order.remove(&live.seq);
            state.org_order.entry(live.org).or_default().remove(&live.seq);
        }
        slot.version += 1;
        slot.committed_at_ms = now_ms();
        slot.hold(None, slot.committed_at_ms);
        Ok(slot.version)
    }

    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError> {
        if let Some(slot) = self.state().plans.get_mut(id) {
            slot.outbox.remove(&version);
        }
        Ok(())
    }
}

#[async_trait]
impl StoreWalk for EmbeddedStore {
    async fn walk(&self, cursor: Option<String>, batch: usize) -> Result<(Vec<PlanState>, Option<String>), StoreError> {
        use std::ops::Bound;
        let state = self.state();
        let after = match &cursor {
            Some(raw) => Bound::Excluded(ObjectId::parse(raw).map_err(|_| StoreError::corrupt("not a walk cursor"))?),
            None => Bound::Unbounded,
        };
        let states: Vec<PlanState> = state
            .plans
            .range((after, Bound::Unbounded))
            .take(batch.max(1))
            .map(|(id, slot)| PlanState {
                id: id.clone(),
                version: slot.version,
                plan: state.stored(id),
                unpublished: !slot.outbox.is_empty(),
                outbox: slot.outbox.values().cloned().collect(),
                committed_at_ms: Some(slot.committed_at_ms),
            })
            .collect();
        let next = if states.len() < batch.max(1) { None } else { states.last().map(|s| s.id.to_string()) };
        Ok((states, next))
    }
}

#[async_trait]
impl Probe for EmbeddedStore {
    fn name(&self) -> &'static str {
        "embedded-store"
    }

    async fn ping(&self) -> Result<(), ProbeError> {
        drop(self.state());
        Ok(())
    }
}
