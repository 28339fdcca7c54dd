//! One embedded index: live plans in result order with compact search rows, delete tombstones,
//! and objectId owners for document lookups. Plain data; the caller holds the lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use plan::{ObjectId, Plan};

use crate::analysis;
use crate::document;
use crate::port::{ChangeOutcome, IndexChange};
use crate::query::{SortKey, day_number};

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

/// What a search needs of a plan, laid out to be scanned quickly.
pub(super) struct Row {
    pub(super) version: u64,
    pub(super) plan: Arc<Plan>,
    pub(super) org: u32,
    pub(super) plan_type: u32,
    pub(super) deductible: f64,
    pub(super) copay: f64,
    /// One per linked plan service, in plan order.
    pub(super) services: Box<[ServiceRow]>,
    /// The words of every text field of every object of the plan, sorted, distinct.
    pub(super) words: Box<[u32]>,
}

pub(super) struct ServiceRow {
    /// The words of the linked service's name, sorted, distinct.
    pub(super) words: Box<[u32]>,
    pub(super) deductible: f64,
    pub(super) copay: f64,
}

#[derive(Default)]
pub(super) struct State {
    /// Live plans: plan id -> its place in `order`.
    keys: HashMap<ObjectId, SortKey>,
    /// Live plans in result order.
    pub(super) order: BTreeMap<SortKey, Row>,
    /// Deleted plans: plan id -> the version of the delete. Kept forever (see the port's docs).
    deleted: HashMap<ObjectId, u64>,
    /// objectId -> the live plans holding it, sorted (two only while an id changes plans).
    owners: HashMap<ObjectId, Vec<ObjectId>>,
}

impl State {
    pub(super) fn row(&self, plan_id: &ObjectId) -> Option<&Row> {
        self.order.get(self.keys.get(plan_id)?)
    }

    pub(super) fn owners(&self, object_id: &ObjectId) -> &[ObjectId] {
        self.owners.get(object_id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The version the index holds for a plan: live or deleted.
    fn version(&self, plan_id: &ObjectId) -> Option<u64> {
        self.row(plan_id).map(|row| row.version).or_else(|| self.deleted.get(plan_id).copied())
    }

    pub(super) fn apply(&mut self, change: &IndexChange, words: &mut Interner) -> ChangeOutcome {
        if self.version(change.plan_id()).is_some_and(|held| held >= change.version()) {
            return ChangeOutcome::AlreadyApplied;
        }
        match change {
            IndexChange::Upsert { plan, version } => {
                if let Err(error) = document::documents(plan, *version) {
                    return ChangeOutcome::Rejected(error.to_string());
                }
                let Some(day) = day_number(&plan.creation_date) else {
                    return ChangeOutcome::Rejected(format!("creationDate '{}' is not a calendar date", plan.creation_date));
                };
                self.remove(&plan.object_id);
                self.deleted.remove(&plan.object_id);
                let row = make_row(Arc::new(plan.clone()), *version, words);
                for id in plan.object_ids() {
                    let owners = self.owners.entry(id).or_default();
                    if let Err(at) = owners.binary_search(&plan.object_id) {
                        owners.insert(at, plan.object_id.clone());
                    }
                }
                let key = SortKey::new(day, plan.object_id.clone());
                self.keys.insert(plan.object_id.clone(), key.clone());
                self.order.insert(key, row);
            }
            IndexChange::Delete { plan_id, version } => {
                self.remove(plan_id);
                self.deleted.insert(plan_id.clone(), *version);
            }
        }
        ChangeOutcome::Applied
    }

    fn remove(&mut self, plan_id: &ObjectId) {
        let Some(key) = self.keys.remove(plan_id) else { return };
        let Some(row) = self.order.remove(&key) else { return };
        for id in row.plan.object_ids() {
            if let Some(owners) = self.owners.get_mut(&id) {
                owners.retain(|owner| owner != plan_id);
                if owners.is_empty() {
                    self.owners.remove(&id);
                }
            }
        }
    }
}

fn make_row(plan: Arc<Plan>, version: u64, words: &mut Interner) -> Row {
    let money = |n: &serde_json::Number| n.as_f64().unwrap_or(f64::NAN);
    let mut all_words = Vec::new();
    let services = plan
        .linked_plan_services
        .iter()
        .map(|service| {
            let mut ids: Vec<u32> = analysis::word_set(&service.linked_service.name).iter().map(|w| words.intern(w)).collect();
            ids.sort_unstable();
            all_words.extend_from_slice(&ids);
            let share = &service.planservice_cost_shares;
            ServiceRow { words: ids.into(), deductible: money(&share.deductible), copay: money(&share.copay) }
        })
        .collect();
    all_words.sort_unstable();
    all_words.dedup();
    Row {
        version,
        org: words.intern(&plan.org),
        plan_type: words.intern(&plan.plan_type),
        deductible: money(&plan.plan_cost_shares.deductible),
        copay: money(&plan.plan_cost_shares.copay),
        services,
        words: all_words.into(),
        plan,
    }
}
