//! A search over the embedded index: the filters resolved once against the interned strings,
//! then one pass over the columns (the total needs every match counted), keeping the page's
//! plans in a small heap ordered like the results.

#![allow(clippy::indexing_slicing, reason = "slot numbers come from iterating the columns, which all hold one entry per slot (state.rs)")]

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use plan::{ObjectId, Tenant};

use super::state::{Interner, State};
use crate::port::{SearchHit, SearchPage};
use crate::query::{CostShares, DateRange, Range, SearchQuery, SortKey};

/// The filters with every string replaced by its interned id.
struct Prepared<'q> {
    orgs: Vec<u32>,
    plan_type: Option<u32>,
    creation_date: Option<DateRange>,
    deductible: Option<Range>,
    copay: Option<Range>,
    service: Option<PreparedService<'q>>,
    text: Vec<u32>,
}

struct PreparedService<'q> {
    name: Vec<u32>,
    cost_shares: &'q CostShares,
}

fn all_in(wanted: &[u32], sorted: &[u32]) -> bool {
    wanted.iter().all(|w| sorted.binary_search(w).is_ok())
}

impl<'q> Prepared<'q> {
    /// None when some required string never occurs in the index: nothing can match.
    fn new(query: &'q SearchQuery, tenant: &Tenant, words: &Interner) -> Option<Self> {
        let f = &query.filters;
        let mut orgs = Vec::new();
        for org in [tenant.confined_to(), f.org.as_deref()].into_iter().flatten() {
            orgs.push(words.get(org)?);
        }
        let plan_type = match &f.plan_type {
            Some(t) => Some(words.get(t)?),
            None => None,
        };
        let lookup = |list: &[String]| list.iter().map(|w| words.get(w)).collect::<Option<Vec<u32>>>();
        let service = match &f.service {
            Some(s) => Some(PreparedService {
                name: match &s.name {
                    Some(name) => lookup(&name.words)?,
                    None => Vec::new(),
                },
                cost_shares: &s.cost_shares,
            }),
            None => None,
        };
        let text = match &f.text {
            Some(text) => lookup(&text.words)?,
            None => Vec::new(),
        };
        let shares = f.plan_cost_shares.as_ref();
        Some(Self {
            orgs,
            plan_type,
            creation_date: f.creation_date,
            deductible: shares.and_then(|s| s.deductible),
            copay: shares.and_then(|s| s.copay),
            service,
            text,
        })
    }

    /// The cheap plan-level conditions first, the services last.
    fn matches(&self, s: &State, i: usize) -> bool {
        let c = &s.columns;
        c.live[i]
            && self.orgs.iter().all(|&org| c.org[i] == org)
            && self.plan_type.is_none_or(|t| c.plan_type[i] == t)
            && self.creation_date.is_none_or(|r| r.contains(c.day[i]))
            && self.deductible.is_none_or(|r| r.contains(c.deductible[i]))
            && self.copay.is_none_or(|r| r.contains(c.copay[i]))
            && (self.text.is_empty() || all_in(&self.text, s.plan_words.get(c.words[i])))
            && self.service.as_ref().is_none_or(|service| c.services[i].range().any(|j| service.matches(s, j)))
    }
}

impl PreparedService<'_> {
    fn matches(&self, s: &State, j: usize) -> bool {
        let row = s.service_rows.item(j);
        self.cost_shares.deductible.is_none_or(|r| r.contains(row.deductible))
            && self.cost_shares.copay.is_none_or(|r| r.contains(row.copay))
            && (self.name.is_empty() || all_in(&self.name, s.service_words.get(row.words)))
    }
}

/// A candidate for the page: its place in the result order and its slot.
struct Candidate<'s> {
    day: Reverse<i32>,
    id: &'s ObjectId,
    slot: usize,
}

impl Candidate<'_> {
    fn key(&self) -> (Reverse<i32>, &ObjectId) {
        (self.day, self.id)
    }
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Candidate<'_> {}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

pub(super) fn search(state: &State, words: &Interner, query: &SearchQuery, tenant: &Tenant) -> SearchPage {
    let Some(prepared) = Prepared::new(query, tenant, words) else { return SearchPage::default() };
    let after = query.after.as_ref().map(|a| (a.day, &a.plan_id));
    // The page and one more (to know whether a next page exists): the heap keeps the smallest
    // keys seen, its top is the largest of them.
    let keep = query.size + 1;
    let mut page: BinaryHeap<Candidate> = BinaryHeap::with_capacity(keep + 1);
    let mut total = 0u64;
    for i in 0..state.columns.live.len() {
        if !prepared.matches(state, i) {
            continue;
        }
        total += 1;
        let day = Reverse(state.columns.day[i]);
        // Compare days first; the plan id only on a tie, as it costs a pointer.
        if let Some(top) = page.peek().filter(|_| page.len() == keep)
            && day > top.day
        {
            continue;
        }
        let Some(slot) = &state.slots[i] else { continue };
        let candidate = Candidate { day, id: &slot.plan.object_id, slot: i };
        if after.is_some_and(|after| candidate.key() <= after) {
            continue;
        }
        if page.len() < keep {
            page.push(candidate);
        } else if page.peek().is_some_and(|top| candidate < *top) {
            page.pop();
            page.push(candidate);
        }
    }
    let mut page = page.into_sorted_vec();
    let more = page.len() > query.size;
    page.truncate(query.size);
    let next_cursor = match page.last() {
        Some(last) if more => Some(query.cursor_after(&SortKey::new(last.day.0, last.id.clone()))),
        _ => None,
    };
    let hits = page
        .into_iter()
        .filter_map(|candidate| {
            let slot = state.slots[candidate.slot].as_ref()?;
            let matched_services = match &prepared.service {
                Some(service) => state.columns.services[candidate.slot]
                    .range()
                    .zip(&slot.plan.linked_plan_services)
                    .filter(|(j, _)| service.matches(state, *j))
                    .map(|(_, linked)| linked.object_id.clone())
                    .collect(),
                None => Vec::new(),
            };
            Some(SearchHit { plan: (*slot.plan).clone(), version: slot.version, matched_services })
        })
        .collect();
    SearchPage { total, hits, next_cursor }
}
