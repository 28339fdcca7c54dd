//! The search endpoints over HTTP: POST and GET /v1/search, GET /v1/plan/es_plan/{planId} and
//! GET /v1/plan/es_data, on the embedded index and on OpenSearch (osmem-server), with the index
//! filled the way the indexer fills it.

use std::sync::Arc;

use plan::WritePolicy;
use plan_e2e::app::{TestApp, expect_problem, header, spawn_app, test_auth};
use plan_e2e::index::{Backend, Spec, plan_json, plan_of, upsert};
use plan_e2e::{tag, unique_plan};
use plan_index::PlanIndex;
use plan_wiring::Backends;
use reqwest::Method;
use serde_json::{Value, json};

/// The API with `backend`'s index, and plans created through the API and indexed at the
/// versions the API gave them.
struct World {
    app: TestApp,
    index: Arc<dyn PlanIndex>,
    backend: Backend,
}

impl World {
    async fn new(backend: Backend) -> Self {
        let index = backend.index.clone();
        let app = spawn_app(Backends::embedded(WritePolicy::default()).with_index(index.clone()).with_auth(test_auth(None))).await;
        Self { app, index, backend }
    }

    /// Creates a plan through the API and indexes what was stored; returns the stored body.
    async fn create_and_index(&self, document: &Value) -> Value {
        let response = self.app.create(document).await;
        assert_eq!(response.status(), 201, "create");
        let version: u64 = header(&response, "x-plan-version").parse().unwrap();
        let stored: Value = response.json().await.unwrap();
        self.index.apply(&[upsert(&plan_of(stored.clone()), version)]).await.unwrap();
        stored
    }

    async fn post_search(&self, body: &Value) -> reqwest::Response {
        self.app.request(Method::POST, "/v1/search").json(body).send().await.unwrap()
    }

    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.app.request(Method::GET, path_and_query).send().await.unwrap()
    }
}

fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"].as_array().unwrap().iter().map(|h| h["plan"]["objectId"].as_str().unwrap().to_owned()).collect()
}

mod cases {
    use super::*;

    pub async fn post_search_pages_with_a_cursor(world: &World) {
        let t = tag();
        let sample = world.create_and_index(&unique_plan(&t)).await;
        let therapy = world
            .create_and_index(&plan_json(
                &format!("pt-{t}"),
                &Spec { date: "2019-05-01", services: &[("Physical therapy", 0.0, 15.0)], ..Spec::default() },
            ))
            .await;
        let pricey = world
            .create_and_index(&plan_json(
                &format!("pricey-{t}"),
                &Spec { date: "2018-01-01", services: &[("physical", 0.0, 150.0)], ..Spec::default() },
            ))
            .await;
        let response = world.post_search(&json!({"service": {"name": "physical", "copay": {"lte": 20}}, "size": 1})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "application/json");
        let first: Value = response.json().await.unwrap();
        assert_eq!(first["total"], 2);
        assert_eq!(first["hits"][0]["plan"], therapy, "the hit carries the plan as stored");
        assert_eq!(first["hits"][0]["matchedServices"], json!([therapy["linkedPlanServices"][0]["objectId"]]));
        let cursor = first["nextCursor"].as_str().unwrap();
        let second: Value = world
            .post_search(&json!({"service": {"name": "physical", "copay": {"lte": 20}}, "size": 1, "cursor": cursor}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(hit_ids(&second), [sample["objectId"].as_str().unwrap()]);
        assert!(second.get("nextCursor").is_none(), "the last page has no cursor: {second}");
        // The common sample plan's "physical" costs 0 and its other service 175: no match.
        let body: Value = world.post_search(&json!({"service": {"name": "physical", "copay": {"gte": 100}}})).await.json().await.unwrap();
        assert_eq!(hit_ids(&body), [pricey["objectId"].as_str().unwrap()]);
        let body: Value = world.post_search(&json!({})).await.json().await.unwrap();
        assert_eq!(body["total"], 3);
        assert!(body["hits"].as_array().unwrap().iter().all(|h| h["matchedServices"] == json!([])));
    }

    pub async fn get_search_takes_the_common_filters_as_parameters(world: &World) {
        let t = tag();
        world.create_and_index(&unique_plan(&t)).await;
        let cheap = world
            .create_and_index(&plan_json(
                &format!("cheap-{t}"),
                &Spec { plan_type: "outOfNetwork", services: &[("Physical therapy", 0.0, 15.0)], ..Spec::default() },
            ))
            .await;
        let body: Value = world.get("/v1/search?serviceName=Physical&maxCopay=20&planType=outOfNetwork").await.json().await.unwrap();
        assert_eq!(hit_ids(&body), [cheap["objectId"].as_str().unwrap()]);
        let body: Value = world.get("/v1/search?text=well%20baby&org=example.com").await.json().await.unwrap();
        assert_eq!(body["total"], 1);
        let body: Value = world.get("/v1/search?minCopay=100").await.json().await.unwrap();
        assert_eq!(body["total"], 1, "minCopay is on a linked plan service");
        let first: Value = world.get("/v1/search?size=1").await.json().await.unwrap();
        let cursor = first["nextCursor"].as_str().unwrap();
        let second: Value = world.get(&format!("/v1/search?size=1&cursor={cursor}")).await.json().await.unwrap();
        assert_eq!(first["total"], 2);
        assert_ne!(hit_ids(&first), hit_ids(&second));
    }

    pub async fn bad_searches_are_problems_with_pointers(world: &World) {
        let problem = expect_problem(
            world.post_search(&json!({"colour": 1, "service": {"copay": {"gte": 9, "lte": 1}}, "size": 0})).await,
            400,
            "invalid-search",
        )
        .await;
        let mut pointers: Vec<&str> = problem["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/colour", "/service/copay", "/size"]);
        expect_problem(world.post_search(&json!({"cursor": "bm90LWEtY3Vyc29y"})).await, 400, "invalid-search").await;
        expect_problem(world.post_search(&json!({"creationDate": {"gte": "2017-02-30"}})).await, 400, "invalid-search").await;
        let problem = expect_problem(world.get("/v1/search?serviceName=x&colour=red&minCopay=cheap").await, 400, "invalid-search").await;
        assert_eq!(problem["violations"].as_array().unwrap().len(), 2, "{problem}");
        let response = world.app.request(Method::POST, "/v1/search").header("content-type", "text/plain").body("{}").send().await.unwrap();
        expect_problem(response, 415, "unsupported-media-type").await;
        let response =
            world.app.request(Method::POST, "/v1/search").header("content-type", "application/json").body("{").send().await.unwrap();
        expect_problem(response, 400, "malformed-json").await;
        let response = world.app.request(Method::PUT, "/v1/search").send().await.unwrap();
        let allow = header(&response, "allow");
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        expect_problem(response, 405, "method-not-allowed").await;
    }

    pub async fn es_plan_rebuilds_the_stored_plan_from_the_index(world: &World) {
        let stored = world.create_and_index(&unique_plan(&tag())).await;
        let id = stored["objectId"].as_str().unwrap();
        let stored_etag = world.app.etag(id).await;
        let response = world.get(&format!("/v1/plan/es_plan/{id}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "etag"), stored_etag, "same bytes as the stored plan, so the same ETag");
        assert_eq!(header(&response, "x-plan-version"), "1");
        assert_eq!(header(&response, "x-index-complete"), "true");
        assert_eq!(response.json::<Value>().await.unwrap(), stored);
        expect_problem(world.get("/v1/plan/es_plan/not-indexed").await, 404, "not-found").await;
        expect_problem(world.get("/v1/plan/es_plan/bad%20id").await, 400, "invalid-id").await;
    }

    pub async fn es_data_shows_documents_and_children(world: &World) {
        let stored = world.create_and_index(&unique_plan(&tag())).await;
        let plan_id = stored["objectId"].as_str().unwrap();
        let service = &stored["linkedPlanServices"][1];
        let share_id = service["planserviceCostShares"]["objectId"].as_str().unwrap();
        let response = world.get(&format!("/v1/plan/es_data?id={share_id}")).await;
        assert_eq!(response.status(), 200);
        let doc: Value = response.json().await.unwrap();
        let service_doc = format!("{plan_id}:{}", service["objectId"].as_str().unwrap());
        assert_eq!(doc["_id"], format!("{plan_id}:{share_id}"));
        assert_eq!(doc["_routing"], plan_id);
        assert_eq!(doc["_version"], 1);
        assert_eq!(doc["_source"]["relation"], json!({"name": "planserviceCostShares", "parent": service_doc}));
        assert_eq!(doc["_source"]["copay"], 175);
        let children: Value = world.get(&format!("/v1/plan/es_data?id={plan_id}&parent_type=plan")).await.json().await.unwrap();
        let ids: Vec<&str> = children["children"].as_array().unwrap().iter().map(|c| c["_source"]["objectId"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [&stored["planCostShares"]["objectId"], &stored["linkedPlanServices"][0]["objectId"], &service["objectId"]]
                .map(|v| v.as_str().unwrap())
        );
        assert_eq!((children["parentId"].clone(), children["parentType"].clone()), (json!(plan_id), json!("plan")));
        let grandchildren: Value = world
            .get(&format!("/v1/plan/es_data?id={}&parent_type=linkedPlanServices", service["objectId"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(grandchildren["children"].as_array().unwrap().len(), 2);
        expect_problem(world.get(&format!("/v1/plan/es_data?id={plan_id}&parent_type=linkedPlanServices")).await, 404, "not-found").await;
        expect_problem(world.get("/v1/plan/es_data?id=nothing-here").await, 404, "not-found").await;
        expect_problem(world.get("/v1/plan/es_data").await, 400, "invalid-query").await;
        expect_problem(world.get("/v1/plan/es_data?id=a&parent_type=service").await, 400, "invalid-query").await;
        expect_problem(world.get("/v1/plan/es_data?id=a&colour=red").await, 400, "invalid-query").await;
        expect_problem(world.get("/v1/plan/es_data?id=a%20b").await, 400, "invalid-query").await;
    }

    pub async fn static_segments_win_over_the_plan_id(world: &World) {
        // es_data is its own route: without an id it is a bad query, not a missing plan.
        expect_problem(world.get("/v1/plan/es_data").await, 400, "invalid-query").await;
        let response = world.app.request(Method::DELETE, "/v1/plan/es_data").send().await.unwrap();
        assert_eq!(header(&response, "allow"), "GET,HEAD");
        expect_problem(response, 405, "method-not-allowed").await;
        // es_plan alone is not a route of its own: it is read as a plan id.
        let problem = expect_problem(world.get("/v1/plan/es_plan").await, 404, "not-found").await;
        assert!(problem["detail"].as_str().unwrap().contains("es_plan"), "{problem}");
        expect_problem(world.get("/v1/plan/es_plan/a/b").await, 404, "route-not-found").await;
    }

    pub async fn searches_are_confined_to_the_callers_org(world: &World) {
        let t = tag();
        world.create_and_index(&unique_plan(&t)).await;
        let mut other = plan_json(&format!("other-{t}"), &Spec::default());
        plan_e2e::set_org(&mut other, "other.org");
        let other = world.create_and_index(&other).await;
        // Tenant isolation on the `hd` claim: a token of other.org sees only other.org's plans.
        let app =
            plan_wiring::app(&Backends::embedded(WritePolicy::default()).with_index(world.index.clone()).with_auth(test_auth(Some("hd"))));
        let bearer = format!("Bearer {}", plan_e2e::app::token("plans:read", Some("other.org")));
        let call = |uri: String, body: Option<Value>| {
            let (app, bearer) = (app.clone(), bearer.clone());
            async move {
                use tower::ServiceExt;
                let method = if body.is_some() { "POST" } else { "GET" };
                let request = axum::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("content-type", "application/json")
                    .header("authorization", bearer.as_str());
                let request = request.body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default())).unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
            }
        };
        let (status, body) = call("/v1/search".into(), Some(json!({}))).await;
        assert_eq!((status, hit_ids(&body)), (200, vec![other["objectId"].as_str().unwrap().to_owned()]));
        let (_, body) = call("/v1/search?org=example.com".into(), None).await;
        assert_eq!(body["total"], 0);
        let sample_id = format!("12xvxc345ssdsds-508-{t}");
        assert_eq!(call(format!("/v1/plan/es_plan/{sample_id}"), None).await.0, 404);
        assert_eq!(call(format!("/v1/plan/es_data?id={sample_id}"), None).await.0, 404);
        assert_eq!(call(format!("/v1/plan/es_data?id={sample_id}&parent_type=plan"), None).await.0, 404);
        assert_eq!(call(format!("/v1/plan/es_plan/{}", other["objectId"].as_str().unwrap()), None).await.0, 200);
    }

    pub async fn health_reports_the_index(world: &World) {
        let body: Value = world.get("/v1/health").await.json().await.unwrap();
        let backends = body["backends"].as_object().unwrap();
        assert!(backends.keys().any(|k| k == "embedded-index" || k == "opensearch"), "{body}");
        assert_eq!(body["status"], "ok");
    }
}

macro_rules! search_cases {
    ($backend:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(backend) = $make else { return };
                    let world = World::new(backend).await;
                    cases::$case(&world).await;
                    world.backend.tear_down().await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $make:expr) => {
        search_cases!(
            $backend,
            $make,
            [
                post_search_pages_with_a_cursor,
                get_search_takes_the_common_filters_as_parameters,
                bad_searches_are_problems_with_pointers,
                es_plan_rebuilds_the_stored_plan_from_the_index,
                es_data_shows_documents_and_children,
                static_segments_win_over_the_plan_id,
                searches_are_confined_to_the_callers_org,
                health_reports_the_index,
            ]
        );
    };
}

all_cases!(embedded, Backend::embedded());
all_cases!(opensearch_osmem, Backend::osmem());

#[tokio::test]
async fn an_unreachable_index_is_a_503_problem() {
    let mut config = plan_index::OpenSearchConfig::for_tests("http://127.0.0.1:9", &plan_e2e::index::test_alias());
    config.timeout = std::time::Duration::from_millis(500);
    let index = Arc::new(plan_index::OpenSearchIndex::new(&config).unwrap());
    let app = spawn_app(Backends::embedded(WritePolicy::default()).with_index(index).with_auth(test_auth(None))).await;
    let response = app.request(Method::POST, "/v1/search").json(&json!({"text": "physical"})).send().await.unwrap();
    assert_eq!(header(&response, "retry-after"), "1");
    expect_problem(response, 503, "index-unavailable").await;
    let health = app.request(Method::GET, "/v1/health").send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["backends"]["opensearch"]["status"], "down");
}
