//! One embedded index: plans in slots, with the search columns kept per slot so a search is a
//! pass over a few flat arrays and a write touches only its own slot; delete tombstones; and
//! objectId owners for document lookups. Plain data; the caller holds the lock.

#![allow(
    clippy::indexing_slicing,
    reason = "every column holds one entry per slot (grown together in `upsert`), and a slot comes only from `slot_of` or `free`, both below that length"
)]

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use plan::{ObjectId, Plan};

use super::arena::{Arena, Span};
use crate::analysis;
use crate::document;
use crate::port::{ChangeOutcome, IndexChange};
use crate::query::day_number;

/// Strings the search compares (organisations, plan types, words) as small integers.
#[derive(Default)]
pub(super) struct Interner {
    ids: HashMap<Box<str>, u32>,
}

impl Interner {
    pub(super) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.insert(s.into(), id);
        id
    }

    pub(super) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
}

/// One linked plan service as the search sees it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServiceRow {
    pub(super) deductible: f64,
    pub(super) copay: f64,
    /// The words of its linked service's name, sorted, in the service-word arena.
    pub(super) words: Span,
}

/// A live plan.
pub(super) struct Slot {
    pub(super) plan: Arc<Plan>,
    pub(super) version: u64,
}

/// The search columns, one entry per slot (free slots are not `live`).
#[derive(Default)]
pub(super) struct Columns {
    pub(super) live: Vec<bool>,
    pub(super) day: Vec<i32>,
    pub(super) org: Vec<u32>,
    pub(super) plan_type: Vec<u32>,
    pub(super) deductible: Vec<f64>,
    pub(super) copay: Vec<f64>,
    /// Every word of every text field of the plan, sorted, distinct.
    pub(super) words: Vec<Span>,
    /// The plan's services, in plan order.
    pub(super) services: Vec<Span>,
}

#[derive(Default)]
pub(super) struct State {
    slot_of: HashMap<ObjectId, u32>,
    pub(super) slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    pub(super) columns: Columns,
    pub(super) plan_words: Arena<u32>,
    pub(super) service_rows: Arena<ServiceRow>,
    pub(super) service_words: Arena<u32>,
    /// Deleted plans: plan id -> the version of the delete. Kept forever (see the port's docs).
    deleted: HashMap<ObjectId, u64>,
    /// Hash of an objectId -> the slots of the live plans holding an object with that hash
    /// (lookups confirm against the plan). Hashes rather than ids keep this map small.
    owner: HashMap<u64, u32>,
    more_owners: HashMap<u64, Vec<u32>>,
}

fn id_hash(id: &ObjectId) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.as_str().hash(&mut hasher);
    hasher.finish()
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl State {
    pub(super) fn plan(&self, plan_id: &ObjectId) -> Option<&Slot> {
        self.slots.get(*self.slot_of.get(plan_id)? as usize)?.as_ref()
    }

    /// The live plan holding `object_id`; the lowest plan id if two do.
    pub(super) fn owner_of(&self, object_id: &ObjectId) -> Option<&Slot> {
        let hash = id_hash(object_id);
        let candidates = self.owner.get(&hash).into_iter().chain(self.more_owners.get(&hash).into_iter().flatten());
        candidates
            .filter_map(|&slot| self.slots.get(slot as usize)?.as_ref())
            .filter(|slot| slot.plan.nodes().any(|node| node.object_id() == object_id))
            .min_by(|a, b| a.plan.object_id.cmp(&b.plan.object_id))
    }

    /// The version the index holds for a plan: live or deleted.
    fn version(&self, plan_id: &ObjectId) -> Option<u64> {
        self.plan(plan_id).map(|slot| slot.version).or_else(|| self.deleted.get(plan_id).copied())
    }

    pub(super) fn apply(&mut self, change: &IndexChange, words: &mut Interner) -> ChangeOutcome {
        if self.version(change.plan_id()).is_some_and(|held| held >= change.version()) {
            return ChangeOutcome::AlreadyApplied;
        }
        match change {
            IndexChange::Upsert { plan, version } => {
                if let Err(error) = document::check_indexable(plan) {
                    return ChangeOutcome::Rejected(error.to_string());
                }
                let Some(day) = day_number(&plan.creation_date) else {
                    return ChangeOutcome::Rejected(format!("creationDate '{}' is not a calendar date", plan.creation_date));
                };
                self.deleted.remove(&plan.object_id);
                self.upsert(Arc::new(plan.clone()), *version, day, words);
            }
            IndexChange::Delete { plan_id, version } => {
                self.remove(plan_id);
                self.deleted.insert(plan_id.clone(), *version);
            }
        }
        self.compact_if_needed();
        ChangeOutcome::Applied
    }

    fn upsert(&mut self, plan: Arc<Plan>, version: u64, day: i32, words: &mut Interner) {
        let slot = match self.slot_of.get(&plan.object_id) {
            Some(&slot) => {
                let old = self.slots[slot as usize].take();
                if let Some(old) = old {
                    self.forget_owners(&old.plan, slot);
                }
                slot
            }
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    self.columns.grow();
                    index(self.slots.len() - 1)
                });
                self.slot_of.insert(plan.object_id.clone(), slot);
                slot
            }
        };
        let i = slot as usize;
        let money = |n: &serde_json::Number| n.as_f64().unwrap_or(f64::NAN);
        let mut all_words = Vec::new();
        let mut rows = Vec::with_capacity(plan.linked_plan_services.len());
        let old_services: Vec<ServiceRow> = self.service_rows.get(self.columns.services[i]).to_vec();
        for (n, service) in plan.linked_plan_services.iter().enumerate() {
            let mut ids: Vec<u32> = analysis::word_set(&service.linked_service.name).iter().map(|w| words.intern(w)).collect();
            ids.sort_unstable();
            all_words.extend_from_slice(&ids);
            let old_words = old_services.get(n).map(|row| row.words).unwrap_or_default();
            let share = &service.planservice_cost_shares;
            rows.push(ServiceRow {
                deductible: money(&share.deductible),
                copay: money(&share.copay),
                words: self.service_words.replace(old_words, &ids),
            });
        }
        for old in old_services.iter().skip(rows.len()) {
            self.service_words.free(old.words);
        }
        all_words.sort_unstable();
        all_words.dedup();
        let c = &mut self.columns;
        c.live[i] = true;
        c.day[i] = day;
        c.org[i] = words.intern(&plan.org);
        c.plan_type[i] = words.intern(&plan.plan_type);
        c.deductible[i] = money(&plan.plan_cost_shares.deductible);
        c.copay[i] = money(&plan.plan_cost_shares.copay);
        c.words[i] = self.plan_words.replace(c.words[i], &all_words);
        c.services[i] = self.service_rows.replace(c.services[i], &rows);
        for node in plan.nodes() {
            let hash = id_hash(node.object_id());
            match self.owner.get(&hash) {
                None => {
                    self.owner.insert(hash, slot);
                }
                Some(&first) if first == slot => {}
                Some(_) => {
                    let more = self.more_owners.entry(hash).or_default();
                    if !more.contains(&slot) {
                        more.push(slot);
                    }
                }
            }
        }
        self.slots[i] = Some(Slot { plan, version });
    }

    fn remove(&mut self, plan_id: &ObjectId) {
        let Some(slot) = self.slot_of.remove(plan_id) else { return };
        let i = slot as usize;
        if let Some(old) = self.slots[i].take() {
            self.forget_owners(&old.plan, slot);
        }
        let c = &mut self.columns;
        c.live[i] = false;
        for row in self.service_rows.get(c.services[i]) {
            self.service_words.free(row.words);
        }
        self.plan_words.free(c.words[i]);
        self.service_rows.free(c.services[i]);
        c.words[i] = Span::default();
        c.services[i] = Span::default();
        self.free.push(slot);
    }

    fn forget_owners(&mut self, plan: &Plan, slot: u32) {
        for node in plan.nodes() {
            let hash = id_hash(node.object_id());
            if let Some(more) = self.more_owners.get_mut(&hash) {
                more.retain(|&s| s != slot);
            }
            if self.owner.get(&hash) == Some(&slot) {
                match self.more_owners.get_mut(&hash).and_then(Vec::pop) {
                    Some(next) => self.owner.insert(hash, next),
                    None => self.owner.remove(&hash),
                };
            }
            if self.more_owners.get(&hash).is_some_and(Vec::is_empty) {
                self.more_owners.remove(&hash);
            }
        }
    }

    fn compact_if_needed(&mut self) {
        let c = &mut self.columns;
        if self.plan_words.wants_compaction() {
            self.plan_words.compact(c.words.iter_mut());
        }
        if self.service_rows.wants_compaction() {
            self.service_rows.compact(c.services.iter_mut());
        }
        if self.service_words.wants_compaction() {
            // Service rows hold the spans into the service-word arena; copy them out, compact, and
            // write them back in place.
            let mut rows: Vec<ServiceRow> = c.services.iter().flat_map(|span| self.service_rows.get(*span).to_vec()).collect();
            self.service_words.compact(rows.iter_mut().map(|row| &mut row.words));
            let mut next = rows.into_iter();
            for span in c.services.clone() {
                let updated: Vec<ServiceRow> = next.by_ref().take(span.len()).collect();
                self.service_rows.replace(span, &updated);
            }
        }
    }
}

#[cfg(test)]
impl State {
    /// (items, of which live) of the three arenas.
    pub(super) fn arena_sizes(&self) -> [(usize, usize); 3] {
        let c = &self.columns;
        let rows: Vec<&ServiceRow> = c.services.iter().flat_map(|span| self.service_rows.get(*span)).collect();
        [
            (self.plan_words.len(), c.words.iter().map(|s| s.len()).sum()),
            (self.service_rows.len(), rows.len()),
            (self.service_words.len(), rows.iter().map(|r| r.words.len()).sum()),
        ]
    }
}

impl Columns {
    fn grow(&mut self) {
        self.live.push(false);
        self.day.push(0);
        self.org.push(0);
        self.plan_type.push(0);
        self.deductible.push(0.0);
        self.copay.push(0.0);
        self.words.push(Span::default());
        self.services.push(Span::default());
    }
}
