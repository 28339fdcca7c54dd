//! The search endpoints: typed searches over the index, and what the index holds for a plan or an
//! object. Each handler extracts, makes one call into [`IndexReads`], and answers.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use plan::ETag;
use plan::metrics::{SEARCH_QUERIES, SEARCH_QUERY_DURATION};
use plan_index::{IndexReadError, IndexReads, IndexedDocument, SearchPage};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::extract::{CallerContext, IndexDataParams, PathId, SearchBody, SearchParams};
use crate::problem::ApiError;

pub(crate) async fn search_by_body(
    State(reads): State<IndexReads>,
    CallerContext(caller): CallerContext,
    SearchBody(query): SearchBody,
) -> Result<Response, ApiError> {
    let page = measured("search", reads.search(&query, &caller)).await?;
    Ok(search_response(page))
}

pub(crate) async fn search_by_params(
    State(reads): State<IndexReads>,
    CallerContext(caller): CallerContext,
    SearchParams(query): SearchParams,
) -> Result<Response, ApiError> {
    let page = measured("query", reads.search(&query, &caller)).await?;
    Ok(search_response(page))
}

/// The plan rebuilt from its index documents, with the ETag its bytes would have: equal to the
/// stored plan's ETag exactly when the index holds the plan faithfully.
pub(crate) async fn indexed_plan(
    State(reads): State<IndexReads>,
    CallerContext(caller): CallerContext,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let rebuilt = measured("indexed_plan", reads.plan(&id, &caller)).await?;
    let etag = ETag::of(rebuilt.body.as_bytes());
    let mut response = ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], rebuilt.body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag.to_string()) {
        headers.insert(header::ETAG, value);
    }
    headers.insert("x-plan-version", HeaderValue::from(rebuilt.version));
    headers.insert("x-index-complete", HeaderValue::from_static(if rebuilt.complete { "true" } else { "false" }));
    Ok(response)
}

/// One indexed document, or with `parent_type` the children of a parent document.
pub(crate) async fn index_data(
    State(reads): State<IndexReads>,
    CallerContext(caller): CallerContext,
    params: IndexDataParams,
) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Children {
        #[serde(rename = "parentId")]
        parent_id: plan::ObjectId,
        #[serde(rename = "parentType")]
        parent_type: &'static str,
        children: Vec<IndexedDocument>,
    }
    let body = match params.parent_type {
        None => serde_json::to_value(measured("index_data", reads.document(&params.id, &caller)).await?),
        Some(parent) => {
            let children = measured("index_data", reads.children(parent, &params.id, &caller)).await?;
            serde_json::to_value(Children { parent_id: params.id, parent_type: parent.relation().as_str(), children })
        }
    };
    let body = body.map_err(|e| ApiError::Unrenderable(e.to_string()))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// Runs one index read and records it by kind (`search` and `query` for the POST and GET searches,
/// `indexed_plan`, `index_data`) with its latency. Only a failure of the index is an `error`: an
/// invalid search or an id the index does not hold is an answer.
async fn measured<T>(kind: &'static str, read: impl Future<Output = Result<T, IndexReadError>>) -> Result<T, IndexReadError> {
    let started = std::time::Instant::now();
    let result = read.await;
    metrics::histogram!(SEARCH_QUERY_DURATION.name, "kind" => kind).record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Err(IndexReadError::Unavailable(_) | IndexReadError::Internal(_)) => "error",
        _ => "ok",
    };
    metrics::counter!(SEARCH_QUERIES.name, "kind" => kind, "outcome" => outcome).increment(1);
    result
}

/// `{"total": n, "hits": [{"plan": {...}, "matchedServices": [...]}], "nextCursor": "..."}`.
fn search_response(page: SearchPage) -> Response {
    #[derive(Serialize)]
    struct Hit {
        plan: Box<RawValue>,
        #[serde(rename = "matchedServices")]
        matched_services: Vec<plan::ObjectId>,
    }
    #[derive(Serialize)]
    struct Body {
        total: u64,
        hits: Vec<Hit>,
        #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    }
    let hits = page
        .hits
        .into_iter()
        .filter_map(|hit| Some(Hit { plan: RawValue::from_string(hit.plan.to_json()).ok()?, matched_services: hit.matched_services }))
        .collect();
    let body = Body { total: page.total, hits, next_cursor: page.next_cursor };
    ([(header::CACHE_CONTROL, "private, no-cache")], axum::Json(body)).into_response()
}
