//! The typed search, translated to the query DSL that OpenSearch 2 and Elasticsearch 8 share:
//! `bool` filters, `term`, `range`, and `has_child` for the parent-child conditions. Filter
//! context only: the order is by creationDate and plan id, never by score.

use plan::Tenant;
use serde_json::{Value, json};

use crate::document::Relation;
use crate::query::{CostShares, DateRange, Filters, Range, ServiceFilter, day_string};

fn term(field: &str, value: impl Into<Value>) -> Value {
    json!({"term": {field: value.into()}})
}

fn has_child(relation: Relation, query: Value) -> Value {
    json!({"has_child": {"type": relation.as_str(), "query": query}})
}

fn all_of(filters: Vec<Value>) -> Value {
    json!({"bool": {"filter": filters}})
}

fn range(field: &str, range: &Range) -> Value {
    let mut bounds = serde_json::Map::new();
    if let Some(b) = range.lower {
        bounds.insert(if b.inclusive { "gte" } else { "gt" }.into(), json!(b.value));
    }
    if let Some(b) = range.upper {
        bounds.insert(if b.inclusive { "lte" } else { "lt" }.into(), json!(b.value));
    }
    json!({"range": {field: bounds}})
}

fn date_range(range: &DateRange) -> Value {
    let mut bounds = serde_json::Map::new();
    if let Some(b) = range.lower {
        bounds.insert(if b.inclusive { "gte" } else { "gt" }.into(), json!(day_string(b.value)));
    }
    if let Some(b) = range.upper {
        bounds.insert(if b.inclusive { "lte" } else { "lt" }.into(), json!(day_string(b.value)));
    }
    bounds.insert("format".into(), json!("yyyy-MM-dd"));
    json!({"range": {"creationDate": bounds}})
}

fn cost_share_conditions(shares: &CostShares) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(r) = &shares.deductible {
        out.push(range("deductible", r));
    }
    if let Some(r) = &shares.copay {
        out.push(range("copay", r));
    }
    out
}

/// Conditions on one `linkedPlanServices` document: its linked service's name has every word,
/// its cost shares are in range.
pub(super) fn service_conditions(service: &ServiceFilter) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(name) = &service.name {
        let words = name.words.iter().map(|w| term("name", w.as_str())).collect();
        out.push(has_child(Relation::LinkedService, all_of(words)));
    }
    let shares = cost_share_conditions(&service.cost_shares);
    if !shares.is_empty() {
        out.push(has_child(Relation::PlanserviceCostShares, all_of(shares)));
    }
    out
}

/// The text fields of a plan's objects, as the path of child relations from the plan down to the
/// documents holding them. Only a linked service's `name` is free text in the schema; ids,
/// types, organisations and dates are matched exactly by their own filters.
const TEXT_FIELDS: &[(&[Relation], &str)] = &[(&[Relation::LinkedPlanServices, Relation::LinkedService], "name")];

fn word_anywhere(word: &str) -> Value {
    let options: Vec<Value> = TEXT_FIELDS
        .iter()
        .map(|(path, field)| path.iter().rev().fold(term(field, word), |query, relation| has_child(*relation, query)))
        .collect();
    json!({"bool": {"should": options, "minimum_should_match": 1}})
}

/// The conditions a plan document must meet.
pub(super) fn plan_conditions(filters: &Filters, tenant: &Tenant) -> Vec<Value> {
    let mut out = vec![term("relation", Relation::Plan.as_str())];
    if let Some(org) = tenant.confined_to() {
        out.push(term("_org", org));
    }
    if let Some(org) = &filters.org {
        out.push(term("_org", org.as_str()));
    }
    if let Some(plan_type) = &filters.plan_type {
        out.push(term("planType", plan_type.as_str()));
    }
    if let Some(dates) = &filters.creation_date {
        out.push(date_range(dates));
    }
    if let Some(shares) = &filters.plan_cost_shares {
        out.push(has_child(Relation::PlanCostShares, all_of(cost_share_conditions(shares))));
    }
    if let Some(service) = &filters.service {
        out.push(has_child(Relation::LinkedPlanServices, all_of(service_conditions(service))));
    }
    if let Some(text) = &filters.text {
        out.extend(text.words.iter().map(|w| word_anywhere(w)));
    }
    out
}

pub(super) fn filter(conditions: Vec<Value>) -> Value {
    all_of(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::SearchQuery;

    #[test]
    fn a_named_service_with_a_copay_range_is_a_two_level_join() {
        let query = SearchQuery::from_json(&json!({"service": {"name": "Physical", "copay": {"gte": 100}}})).unwrap();
        let conditions = plan_conditions(&query.filters, &Tenant::org("example.com"));
        assert_eq!(
            Value::Array(conditions),
            json!([
                {"term": {"relation": "plan"}},
                {"term": {"_org": "example.com"}},
                {"has_child": {"type": "linkedPlanServices", "query": {"bool": {"filter": [
                    {"has_child": {"type": "linkedService", "query": {"bool": {"filter": [{"term": {"name": "physical"}}]}}}},
                    {"has_child": {"type": "planserviceCostShares", "query": {"bool": {"filter": [{"range": {"copay": {"gte": 100.0}}}]}}}}
                ]}}}}
            ])
        );
    }

    #[test]
    fn dates_are_sent_in_one_layout() {
        let query = SearchQuery::from_json(&json!({"creationDate": {"gt": "12-12-2017"}})).unwrap();
        let conditions = plan_conditions(&query.filters, &Tenant::unrestricted());
        assert_eq!(conditions[1], json!({"range": {"creationDate": {"gt": "2017-12-12", "format": "yyyy-MM-dd"}}}));
    }
}
