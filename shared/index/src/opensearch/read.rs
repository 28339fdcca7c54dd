//! Searches and document reads against the alias. A missing alias (nothing indexed yet) reads as
//! empty. Reads see what the cluster has refreshed (within a second of a write).

use std::collections::{BTreeMap, HashMap};

use opensearch::http::Method;
use plan::{ObjectId, Plan, Tenant};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::Cluster;
use super::dsl;
use crate::document::{self, DocSource, RebuiltPlan, Relation};
use crate::error::IndexError;
use crate::port::{IndexedDocument, IndexedPlan, ParentRelation, SearchHit, SearchPage, sort_children};
use crate::query::{SearchQuery, SortKey, day_number};

/// One search request returns at most this many documents (the clusters' default
/// `index.max_result_window`); longer reads page with `search_after`.
const WINDOW: usize = 10_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_routing")]
    routing: Option<ObjectId>,
    #[serde(rename = "_version")]
    version: Option<u64>,
    #[serde(rename = "_source", default)]
    source: Value,
    #[serde(default)]
    sort: Vec<Value>,
}

fn hits_of(body: &Value) -> Result<(u64, Vec<Hit>), IndexError> {
    let total = body.pointer("/hits/total/value").and_then(Value::as_u64).unwrap_or(0);
    let hits = body.pointer("/hits/hits").cloned().unwrap_or(Value::Array(Vec::new()));
    let hits: Vec<Hit> = serde_json::from_value(hits).map_err(|e| IndexError::corrupt(format!("search hits: {e}")))?;
    Ok((total, hits))
}

/// Runs a search on the alias; None when the alias does not exist.
async fn run(cluster: &Cluster, alias: &str, query: &[(&str, &str)], body: &Value) -> Result<Option<Value>, IndexError> {
    let reply = cluster.json(Method::Post, &format!("/{alias}/_search"), query, body).await?;
    if reply.status == 404 && reply.error_type() == "index_not_found_exception" {
        return Ok(None);
    }
    reply.ok("search").map(Some)
}

/// Every document a query matches, paging past the result window by `sort`.
async fn all(
    cluster: &Cluster,
    alias: &str,
    routing: Option<&str>,
    query: Value,
    sort: Value,
    source: Value,
) -> Result<Vec<Hit>, IndexError> {
    let params: Vec<(&str, &str)> = routing.map(|r| vec![("routing", r)]).unwrap_or_default();
    let mut out = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let mut body = json!({"size": WINDOW, "query": query, "sort": sort, "_source": source, "version": true, "track_total_hits": false});
        if let (Some(after), Some(body)) = (&after, body.as_object_mut()) {
            body.insert("search_after".to_owned(), Value::Array(after.clone()));
        }
        let Some(answer) = run(cluster, alias, &params, &body).await? else { return Ok(out) };
        let (_, hits) = hits_of(&answer)?;
        let full = hits.len() == WINDOW;
        after = hits.last().map(|h| h.sort.clone());
        out.extend(hits);
        if !full {
            return Ok(out);
        }
    }
}

fn source_of(hit: &Hit) -> Result<DocSource, IndexError> {
    serde_json::from_value(hit.source.clone()).map_err(|e| IndexError::corrupt(format!("document {}: {e}", hit.id)))
}

fn indexed_document(hit: Hit) -> Result<IndexedDocument, IndexError> {
    let source = source_of(&hit)?;
    Ok(IndexedDocument {
        routing: hit.routing.unwrap_or_else(|| source.plan_id.clone()),
        version: hit.version.unwrap_or(source.plan_version),
        id: hit.id,
        source,
    })
}

pub(super) async fn search(cluster: &Cluster, alias: &str, query: &SearchQuery, tenant: &Tenant) -> Result<SearchPage, IndexError> {
    let mut body = json!({
        "size": query.size + 1,
        "track_total_hits": true,
        "query": dsl::filter(dsl::plan_conditions(&query.filters, tenant)),
        "sort": [{"creationDate": {"order": "desc"}}, {"objectId": {"order": "asc"}}],
        "_source": ["snapshot", "planVersion"],
    });
    if let (Some(after), Some(body)) = (&query.after, body.as_object_mut()) {
        body.insert("search_after".to_owned(), json!([i64::from(after.day()) * DAY_MS, after.plan_id]));
    }
    let Some(answer) = run(cluster, alias, &[], &body).await? else { return Ok(SearchPage::default()) };
    let (total, hits) = hits_of(&answer)?;
    let more = hits.len() > query.size;
    let mut page: Vec<(SortKey, SearchHit)> = Vec::with_capacity(query.size);
    for hit in hits.into_iter().take(query.size) {
        let plan: Plan = serde_json::from_value(hit.source.get("snapshot").cloned().unwrap_or(Value::Null))
            .map_err(|e| IndexError::corrupt(format!("plan document {}: snapshot: {e}", hit.id)))?;
        let version = hit.source.get("planVersion").and_then(Value::as_u64).unwrap_or(0);
        let day = day_number(&plan.creation_date).ok_or_else(|| IndexError::corrupt(format!("plan document {}: creationDate", hit.id)))?;
        page.push((SortKey::new(day, plan.object_id.clone()), SearchHit { plan, version, matched_services: Vec::new() }));
    }
    if let Some(service) = &query.filters.service
        && !page.is_empty()
    {
        let mut matched = matched_services(cluster, alias, &page, service).await?;
        for (_, hit) in &mut page {
            hit.matched_services = matched.remove(&hit.plan.object_id).unwrap_or_default();
        }
    }
    let next_cursor = if more { page.last().map(|(key, _)| query.cursor_after(key)) } else { None };
    Ok(SearchPage { total, hits: page.into_iter().map(|(_, hit)| hit).collect(), next_cursor })
}

/// The linked plan services of the page's plans (at the versions the page shows) that satisfy
/// the service filter: one more request for the whole page, since `inner_hits` is not part of
/// the shared subset the adapter may rely on.
async fn matched_services(
    cluster: &Cluster,
    alias: &str,
    page: &[(SortKey, SearchHit)],
    service: &crate::query::ServiceFilter,
) -> Result<HashMap<ObjectId, Vec<ObjectId>>, IndexError> {
    let versions: Vec<Value> = page
        .iter()
        .map(|(_, hit)| json!({"bool": {"filter": [{"term": {"planId": hit.plan.object_id}}, {"term": {"planVersion": hit.version}}]}}))
        .collect();
    let mut conditions = vec![
        json!({"term": {"relation": Relation::LinkedPlanServices.as_str()}}),
        json!({"bool": {"should": versions, "minimum_should_match": 1}}),
    ];
    conditions.extend(dsl::service_conditions(service));
    let routing = page.iter().map(|(_, hit)| hit.plan.object_id.as_str()).collect::<Vec<_>>().join(",");
    let hits = all(
        cluster,
        alias,
        Some(&routing),
        dsl::filter(conditions),
        json!([{"planId": "asc"}, {"position": "asc"}]),
        json!(["objectId", "planId", "position"]),
    )
    .await?;
    let mut out: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    for hit in hits {
        let source = |field: &str| hit.source.get(field).and_then(Value::as_str).and_then(|s| ObjectId::parse(s).ok());
        if let (Some(plan_id), Some(object_id)) = (source("planId"), source("objectId")) {
            out.entry(plan_id).or_default().push(object_id);
        }
    }
    Ok(out)
}

/// Every document of a plan.
async fn plan_documents(cluster: &Cluster, alias: &str, plan_id: &ObjectId, source: Value) -> Result<Vec<Hit>, IndexError> {
    all(cluster, alias, Some(plan_id.as_str()), json!({"term": {"planId": plan_id}}), json!([{"objectId": "asc"}]), source).await
}

pub(super) async fn indexed(cluster: &Cluster, alias: &str, plan_id: &ObjectId) -> Result<Option<IndexedPlan>, IndexError> {
    let hits = plan_documents(cluster, alias, plan_id, json!(["objectId", "relation"])).await?;
    if hits.is_empty() {
        return Ok(None);
    }
    let mut plan_version = None;
    let mut objects = BTreeMap::new();
    for hit in hits {
        let version = hit.version.ok_or_else(|| IndexError::corrupt(format!("document {} without _version", hit.id)))?;
        let object_id = hit.source.get("objectId").and_then(Value::as_str).and_then(|s| ObjectId::parse(s).ok());
        let object_id = object_id.ok_or_else(|| IndexError::corrupt(format!("document {} without objectId", hit.id)))?;
        if hit.source.get("relation") == Some(&json!("plan")) {
            plan_version = Some(version);
        }
        objects.insert(object_id, version);
    }
    Ok(Some(IndexedPlan { plan_version, objects }))
}

pub(super) async fn plan_from_index(
    cluster: &Cluster,
    alias: &str,
    plan_id: &ObjectId,
    tenant: &Tenant,
) -> Result<Option<RebuiltPlan>, IndexError> {
    // The snapshot is left out on purpose: the point is to see what the documents themselves say.
    let hits = plan_documents(cluster, alias, plan_id, json!({"excludes": ["snapshot"]})).await?;
    let sources = hits.iter().map(source_of).collect::<Result<Vec<_>, _>>()?;
    let visible = sources.iter().any(|s| &s.object_id == plan_id && tenant.sees(&s.org));
    Ok(if visible { document::rebuild(plan_id, &sources) } else { None })
}

fn with_tenant(mut conditions: Vec<Value>, tenant: &Tenant) -> Value {
    if let Some(org) = tenant.confined_to() {
        conditions.push(json!({"term": {"_org": org}}));
    }
    dsl::filter(conditions)
}

pub(super) async fn document(
    cluster: &Cluster,
    alias: &str,
    object_id: &ObjectId,
    tenant: &Tenant,
) -> Result<Option<IndexedDocument>, IndexError> {
    let body = json!({
        "size": 1,
        "query": with_tenant(vec![json!({"term": {"objectId": object_id}})], tenant),
        "sort": [{"planId": "asc"}],
        "version": true,
    });
    let Some(answer) = run(cluster, alias, &[], &body).await? else { return Ok(None) };
    hits_of(&answer)?.1.into_iter().next().map(indexed_document).transpose()
}

pub(super) async fn children(
    cluster: &Cluster,
    alias: &str,
    parent: ParentRelation,
    parent_id: &ObjectId,
    tenant: &Tenant,
) -> Result<Option<Vec<IndexedDocument>>, IndexError> {
    // Every parent has children (a plan its cost shares, a plan service two), so an empty answer
    // means no such parent.
    let parent_query = json!({"term": {"objectId": parent_id}});
    let query = with_tenant(vec![json!({"has_parent": {"parent_type": parent.relation().as_str(), "query": parent_query}})], tenant);
    let hits = all(cluster, alias, None, query, json!([{"planId": "asc"}, {"objectId": "asc"}]), json!(true)).await?;
    let mut docs = hits.into_iter().map(indexed_document).collect::<Result<Vec<_>, _>>()?;
    // Should two plans briefly hold the parent's id, answer for the lowest plan id, as elsewhere.
    let Some(owner) = docs.iter().map(|d| d.source.plan_id.clone()).min() else { return Ok(None) };
    docs.retain(|d| d.source.plan_id == owner);
    sort_children(&mut docs);
    Ok(Some(docs))
}
