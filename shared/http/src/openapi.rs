//! The OpenAPI 3.1 description of the API, built from the code rather than kept beside it:
//!
//! - one operation per [`Endpoint`] (method, path, `operationId` from its function name, the
//!   bearer scope of [`Endpoint::scope`], public routes with `security: []`);
//! - every error status from [`failures`], a sample of each way a request to that route can fail,
//!   turned into a status by the one error mapping ([`ApiError::problem`]), so that a change of
//!   mapping changes the document and the tests below hold the two together;
//! - the request and response bodies from the plan JSON Schema itself (`plan::PLAN_SCHEMA`): its
//!   `$defs` become `components.schemas` with their `$ref`s rewritten, nothing is copied by hand;
//! - examples from `examples/plan.json`; links from a created plan to GET, PUT, PATCH and DELETE
//!   (its `objectId` and `ETag`), so that stateful tools (Schemathesis) can walk the API.
//!
//! Served at `GET /v1/openapi.json` (see [`crate::docs`]).

#![allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "builds the document from JSON objects made here (indexing them cannot miss) and from the bundled schema and sample, constants the unit tests parse"
)]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::http::StatusCode;
use plan::service::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use plan::store::StoreError;
use plan::{MAX_PLAN_BYTES, ObjectId, ObjectType, PlanError, Violations};
use plan_index::query::{MAX_SIZE, MAX_TEXT_CHARS};
use plan_index::{IndexError, IndexReadError};
use serde_json::{Map, Value, json};

use crate::Endpoint;
use crate::auth::{AuthError, TokenRejection};
use crate::extract::{BODY_READ_TIMEOUT, MAX_BODY_BYTES};
use crate::problem::ApiError;

/// The sample plan of the README and the events, as the request example.
const EXAMPLE_PLAN: &str = include_str!("../../../examples/plan.json");

/// An entity-tag list as `If-Match` and `If-None-Match` take it (RFC 9110): `*`, or
/// comma-separated strong or weak tags (possibly none).
const ENTITY_TAG_LIST: &str = r#"^[ \t]*(\*|((W/)?"[\x21\x23-\x7e]*"([ \t]*,[ \t]*(W/)?"[\x21\x23-\x7e]*")*)?)[ \t]*$"#;

/// The name of the bearer security scheme in `components.securitySchemes`.
pub const SECURITY_SCHEME: &str = "bearerAuth";

/// The document, built once per process. Mapping the sample failures runs the error mapping's
/// logging (a store outage is a warning, an internal error an error): not real events, so the
/// build runs with no subscriber.
pub static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), document));

/// A stable, readable `operationId`: the function's name in camelCase (`create-plan` ->
/// `createPlan`); the three docs routes share a function, so they get their own.
pub fn operation_id(endpoint: Endpoint) -> String {
    match endpoint {
        Endpoint::GetOpenApi => "getOpenApi".to_owned(),
        Endpoint::DocsPage => "getDocsPage".to_owned(),
        Endpoint::DocsAsset => "getDocsAsset".to_owned(),
        Endpoint::SearchPlansByQuery => "searchPlansByQuery".to_owned(),
        other => {
            let mut id = String::new();
            let mut upper = false;
            for c in other.function().chars() {
                if c == '-' {
                    upper = true;
                } else if upper {
                    id.push(c.to_ascii_uppercase());
                    upper = false;
                } else {
                    id.push(c);
                }
            }
            id
        }
    }
}

fn sample_id() -> ObjectId {
    ObjectId::parse("12xvxc345ssdsds-508").expect("a valid sample id")
}

/// One sample of every way a request to `endpoint` can fail, as the handlers and extractors
/// produce them. The statuses in the document are these errors' statuses, as `ApiError::problem`
/// maps them. When a handler starts returning a new error, add it here: the document follows.
pub fn failures(endpoint: Endpoint) -> Vec<ApiError> {
    use Endpoint as E;
    let id = sample_id;
    let store_down = || ApiError::Plan(PlanError::Unavailable(StoreError::unavailable("down")));
    let store_corrupt = || ApiError::Plan(PlanError::Internal(StoreError::corrupt("corrupt")));
    let index_down = || ApiError::Index(IndexReadError::Unavailable(IndexError::unavailable("down")));
    let index_corrupt = || ApiError::Index(IndexReadError::Internal(IndexError::corrupt("corrupt")));
    let violations = || Violations::one("/planType", "example");
    let json_body = |patch: bool| {
        vec![
            ApiError::UnsupportedMediaType { expected: "application/json", patch },
            ApiError::MalformedJson("example".to_owned()),
            ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES },
            ApiError::UnreadableBody,
            ApiError::BodyTimeout { seconds: BODY_READ_TIMEOUT.as_secs() },
        ]
    };
    let path_id = || ApiError::InvalidId("not an id".to_owned());
    let conditions = || ApiError::InvalidHeader("If-Match");
    let nested = || ApiError::Plan(PlanError::NestedObject { id: id(), object_type: ObjectType::PlanService, plan_id: id() });
    let too_large = || ApiError::Plan(PlanError::TooLarge { size: MAX_PLAN_BYTES + 1, limit: MAX_PLAN_BYTES });
    let preconditions = || vec![ApiError::Plan(PlanError::PreconditionFailed), ApiError::Plan(PlanError::PreconditionRequired)];

    let mut failures = match endpoint {
        E::CreatePlan => {
            let mut f = json_body(false);
            f.extend([
                ApiError::Plan(PlanError::Invalid(violations())),
                too_large(),
                ApiError::Plan(PlanError::ForeignOrg("example.org".to_owned())),
                ApiError::Plan(PlanError::PlanExists(id())),
                ApiError::Plan(PlanError::IdTaken(id())),
                ApiError::Plan(PlanError::Contended),
                store_down(),
                store_corrupt(),
            ]);
            f
        }
        E::ListPlans => vec![ApiError::Plan(PlanError::InvalidQuery(violations())), store_down(), store_corrupt()],
        // `/v1/plan/es_data` is the index route: a GET of that "id" is answered by GetIndexData (400).
        E::GetPlan => vec![
            path_id(),
            conditions(),
            ApiError::Plan(PlanError::InvalidQuery(violations())),
            ApiError::Plan(PlanError::NotFound(id())),
            store_down(),
            store_corrupt(),
        ],
        E::PutPlan => {
            let mut f = vec![path_id(), conditions()];
            f.extend(json_body(false));
            f.extend([
                ApiError::Plan(PlanError::Invalid(violations())),
                too_large(),
                ApiError::Plan(PlanError::IdMismatch { path: id(), body: id() }),
                ApiError::Plan(PlanError::NotFound(id())),
                nested(),
                ApiError::Plan(PlanError::ForeignOrg("example.org".to_owned())),
                ApiError::Plan(PlanError::IdTaken(id())),
                ApiError::Plan(PlanError::Contended),
                store_down(),
                store_corrupt(),
            ]);
            f.extend(preconditions());
            f
        }
        E::PatchPlan => {
            let mut f = vec![path_id(), conditions()];
            f.extend(json_body(true));
            f.extend([
                ApiError::Plan(PlanError::InvalidPatch("example".to_owned())),
                ApiError::Plan(PlanError::Invalid(violations())),
                too_large(),
                ApiError::Plan(PlanError::PlanIdChanged { from: id(), to: id() }),
                ApiError::Plan(PlanError::NotFound(id())),
                nested(),
                ApiError::Plan(PlanError::ForeignOrg("example.org".to_owned())),
                ApiError::Plan(PlanError::IdTaken(id())),
                ApiError::Plan(PlanError::PatchConflict("example".to_owned())),
                ApiError::Plan(PlanError::Contended),
                store_down(),
                store_corrupt(),
            ]);
            f.extend(preconditions());
            f
        }
        E::DeletePlan => {
            let mut f = vec![path_id(), conditions(), ApiError::Plan(PlanError::NotFound(id())), nested()];
            f.extend([ApiError::Plan(PlanError::Contended), store_down(), store_corrupt()]);
            f.extend(preconditions());
            f
        }
        // Its 503 is its own report, not a problem: see `success_responses`.
        E::Health => vec![],
        E::GetSchema | E::GetOpenApi => vec![conditions()],
        E::DocsPage => vec![],
        E::DocsAsset => vec![ApiError::Plan(PlanError::NotFound(id()))],
        E::SearchPlans => {
            let mut f = json_body(false);
            f.extend([ApiError::Index(IndexReadError::InvalidSearch(violations())), index_down(), index_corrupt()]);
            f
        }
        E::SearchPlansByQuery => vec![ApiError::Index(IndexReadError::InvalidSearch(violations())), index_down(), index_corrupt()],
        E::GetIndexedPlan => {
            vec![path_id(), ApiError::Index(IndexReadError::NotFound { what: "plan", id: id() }), index_down(), index_corrupt()]
        }
        E::GetIndexData => vec![
            ApiError::Plan(PlanError::InvalidQuery(violations())),
            ApiError::Index(IndexReadError::NotFound { what: "document", id: id() }),
            index_down(),
            index_corrupt(),
        ],
    };
    if let Some(scope) = endpoint.scope() {
        failures.extend([
            ApiError::Auth(AuthError::InvalidToken(TokenRejection::Missing)),
            ApiError::Auth(AuthError::InsufficientScope(scope.as_str().to_owned())),
            ApiError::Auth(AuthError::NoOrganisation("hd".to_owned())),
            ApiError::Auth(AuthError::KeysUnavailable),
            // The authentication layer names a tenant for every request it lets through; a
            // handler reached without one refuses (fail closed).
            ApiError::NoTenant,
        ]);
    }
    failures
}

/// The statuses a route answers with when all goes well (the handlers' own).
pub fn success_statuses(endpoint: Endpoint) -> &'static [u16] {
    use Endpoint as E;
    match endpoint {
        E::CreatePlan => &[201],
        E::GetPlan | E::GetSchema | E::GetOpenApi => &[200, 304],
        E::PutPlan => &[200, 201],
        E::DeletePlan => &[204],
        E::Health => &[200, 503],
        E::ListPlans | E::PatchPlan | E::SearchPlans | E::SearchPlansByQuery | E::GetIndexedPlan | E::GetIndexData => &[200],
        E::DocsPage | E::DocsAsset => &[200],
    }
}

/// Every status of the route: its successes, its failures as the error mapping says, and the
/// 500 that the panic guard (and any internal error) answers on every route.
pub fn statuses(endpoint: Endpoint) -> BTreeSet<u16> {
    let mut statuses: BTreeSet<u16> = success_statuses(endpoint).iter().copied().collect();
    statuses.extend(failures(endpoint).iter().map(|f| f.problem().status.as_u16()));
    // `/v1/plan/es_data` and `/v1/plan/es_plan/...` take precedence over `/v1/plan/{id}`; a write
    // to them is the router's 405 (with Allow).
    if matches!(endpoint, Endpoint::PutPlan | Endpoint::PatchPlan | Endpoint::DeletePlan) {
        statuses.insert(StatusCode::METHOD_NOT_ALLOWED.as_u16());
    }
    statuses.extend(EDGE_STATUSES);
    statuses.insert(StatusCode::INTERNAL_SERVER_ERROR.as_u16());
    statuses
}

/// What the edge answers on every route before the route runs (`middleware::request_limits`):
/// 414 for an overlong request target, 431 for too many or too large headers.
pub const EDGE_STATUSES: [u16; 2] = [414, 431];

fn document() -> Value {
    let mut paths = Map::new();
    for endpoint in Endpoint::ALL {
        let item = paths.entry(endpoint.path()).or_insert_with(|| json!({}));
        item[endpoint.method().as_str().to_ascii_lowercase()] = operation(endpoint);
    }
    let mut schemas = plan_schemas();
    for (name, schema) in api_schemas().as_object().cloned().unwrap_or_default() {
        schemas.insert(name, schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Healthcare plan API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Nested healthcare plans validated by a JSON Schema, stored, versioned, searchable.",
            "description": "Every `/v1` route except health, the schema and this document needs `Authorization: Bearer <JWT>` \
                with the scope named in its security requirement (`plans:read` or `plans:write`). Errors are RFC 9457 \
                problem documents (`application/problem+json`); validation errors list `violations` with JSON pointers \
                into the request. Writes to an existing plan need `If-Match` with its current `ETag` (428 otherwise, \
                unless the deployment relaxes it). Locally, `plan-local token` mints a token.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "servers": [{"url": "/", "description": "This server"}],
        "tags": [
            {"name": "plans", "description": "Plans and their nested objects"},
            {"name": "search", "description": "The search index"},
            {"name": "meta", "description": "Health, the plan schema and this document"},
            {"name": "docs", "description": "This interactive page"}
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT (RS256 or ES256) from the configured issuer; its `scope` claim grants `plans:read` and/or \
                        `plans:write`. Locally: `cargo run -p plan-local -- token`."
                }
            },
            "headers": headers(),
            "parameters": {
                "PlanId": {
                    "name": "id", "in": "path", "required": true,
                    "description": "The objectId of a plan, or of any object nested in one (GET).",
                    "schema": {"$ref": "#/components/schemas/objectId"},
                    "example": "12xvxc345ssdsds-508"
                },
                "IfMatch": {
                    "name": "If-Match", "in": "header", "required": false,
                    "description": "Strong comparison against the plan's current ETag: a comma list of entity-tags, or `*`. \
                        A mismatch is 412; a write to an existing plan without it is 428.",
                    "schema": {"type": "string", "pattern": ENTITY_TAG_LIST}
                },
                "IfNoneMatch": {
                    "name": "If-None-Match", "in": "header", "required": false,
                    "description": "Weak comparison: a match answers 304 (GET); `*` on PUT makes it create-only.",
                    "schema": {"type": "string", "pattern": ENTITY_TAG_LIST}
                },
                "RequestId": {
                    "name": "x-request-id", "in": "header", "required": false,
                    "description": "Your request id (1 to 128 of letters, digits, `-_.:`), echoed back and logged; otherwise one is made.",
                    "schema": {"type": "string"}
                }
            }
        }
    })
}

fn tag(endpoint: Endpoint) -> &'static str {
    use Endpoint as E;
    match endpoint {
        E::CreatePlan | E::ListPlans | E::GetPlan | E::PutPlan | E::PatchPlan | E::DeletePlan => "plans",
        E::SearchPlans | E::SearchPlansByQuery | E::GetIndexedPlan | E::GetIndexData => "search",
        E::Health | E::GetSchema | E::GetOpenApi => "meta",
        E::DocsPage | E::DocsAsset => "docs",
    }
}

fn summary(endpoint: Endpoint) -> &'static str {
    use Endpoint as E;
    match endpoint {
        E::CreatePlan => "Create a plan",
        E::ListPlans => "List plans, newest first",
        E::GetPlan => "Read a plan, or any nested object by its objectId",
        E::PutPlan => "Replace (or create) a whole plan",
        E::PatchPlan => "Change a plan: objectId-aware merge patch or JSON Patch",
        E::DeletePlan => "Delete a plan and everything in it",
        E::Health => "Health of the backends",
        E::GetSchema => "The plan JSON Schema",
        E::SearchPlans => "Search plans (typed request body)",
        E::SearchPlansByQuery => "Search plans (common filters as query parameters)",
        E::GetIndexedPlan => "A plan rebuilt from its index documents",
        E::GetIndexData => "An indexed document, or the indexed children of a parent",
        E::GetOpenApi => "This OpenAPI document",
        E::DocsPage => "This interactive documentation page",
        E::DocsAsset => "A static asset of the documentation page",
    }
}

fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

fn operation(endpoint: Endpoint) -> Value {
    use Endpoint as E;
    let mut op = json!({
        "operationId": operation_id(endpoint),
        "summary": summary(endpoint),
        "tags": [tag(endpoint)],
        "security": match endpoint.scope() {
            Some(scope) => json!([{ SECURITY_SCHEME: [scope.as_str()] }]),
            None => json!([]),
        },
    });
    let mut parameters = vec![reference("parameters", "RequestId")];
    match endpoint {
        E::GetPlan => parameters.extend([reference("parameters", "PlanId"), reference("parameters", "IfNoneMatch")]),
        E::PutPlan => parameters.extend([
            reference("parameters", "PlanId"),
            reference("parameters", "IfMatch"),
            reference("parameters", "IfNoneMatch"),
        ]),
        E::PatchPlan | E::DeletePlan => parameters.extend([reference("parameters", "PlanId"), reference("parameters", "IfMatch")]),
        E::GetSchema | E::GetOpenApi => parameters.push(reference("parameters", "IfNoneMatch")),
        E::ListPlans => parameters.extend([
            json!({"name": "limit", "in": "query", "required": false,
                   "description": format!("Page size, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})."),
                   "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}),
            json!({"name": "cursor", "in": "query", "required": false,
                   "description": "The `nextCursor` of the previous page.", "schema": {"type": "string"}}),
        ]),
        E::SearchPlansByQuery => {
            for (name, description, schema) in [
                ("planType", "Exact planType.", search_text()),
                ("org", "Exact `_org` of the plan.", search_text()),
                ("serviceName", "Every word appears in a linked service's name.", search_text()),
                ("minCopay", "Inclusive lower bound of that plan service's copay.", json!({"type": "number", "minimum": 0})),
                ("maxCopay", "Inclusive upper bound of that plan service's copay.", json!({"type": "number", "minimum": 0})),
                ("text", "Every word appears in some text field of the plan.", search_text()),
                ("size", "Page size, 1 to 100 (default 20).", json!({"type": "integer", "minimum": 1, "maximum": MAX_SIZE})),
                ("cursor", "The `nextCursor` of the previous page.", json!({"type": "string"})),
            ] {
                parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}));
            }
        }
        E::GetIndexedPlan => parameters.push(json!({
            "name": "planId", "in": "path", "required": true, "description": "The plan's objectId.",
            "schema": {"$ref": "#/components/schemas/objectId"}, "example": "12xvxc345ssdsds-508"
        })),
        E::GetIndexData => parameters.extend([
            json!({"name": "id", "in": "query", "required": true, "description": "The objectId of the indexed object.",
                   "schema": {"$ref": "#/components/schemas/objectId"}, "example": "12xvxc345ssdsds-508"}),
            json!({"name": "parent_type", "in": "query", "required": false,
                   "description": "List the indexed children of `id` instead, through this relation.",
                   "schema": {"enum": ["plan", "linkedPlanServices"]}}),
        ]),
        E::DocsAsset => parameters.push(json!({
            "name": "asset", "in": "path", "required": true, "description": "The file name of the asset.",
            "schema": {"type": "string"}, "example": "swagger-ui.css"
        })),
        E::CreatePlan | E::Health | E::SearchPlans | E::DocsPage => {}
    }
    op["parameters"] = Value::Array(parameters);
    if let Some(body) = request_body(endpoint) {
        op["requestBody"] = body;
    }
    let mut responses = success_responses(endpoint);
    for status in statuses(endpoint) {
        let key = status.to_string();
        if responses.get(&key).is_none() {
            responses.insert(key, problem_response(endpoint, status));
        }
    }
    op["responses"] = Value::Object(responses);
    op
}

/// A text filter of a search: non-empty, bounded.
fn search_text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS})
}

fn request_body(endpoint: Endpoint) -> Option<Value> {
    let plan_example: Value = serde_json::from_str(EXAMPLE_PLAN).unwrap_or(Value::Null);
    match endpoint {
        Endpoint::CreatePlan | Endpoint::PutPlan => Some(json!({
            "required": true,
            "description": "A whole plan, valid against the plan JSON Schema (`GET /v1/schema/plan`); on PUT its objectId is the path's.",
            "content": {"application/json": {
                "schema": reference("schemas", "Plan"),
                "examples": {"samplePlan": {"summary": "examples/plan.json", "value": plan_example}}
            }}
        })),
        Endpoint::PatchPlan => Some(json!({
            "required": true,
            "description": "A merge patch (RFC 7396, objectId-aware: objects and array items with a known objectId merge, new \
                ones are appended, `null` removes an optional field) or a JSON Patch (RFC 6902, all or nothing). The result \
                must be a valid plan; nothing is written otherwise.",
            "content": {
                "application/merge-patch+json": {
                    "schema": reference("schemas", "MergePatch"),
                    "examples": {"changeCopay": {"summary": "Change the plan's copay", "value": {"planCostShares": {"copay": 30}}}}
                },
                "application/json-patch+json": {
                    "schema": reference("schemas", "JsonPatch"),
                    "examples": {"removeService": {"summary": "Remove the second linked plan service",
                                                   "value": [{"op": "remove", "path": "/linkedPlanServices/1"}]}}
                },
                "application/json": {"schema": reference("schemas", "MergePatch")}
            }
        })),
        Endpoint::SearchPlans => Some(json!({
            "required": true,
            "content": {"application/json": {
                "schema": reference("schemas", "SearchRequest"),
                "examples": {"physical": {"summary": "Plans with a service named \"physical\" whose copay is at most 20",
                                          "value": {"service": {"name": "physical", "copay": {"lte": 20}}}}}
            }}
        })),
        _ => None,
    }
}

/// Headers every response may carry, named once in `components.headers`.
fn headers() -> Value {
    json!({
        "RequestId": {"description": "The request id: yours when sane, else API Gateway's, else a fresh UUID.",
                      "required": true, "schema": {"type": "string"}},
        "ETag": {"description": "Strong entity-tag of the representation (128 bits of its SHA-256).",
                 "required": true, "schema": {"type": "string", "pattern": "^\"[0-9a-f]{32}\"$"}},
        "Location": {"description": "The created plan's URL.", "required": true, "schema": {"type": "string"}},
        "PlanVersion": {"description": "The plan's version: every committed change gets the next one.",
                        "required": true, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        "IndexComplete": {"description": "`false` when some of the plan's documents are missing from the index.",
                          "required": true, "schema": {"enum": ["true", "false"]}},
        "RetryAfter": {"description": "Seconds to wait before retrying.", "required": true, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        "WWWAuthenticate": {"description": "RFC 6750 challenge: `invalid_token` (401) or `insufficient_scope` with the scope needed (403).",
                            "required": true, "schema": {"type": "string"}},
        "Allow": {"description": "The methods this path supports.", "required": true, "schema": {"type": "string"}},
        "ConnectionClose": {"description": "The server closes the connection after this answer.",
                            "required": false, "schema": {"const": "close"}},
        "AcceptPatch": {"description": "The patch media types PATCH accepts.", "required": true, "schema": {"type": "string"}},
        "ContentSecurityPolicy": {"description": "The page's strict policy: nothing but this origin.",
                                  "required": true, "schema": {"type": "string"}}
    })
}

fn header_refs(names: &[(&str, &str)]) -> Value {
    Value::Object(names.iter().map(|(name, component)| ((*name).to_owned(), reference("headers", component))).collect())
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn success_responses(endpoint: Endpoint) -> Map<String, Value> {
    use Endpoint as E;
    let plan_headers = |created: bool| {
        let mut h = vec![("x-request-id", "RequestId"), ("ETag", "ETag"), ("x-plan-version", "PlanVersion")];
        if created {
            h.push(("Location", "Location"));
        }
        header_refs(&h)
    };
    let not_modified = json!({"description": "Not modified: the representation still has this ETag.",
                              "headers": header_refs(&[("x-request-id", "RequestId"), ("ETag", "ETag")])});
    let only_id = header_refs(&[("x-request-id", "RequestId")]);
    let plan_links = || {
        let id = json!("$response.body#/objectId");
        let etag = json!("$response.header.ETag");
        json!({
            "GetPlan": {"operationId": "getPlan", "parameters": {"id": id},
                        "description": "Read the plan just written."},
            "PutPlan": {"operationId": "putPlan", "parameters": {"id": id, "header.If-Match": etag}, "requestBody": "$response.body",
                        "description": "Replace the plan, conditional on this ETag."},
            "PatchPlan": {"operationId": "patchPlan", "parameters": {"id": id, "header.If-Match": etag},
                          "description": "Patch the plan, conditional on this ETag."},
            "DeletePlan": {"operationId": "deletePlan", "parameters": {"id": id, "header.If-Match": etag},
                           "description": "Delete the plan, conditional on this ETag."}
        })
    };
    let mut responses = Map::new();
    let mut add = |status: u16, response: Value| {
        responses.insert(status.to_string(), response);
    };
    match endpoint {
        E::CreatePlan => add(
            201,
            json!({
                "description": "Created: the stored plan.",
                "headers": plan_headers(true), "content": json_content(reference("schemas", "Plan")), "links": plan_links()
            }),
        ),
        E::ListPlans => add(
            200,
            json!({"description": "One page of plans.", "headers": only_id,
                                        "content": json_content(reference("schemas", "PlanPage"))}),
        ),
        E::GetPlan => {
            add(
                200,
                json!({"description": "The plan, or the nested object with its subtree.", "headers": plan_headers(false),
                            "content": json_content(reference("schemas", "PlanObject"))}),
            );
            add(304, not_modified);
        }
        E::PutPlan => {
            add(
                200,
                json!({"description": "Replaced (or unchanged: same ETag and version).", "headers": plan_headers(false),
                            "content": json_content(reference("schemas", "Plan")), "links": plan_links()}),
            );
            add(
                201,
                json!({"description": "Created.", "headers": plan_headers(true),
                            "content": json_content(reference("schemas", "Plan")), "links": plan_links()}),
            );
        }
        E::PatchPlan => add(
            200,
            json!({"description": "Patched: the whole plan.", "headers": plan_headers(false),
                                        "content": json_content(reference("schemas", "Plan")), "links": plan_links()}),
        ),
        E::DeletePlan => add(
            204,
            json!({"description": "Deleted, with every nested object; `x-plan-version` is the deletion's version.",
                   "headers": header_refs(&[("x-request-id", "RequestId"), ("x-plan-version", "PlanVersion")])}),
        ),
        E::Health => {
            add(
                200,
                json!({"description": "Every backend answers.", "headers": only_id,
                            "content": json_content(reference("schemas", "Health"))}),
            );
            add(
                503,
                json!({"description": "A backend is down (the report says which).", "headers": only_id,
                            "content": json_content(reference("schemas", "Health"))}),
            );
        }
        E::GetSchema => {
            add(
                200,
                json!({"description": "The plan JSON Schema (draft 2020-12).",
                            "headers": header_refs(&[("x-request-id", "RequestId"), ("ETag", "ETag")]),
                            "content": {"application/schema+json": {"schema": {"type": "object"}}}}),
            );
            add(304, not_modified);
        }
        E::GetOpenApi => {
            add(
                200,
                json!({"description": "This document.",
                            "headers": header_refs(&[("x-request-id", "RequestId"), ("ETag", "ETag")]),
                            "content": json_content(json!({"type": "object", "required": ["openapi", "paths"]}))}),
            );
            add(304, not_modified);
        }
        E::SearchPlans | E::SearchPlansByQuery => add(
            200,
            json!({"description": "One page of matching plans.", "headers": only_id,
                                                                  "content": json_content(reference("schemas", "SearchPage"))}),
        ),
        E::GetIndexedPlan => add(
            200,
            json!({
                "description": "The plan rebuilt from its index documents; when the index is faithful, the same bytes and ETag as GET /v1/plan/{id}.",
                "headers": header_refs(&[("x-request-id", "RequestId"), ("ETag", "ETag"), ("x-plan-version", "PlanVersion"),
                                         ("x-index-complete", "IndexComplete")]),
                "content": json_content(reference("schemas", "Plan"))
            }),
        ),
        E::GetIndexData => add(
            200,
            json!({"description": "The indexed document, or the parent's indexed children.", "headers": only_id,
                                           "content": json_content(reference("schemas", "IndexData"))}),
        ),
        E::DocsPage => add(
            200,
            json!({
                "description": "The Swagger UI page for this document.",
                "headers": header_refs(&[("x-request-id", "RequestId"), ("Content-Security-Policy", "ContentSecurityPolicy")]),
                "content": {"text/html": {"schema": {"type": "string"}}}
            }),
        ),
        E::DocsAsset => add(
            200,
            json!({
                "description": "The asset, served from the binary.",
                "headers": header_refs(&[("x-request-id", "RequestId"), ("ETag", "ETag")]),
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                    "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
                    "text/plain": {"schema": {"type": "string"}}
                }
            }),
        ),
    }
    responses
}

fn problem_response(endpoint: Endpoint, status: u16) -> Value {
    let description = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let mut headers = vec![("x-request-id", "RequestId")];
    match status {
        401 => headers.push(("WWW-Authenticate", "WWWAuthenticate")),
        405 => headers.push(("Allow", "Allow")),
        408 => headers.push(("Connection", "ConnectionClose")),
        415 if endpoint == Endpoint::PatchPlan => headers.push(("Accept-Patch", "AcceptPatch")),
        503 => headers.push(("Retry-After", "RetryAfter")),
        _ => {}
    }
    let mut headers = header_refs(&headers);
    if status == 403 && endpoint.scope().is_some() {
        // insufficient_scope carries a challenge; a missing organisation or a foreign plan does not.
        headers["WWW-Authenticate"] = json!({"description": "`insufficient_scope` with the scope needed, when that is the reason.",
                                             "required": false, "schema": {"type": "string"}});
    }
    let slugs: BTreeSet<String> =
        failures(endpoint).iter().map(ApiError::problem).filter(|p| p.status.as_u16() == status).map(|p| format!("`{}`", p.slug)).collect();
    let description = if slugs.is_empty() {
        description.to_owned()
    } else {
        format!("{description}: {}", slugs.into_iter().collect::<Vec<_>>().join(", "))
    };
    json!({
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {"schema": reference("schemas", "Problem")}}
    })
}

/// The plan JSON Schema as components: each `$defs` entry becomes `components.schemas.<name>`,
/// the root becomes `Plan`, and every `#/$defs/` reference points at its component.
fn plan_schemas() -> Map<String, Value> {
    let mut root: Value = serde_json::from_str(plan::PLAN_SCHEMA).expect("the bundled plan schema is JSON");
    rewrite_refs(&mut root);
    let mut schemas = Map::new();
    if let Some(object) = root.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            schemas.extend(defs);
        }
    }
    schemas.insert("Plan".to_owned(), root);
    schemas.insert(
        "PlanObject".to_owned(),
        json!({
            "description": "A plan, or an object nested in one with its subtree.",
            "anyOf": (["plan", "planservice", "membercostshare", "service"].map(|n| reference("schemas", n)))
        }),
    );
    schemas
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if key == "$ref"
                    && let Some(target) = inner.as_str().and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    *inner = Value::String(format!("#/components/schemas/{target}"));
                } else {
                    rewrite_refs(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// The API's own bodies: problems, pages, health, search requests and patches.
fn api_schemas() -> Value {
    // At least one bound, at most one per side.
    let one_per_side = json!({"anyOf": [{"required": ["gt", "gte"]}, {"required": ["lt", "lte"]}]});
    let range = json!({
        "type": "object", "additionalProperties": false, "minProperties": 1, "not": one_per_side,
        "properties": {"gt": {"type": "number"}, "gte": {"type": "number"}, "lt": {"type": "number"}, "lte": {"type": "number"}}
    });
    let date_range = json!({
        "type": "object", "additionalProperties": false, "minProperties": 1, "not": one_per_side,
        "properties": {"gt": {"$ref": "#/components/schemas/creationDate"}, "gte": {"$ref": "#/components/schemas/creationDate"},
                       "lt": {"$ref": "#/components/schemas/creationDate"}, "lte": {"$ref": "#/components/schemas/creationDate"}}
    });
    json!({
        "Problem": {
            "description": "RFC 9457 problem document.",
            "type": "object",
            "required": ["type", "title", "status", "detail", "instance", "requestId"],
            "properties": {
                "type": {"type": "string", "format": "uri", "description": "https://healthplan.dev/problems/<slug> (an identifier, not a page)."},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string", "description": "The request path."},
                "requestId": {"type": "string"},
                "violations": {"type": "array", "items": {"$ref": "#/components/schemas/Violation"},
                               "description": "The first 100 violations, in the order found."},
                "violationCount": {"type": "integer", "minimum": 1, "description": "How many violations there were in all."}
            }
        },
        "Violation": {
            "type": "object",
            "required": ["pointer", "message"],
            "properties": {
                "pointer": {"type": "string", "description": "JSON pointer (RFC 6901) into your document; empty for the root."},
                "message": {"type": "string"}
            }
        },
        "PlanPage": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Plan"}},
                "nextCursor": {"type": "string", "description": "Absent on the last page."}
            }
        },
        "SearchPage": {
            "type": "object",
            "required": ["total", "hits"],
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "hits": {"type": "array", "items": {
                    "type": "object", "required": ["plan", "matchedServices"],
                    "properties": {
                        "plan": {"$ref": "#/components/schemas/Plan"},
                        "matchedServices": {"type": "array", "items": {"$ref": "#/components/schemas/objectId"}}
                    }
                }},
                "nextCursor": {"type": "string"}
            }
        },
        "SearchRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "planType": search_text(),
                "org": search_text(),
                "creationDate": date_range,
                "planCostShares": {"type": "object", "additionalProperties": false,
                                   "properties": {"deductible": range, "copay": range}},
                "service": {"type": "object", "additionalProperties": false,
                            "properties": {"name": search_text(), "copay": range, "deductible": range}},
                "text": search_text(),
                "size": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
                "cursor": {"type": ["string", "null"], "description": "The `nextCursor` of the previous page; null means none."}
            }
        },
        "IndexData": {
            "description": "One indexed document (`_id`, `_routing`, `_version`, `_source`), or with `parent_type` the parent's children.",
            "type": "object"
        },
        "Health": {
            "type": "object",
            "required": ["status", "backends"],
            "properties": {
                "status": {"enum": ["ok", "unavailable"]},
                "backends": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["status", "latencyMs"],
                    "properties": {"status": {"enum": ["up", "down"]}, "latencyMs": {"type": "number"}}
                }}
            }
        },
        "MergePatch": {
            "description": "RFC 7396 merge patch, objectId-aware.",
            "type": "object"
        },
        "JsonPatch": {
            "description": "RFC 6902 JSON Patch.",
            "type": "array",
            "items": {
                "type": "object",
                "required": ["op", "path"],
                "properties": {
                    "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                    "path": {"type": "string"},
                    "from": {"type": "string"},
                    "value": {}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    fn operation_of(endpoint: Endpoint) -> &'static Value {
        let method = endpoint.method().as_str().to_ascii_lowercase();
        DOCUMENT["paths"][endpoint.path()].get(&method).unwrap_or_else(|| panic!("{endpoint:?}: no {method} {}", endpoint.path()))
    }

    #[test]
    fn every_endpoint_is_one_operation_and_every_operation_an_endpoint() {
        let mut documented = BTreeSet::new();
        for (path, item) in DOCUMENT["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
        let routed: BTreeSet<String> = Endpoint::ALL.iter().map(|e| format!("{} {}", e.method(), e.path())).collect();
        assert_eq!(documented, routed, "the document's operations (left) differ from Endpoint::ALL (right)");
        let ids: BTreeSet<String> = Endpoint::ALL.iter().map(|e| operation_id(*e)).collect();
        assert_eq!(ids.len(), Endpoint::ALL.len(), "operationIds are unique");
    }

    #[test]
    fn every_operation_asks_for_exactly_the_scope_the_route_enforces() {
        for endpoint in Endpoint::ALL {
            let security = &operation_of(endpoint)["security"];
            match endpoint.scope() {
                Some(scope) => assert_eq!(security, &json!([{SECURITY_SCHEME: [scope.as_str()]}]), "{endpoint:?}"),
                None => assert_eq!(security, &json!([]), "{endpoint:?} is public"),
            }
        }
        for scope in Scope::ALL {
            assert!(Endpoint::ALL.iter().any(|e| e.scope() == Some(scope)), "{scope} is used by some route");
        }
    }

    #[test]
    fn every_status_the_error_mapping_produces_for_a_route_is_documented_with_its_headers() {
        for endpoint in Endpoint::ALL {
            let responses = operation_of(endpoint)["responses"].as_object().unwrap();
            for failure in failures(endpoint) {
                let problem = failure.problem();
                let status = problem.status.as_u16().to_string();
                let response = responses.get(&status).unwrap_or_else(|| panic!("{endpoint:?}: {status} ({}) undocumented", problem.slug));
                assert!(response["content"].get("application/problem+json").is_some(), "{endpoint:?} {status}: a problem document");
                for (name, _) in &problem.headers {
                    let documented = response["headers"].as_object().unwrap().keys().any(|h| h.eq_ignore_ascii_case(name.as_str()));
                    assert!(documented, "{endpoint:?} {status} ({}): header {name} undocumented", problem.slug);
                }
            }
            let documented: BTreeSet<u16> = responses.keys().map(|k| k.parse().unwrap()).collect();
            assert_eq!(documented, statuses(endpoint), "{endpoint:?}: documented statuses");
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, refs: &mut Vec<String>) {
            match value {
                Value::Object(o) => {
                    for (k, v) in o {
                        match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => refs.push(r.clone()),
                            _ => walk(v, refs),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        walk(&DOCUMENT, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local references"));
            assert!(DOCUMENT.pointer(pointer).is_some(), "{r} resolves");
        }
    }

    #[test]
    fn the_request_schema_is_the_plan_schema_and_accepts_the_example() {
        let schema: Value = serde_json::from_str(plan::PLAN_SCHEMA).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        for name in defs.keys() {
            assert!(DOCUMENT["components"]["schemas"].get(name).is_some(), "$defs/{name} is a component");
        }
        let example = &operation_of(Endpoint::CreatePlan)["requestBody"]["content"]["application/json"]["examples"]["samplePlan"]["value"];
        let plan: Value = serde_json::from_str(EXAMPLE_PLAN).unwrap();
        assert_eq!(example, &plan);
        assert!(plan::validate::parse_plan(plan.clone()).is_ok(), "the example is a valid plan");
    }

    #[test]
    fn a_created_plan_links_to_every_operation_on_its_id() {
        let links = &operation_of(Endpoint::CreatePlan)["responses"]["201"]["links"];
        let targets: BTreeSet<&str> = links.as_object().unwrap().values().map(|l| l["operationId"].as_str().unwrap()).collect();
        let expected: BTreeSet<String> =
            [Endpoint::GetPlan, Endpoint::PutPlan, Endpoint::PatchPlan, Endpoint::DeletePlan].map(operation_id).into_iter().collect();
        assert_eq!(targets, expected.iter().map(String::as_str).collect());
    }
}
