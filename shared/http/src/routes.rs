//! Every endpoint of the API, each a function of its own on Lambda and one route of the local
//! server. [`Endpoint`] is the single list both read, and that the template test checks.

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use futures_util::future::join_all;
use plan::probe::Probe;
use plan::{ETag, ListPage, PlanReads, PlanWrites, Read, Representation};
use plan_index::IndexReads;
use serde_json::json;
use serde_json::value::RawValue;

use crate::auth::{Authenticator, Scope};
use crate::extract::{CallerContext, Conditions, JsonBody, ListParams, PatchBody, PathId};
use crate::problem::ApiError;
use crate::search;

/// One route of the API, served by one Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    CreatePlan,
    ListPlans,
    GetPlan,
    PutPlan,
    PatchPlan,
    DeletePlan,
    Health,
    GetSchema,
    SearchPlans,
    SearchPlansByQuery,
    GetIndexedPlan,
    GetIndexData,
    GetOpenApi,
    DocsPage,
    DocsAsset,
}

impl Endpoint {
    pub const ALL: [Endpoint; 15] = [
        Self::CreatePlan,
        Self::ListPlans,
        Self::GetPlan,
        Self::PutPlan,
        Self::PatchPlan,
        Self::DeletePlan,
        Self::Health,
        Self::GetSchema,
        Self::SearchPlans,
        Self::SearchPlansByQuery,
        Self::GetIndexedPlan,
        Self::GetIndexData,
        Self::GetOpenApi,
        Self::DocsPage,
        Self::DocsAsset,
    ];

    pub fn method(self) -> Method {
        match self {
            Self::CreatePlan | Self::SearchPlans => Method::POST,
            Self::ListPlans
            | Self::GetPlan
            | Self::Health
            | Self::GetSchema
            | Self::SearchPlansByQuery
            | Self::GetIndexedPlan
            | Self::GetIndexData
            | Self::GetOpenApi
            | Self::DocsPage
            | Self::DocsAsset => Method::GET,
            Self::PutPlan => Method::PUT,
            Self::PatchPlan => Method::PATCH,
            Self::DeletePlan => Method::DELETE,
        }
    }

    /// The path, in the `{param}` syntax that axum, API Gateway and SAM share.
    ///
    /// `/v1/plan/es_data` overlaps `/v1/plan/{id}`: axum (like API Gateway) prefers the static
    /// segment, so a plan whose objectId is `es_data` cannot be reached by its path.
    pub fn path(self) -> &'static str {
        match self {
            Self::CreatePlan | Self::ListPlans => "/v1/plan",
            Self::GetPlan | Self::PutPlan | Self::PatchPlan | Self::DeletePlan => "/v1/plan/{id}",
            Self::Health => "/v1/health",
            Self::GetSchema => "/v1/schema/plan",
            Self::SearchPlans | Self::SearchPlansByQuery => "/v1/search",
            Self::GetIndexedPlan => "/v1/plan/es_plan/{planId}",
            Self::GetIndexData => "/v1/plan/es_data",
            Self::GetOpenApi => "/v1/openapi.json",
            Self::DocsPage => "/docs",
            Self::DocsAsset => "/docs/{asset}",
        }
    }

    /// Whether the endpoint reads the search index (and so needs `OPENSEARCH_URL` on Lambda).
    pub fn uses_index(self) -> bool {
        matches!(self, Self::SearchPlans | Self::SearchPlansByQuery | Self::GetIndexedPlan | Self::GetIndexData)
    }

    /// The function crate (and binary) that serves this endpoint on Lambda.
    pub fn function(self) -> &'static str {
        match self {
            Self::CreatePlan => "create-plan",
            Self::ListPlans => "list-plans",
            Self::GetPlan => "get-plan",
            Self::PutPlan => "put-plan",
            Self::PatchPlan => "patch-plan",
            Self::DeletePlan => "delete-plan",
            Self::Health => "health",
            Self::GetSchema => "get-schema",
            Self::SearchPlans => "search-plans",
            Self::SearchPlansByQuery => "search-plans-query",
            Self::GetIndexedPlan => "get-indexed-plan",
            Self::GetIndexData => "get-index-data",
            // One function serves the document, the page and its assets: the only function (with
            // plan-local) that embeds the Swagger UI bundle (plan-http's `api-docs` feature).
            Self::GetOpenApi | Self::DocsPage | Self::DocsAsset => "api-docs",
        }
    }

    /// Whether the endpoint changes plans (and so publishes change events).
    pub fn writes(self) -> bool {
        matches!(self, Self::CreatePlan | Self::PutPlan | Self::PatchPlan | Self::DeletePlan)
    }

    /// The scope a caller's token must grant, or `None` for the public routes (health, schema,
    /// the OpenAPI document and the docs page). Reads (and searches) need `plans:read`, writes `plans:write`.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Self::ListPlans | Self::GetPlan => Some(Scope::PlansRead),
            Self::SearchPlans | Self::SearchPlansByQuery | Self::GetIndexedPlan | Self::GetIndexData => Some(Scope::PlansRead),
            Self::CreatePlan | Self::PutPlan | Self::PatchPlan | Self::DeletePlan => Some(Scope::PlansWrite),
            Self::Health | Self::GetSchema | Self::GetOpenApi | Self::DocsPage | Self::DocsAsset => None,
        }
    }
}

/// The routes a process serves, each added with exactly what its handler calls: a Lambda
/// function's `main` names its own endpoint's method and so links only that handler and its use
/// case (a read function no validator or Kafka producer, a search function no store); the local
/// server adds every endpoint. Protected endpoints go behind the authenticator with their scope.
#[derive(Clone)]
pub struct Api {
    routes: Router,
    auth: Authenticator,
}

impl Api {
    /// No route yet; protected routes will be authenticated by `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self { routes: Router::new(), auth }
    }

    /// The three endpoints that validate a document compile the schema when they are added (a
    /// cold start pays it either way), so the first request does not; only they link the validator.
    pub fn create_plan(self, writes: PlanWrites) -> Self {
        plan::validate::warm_up();
        self.add(Endpoint::CreatePlan, |filter| on(filter, create_plan).with_state(writes))
    }

    pub fn list_plans(self, reads: PlanReads) -> Self {
        self.add(Endpoint::ListPlans, |filter| on(filter, list_plans).with_state(reads))
    }

    pub fn get_plan(self, reads: PlanReads) -> Self {
        self.add(Endpoint::GetPlan, |filter| on(filter, get_plan).with_state(reads))
    }

    pub fn put_plan(self, writes: PlanWrites) -> Self {
        plan::validate::warm_up();
        self.add(Endpoint::PutPlan, |filter| on(filter, put_plan).with_state(writes))
    }

    pub fn patch_plan(self, writes: PlanWrites) -> Self {
        plan::validate::warm_up();
        self.add(Endpoint::PatchPlan, |filter| on(filter, patch_plan).with_state(writes))
    }

    pub fn delete_plan(self, writes: PlanWrites) -> Self {
        self.add(Endpoint::DeletePlan, |filter| on(filter, delete_plan).with_state(writes))
    }

    /// `GET /v1/health`: every probe pinged at once.
    pub fn health(self, probes: Vec<Arc<dyn Probe>>) -> Self {
        let probes = Arc::new(probes);
        self.add(Endpoint::Health, |filter| on(filter, health).with_state(probes))
    }

    pub fn schema(self) -> Self {
        self.add(Endpoint::GetSchema, |filter| on(filter, get_schema))
    }

    pub fn search_plans(self, index: IndexReads) -> Self {
        self.add(Endpoint::SearchPlans, |filter| on(filter, search::search_by_body).with_state(index))
    }

    pub fn search_plans_by_query(self, index: IndexReads) -> Self {
        self.add(Endpoint::SearchPlansByQuery, |filter| on(filter, search::search_by_params).with_state(index))
    }

    pub fn indexed_plan(self, index: IndexReads) -> Self {
        self.add(Endpoint::GetIndexedPlan, |filter| on(filter, search::indexed_plan).with_state(index))
    }

    pub fn index_data(self, index: IndexReads) -> Self {
        self.add(Endpoint::GetIndexData, |filter| on(filter, search::index_data).with_state(index))
    }

    /// The OpenAPI document, the Swagger UI page and its files (`crate::docs`); in a build
    /// without the `api-docs` feature, 404s on those paths.
    pub fn docs(self) -> Self {
        [Endpoint::GetOpenApi, Endpoint::DocsPage, Endpoint::DocsAsset]
            .into_iter()
            .fold(self, |api, endpoint| api.add(endpoint, |filter| crate::docs::route(endpoint, filter)))
    }

    /// The authenticator's public keys on [`crate::JWKS_PATH`], when it is its own issuer (the
    /// local server), so that other processes can verify its tokens.
    pub fn jwks(mut self) -> Self {
        if let Some(jwks) = self.auth.published_jwks() {
            let body = axum::body::Bytes::from(serde_json::to_vec(jwks).unwrap_or_default());
            let route = axum::routing::get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/jwk-set+json"), (header::CACHE_CONTROL, "public, max-age=300")], body) }
            });
            self.routes = self.routes.route(crate::JWKS_PATH, route);
        }
        self
    }

    /// The routes with the edge's layers: the API's 404/405 problems, request ids, limits,
    /// metrics and the panic guard.
    pub fn into_router(self) -> Router {
        crate::with_edge_layers(self.routes)
    }

    /// `endpoint` on its path and method, behind authentication unless it is public.
    fn add(mut self, endpoint: Endpoint, route: impl FnOnce(MethodFilter) -> MethodRouter) -> Self {
        let filter = MethodFilter::try_from(endpoint.method()).unwrap_or(MethodFilter::GET);
        let route = route(filter);
        let route = match endpoint.scope() {
            Some(scope) => crate::middleware::protect(route, &self.auth, scope),
            None => route,
        };
        self.routes = self.routes.merge(Router::new().route(endpoint.path(), route));
        self
    }
}

async fn create_plan(
    State(writes): State<PlanWrites>,
    CallerContext(caller): CallerContext,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    let plan = writes.create(document, &caller).await?;
    Ok(plan_response(StatusCode::CREATED, plan))
}

async fn list_plans(
    State(reads): State<PlanReads>,
    CallerContext(caller): CallerContext,
    ListParams(query): ListParams,
) -> Result<Response, ApiError> {
    let page = reads.list(query, &caller).await?;
    Ok(list_response(page))
}

async fn get_plan(
    State(reads): State<PlanReads>,
    CallerContext(caller): CallerContext,
    PathId(id): PathId,
    Conditions(conditions): Conditions,
) -> Result<Response, ApiError> {
    let read = reads.get(&id, &conditions, &caller).await?;
    Ok(match read {
        Read::Found(representation) => plan_response(StatusCode::OK, representation),
        Read::NotModified(etag) => not_modified(&etag),
    })
}

async fn put_plan(
    State(writes): State<PlanWrites>,
    CallerContext(caller): CallerContext,
    PathId(id): PathId,
    Conditions(conditions): Conditions,
    JsonBody(document): JsonBody,
) -> Result<Response, ApiError> {
    let written = writes.replace(&id, document, &conditions, &caller).await?;
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(plan_response(status, written.plan))
}

async fn patch_plan(
    State(writes): State<PlanWrites>,
    CallerContext(caller): CallerContext,
    PathId(id): PathId,
    Conditions(conditions): Conditions,
    PatchBody(patch): PatchBody,
) -> Result<Response, ApiError> {
    let plan = writes.patch(&id, &patch, &conditions, &caller).await?;
    Ok(plan_response(StatusCode::OK, plan))
}

async fn delete_plan(
    State(writes): State<PlanWrites>,
    CallerContext(caller): CallerContext,
    PathId(id): PathId,
    Conditions(conditions): Conditions,
) -> Result<Response, ApiError> {
    let version = writes.delete(&id, &conditions, &caller).await?;
    // Every committed change carries its version, a delete the tombstone's (its event's).
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert("x-plan-version", HeaderValue::from(version));
    Ok(response)
}

async fn health(State(probes): State<Arc<Vec<Arc<dyn Probe>>>>) -> Response {
    let checks = join_all(probes.iter().map(|probe| async move {
        let started = Instant::now();
        let result = probe.ping().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(error) = &result {
            tracing::warn!(backend = probe.name(), %error, "health check failed");
        }
        (
            probe.name().to_owned(),
            json!({"status": if result.is_ok() { "up" } else { "down" }, "latencyMs": (latency_ms * 10.0).round() / 10.0}),
        )
    }))
    .await;
    let healthy = checks.iter().all(|(_, check)| check["status"] == "up");
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "backends": checks.into_iter().collect::<serde_json::Map<_, _>>(),
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

static SCHEMA_ETAG: LazyLock<ETag> = LazyLock::new(|| ETag::of(plan::PLAN_SCHEMA.as_bytes()));

async fn get_schema(Conditions(conditions): Conditions) -> Response {
    if conditions.for_read(&SCHEMA_ETAG) == plan::etag::ReadOutcome::NotModified {
        return not_modified(&SCHEMA_ETAG);
    }
    let headers = [(header::CONTENT_TYPE, "application/schema+json"), (header::CACHE_CONTROL, "public, max-age=300")];
    let mut response = (headers, plan::PLAN_SCHEMA).into_response();
    insert_etag(&mut response, &SCHEMA_ETAG);
    response
}

/// A plan or object: its JSON as stored, its ETag, the plan version, and Location when created.
fn plan_response(status: StatusCode, representation: Representation) -> Response {
    let mut response =
        (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "private, no-cache")], representation.body)
            .into_response();
    insert_etag(&mut response, &representation.etag);
    response.headers_mut().insert("x-plan-version", HeaderValue::from(representation.version));
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/v1/plan/{}", representation.plan_id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub(crate) fn not_modified(etag: &ETag) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    insert_etag(&mut response, etag);
    response
}

pub(crate) fn insert_etag(response: &mut Response, etag: &ETag) {
    if let Ok(value) = HeaderValue::from_str(&etag.to_string()) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// `{"items": [...], "nextCursor": "..."}`, the stored plans embedded as they are (no re-parse).
fn list_response(page: ListPage) -> Response {
    #[derive(serde::Serialize)]
    struct Body {
        items: Vec<Box<RawValue>>,
        #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    }
    let items = page.plans.into_iter().filter_map(|plan| RawValue::from_string(plan.body).ok()).collect();
    let body = Body { items, next_cursor: page.next_cursor };
    ([(header::CACHE_CONTROL, "private, no-cache")], axum::Json(body)).into_response()
}
