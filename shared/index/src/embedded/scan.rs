//! A search over the embedded index: the filters resolved once against the interned strings,
//! then one pass over the plans in result order (the total needs every match counted).

use plan::{ObjectId, Tenant};

use super::state::{Interner, Row, ServiceRow, State};
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

    fn matches(&self, key: &SortKey, row: &Row) -> bool {
        self.orgs.iter().all(|&org| row.org == org)
            && self.plan_type.is_none_or(|t| row.plan_type == t)
            && self.creation_date.is_none_or(|r| r.contains(key.day()))
            && self.deductible.is_none_or(|r| r.contains(row.deductible))
            && self.copay.is_none_or(|r| r.contains(row.copay))
            && self.text.iter().all(|w| row.words.binary_search(w).is_ok())
            && self.service.as_ref().is_none_or(|s| row.services.iter().any(|service| s.matches(service)))
    }
}

impl PreparedService<'_> {
    fn matches(&self, service: &ServiceRow) -> bool {
        self.cost_shares.deductible.is_none_or(|r| r.contains(service.deductible))
            && self.cost_shares.copay.is_none_or(|r| r.contains(service.copay))
            && self.name.iter().all(|w| service.words.binary_search(w).is_ok())
    }
}

pub(super) fn search(state: &State, words: &Interner, query: &SearchQuery, tenant: &Tenant) -> SearchPage {
    let Some(prepared) = Prepared::new(query, tenant, words) else { return SearchPage::default() };
    let mut total = 0u64;
    let mut hits: Vec<(&SortKey, &Row)> = Vec::with_capacity(query.size);
    let mut more = false;
    for (key, row) in &state.order {
        if !prepared.matches(key, row) {
            continue;
        }
        total += 1;
        if query.after.as_ref().is_none_or(|after| key > after) {
            if hits.len() < query.size {
                hits.push((key, row));
            } else {
                more = true;
            }
        }
    }
    let next_cursor = if more { hits.last().map(|(key, _)| query.cursor_after(key)) } else { None };
    let hits = hits
        .into_iter()
        .map(|(_, row)| {
            let matched_services = match &prepared.service {
                Some(service) => row
                    .services
                    .iter()
                    .zip(&row.plan.linked_plan_services)
                    .filter(|(s, _)| service.matches(s))
                    .map(|(_, linked)| linked.object_id.clone())
                    .collect::<Vec<ObjectId>>(),
                None => Vec::new(),
            };
            SearchHit { plan: (*row.plan).clone(), version: row.version, matched_services }
        })
        .collect();
    SearchPage { total, hits, next_cursor }
}
