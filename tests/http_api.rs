//! The API end to end over a real socket, on the embedded store and on Redis.

use plan::WritePolicy;
use plan_e2e::app::{TestApp, expect_problem, header, spawn_embedded, spawn_on};
use plan_e2e::{plan_service, redis_store, sample_plan, tag, unique_plan};
use reqwest::Method;
use serde_json::{Value, json};

/// Sets `_org` on every object in `value`.
fn set_org(value: &mut Value, org: &str) {
    match value {
        Value::Object(map) => {
            if map.contains_key("_org") {
                map.insert("_org".to_owned(), json!(org));
            }
            map.values_mut().for_each(|v| set_org(v, org));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| set_org(v, org)),
        _ => {}
    }
}

fn id_of(plan: &Value) -> String {
    plan["objectId"].as_str().unwrap().to_owned()
}

mod cases {
    use super::*;

    pub async fn create_answers_201_with_location_etag_and_the_stored_plan(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let response = app.create(&plan).await;
        assert_eq!(response.status(), 201);
        assert_eq!(header(&response, "location"), format!("/v1/plan/{id}"));
        let etag = header(&response, "etag");
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "strong quoted ETag: {etag}");
        assert_eq!(header(&response, "x-plan-version"), "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, plan, "the stored plan is the submitted one");
        let read = app.get(&id).await;
        assert_eq!(header(&read, "etag"), etag);
        assert_eq!(read.json::<Value>().await.unwrap(), plan);
    }

    pub async fn create_refuses_bad_input_and_changes_nothing(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let malformed =
            app.request(Method::POST, "/v1/plan").header("content-type", "application/json").body("{\"objectId\": ").send().await.unwrap();
        expect_problem(malformed, 400, "malformed-json").await;
        let text = app.request(Method::POST, "/v1/plan").header("content-type", "text/plain").body(plan.to_string()).send().await.unwrap();
        expect_problem(text, 415, "unsupported-media-type").await;
        let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024));
        let too_large = app.request(Method::POST, "/v1/plan").header("content-type", "application/json").body(big).send().await.unwrap();
        expect_problem(too_large, 413, "payload-too-large").await;

        let mut invalid = plan.clone();
        invalid["planCostShares"]["copay"] = json!(-5);
        invalid.as_object_mut().unwrap().remove("planType");
        invalid["linkedPlanServices"][0]["objectType"] = json!("service");
        let problem = expect_problem(app.create(&invalid).await, 400, "validation-failed").await;
        let pointers: Vec<&str> = problem["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers.len(), 3, "{problem:#}");
        for pointer in ["/planCostShares/copay", "", "/linkedPlanServices/0/objectType"] {
            assert!(pointers.contains(&pointer), "{pointer} in {pointers:?}");
        }

        let mut duplicate = plan.clone();
        duplicate["linkedPlanServices"][1]["objectId"] = duplicate["linkedPlanServices"][0]["objectId"].clone();
        let problem = expect_problem(app.create(&duplicate).await, 400, "validation-failed").await;
        assert_eq!(problem["violations"][0]["pointer"], "/linkedPlanServices/1/objectId");

        let mut mixed = plan.clone();
        mixed["planCostShares"]["_org"] = json!("other.example");
        expect_problem(app.create(&mixed).await, 400, "validation-failed").await;

        expect_problem(app.get(&id).await, 404, "not-found").await;
    }

    pub async fn create_refuses_ids_that_exist(app: TestApp) {
        let plan = unique_plan(&tag());
        assert_eq!(app.create(&plan).await.status(), 201);
        let problem = expect_problem(app.create(&plan).await, 409, "plan-exists").await;
        assert!(problem["detail"].as_str().unwrap().contains(&id_of(&plan)));

        let mut other = unique_plan(&tag());
        let taken = plan["linkedPlanServices"][1]["linkedService"]["objectId"].as_str().unwrap();
        other["linkedPlanServices"][0]["linkedService"]["objectId"] = json!(taken);
        let problem = expect_problem(app.create(&other).await, 409, "object-id-taken").await;
        assert!(problem["detail"].as_str().unwrap().contains(taken), "the problem names the id");
        expect_problem(app.get(&id_of(&other)).await, 404, "not-found").await;
        // The owner of the id is untouched.
        assert_eq!(app.get(taken).await.json::<Value>().await.unwrap(), plan["linkedPlanServices"][1]["linkedService"]);
    }

    pub async fn get_finds_nested_objects_and_honours_if_none_match(app: TestApp) {
        let plan = unique_plan(&tag());
        let etag = header(&app.create(&plan).await, "etag");
        let id = id_of(&plan);
        let conditional = |value: &'static str| app.request(Method::GET, &format!("/v1/plan/{id}")).header("if-none-match", value);
        for value in ["*"] {
            let response = conditional(value).send().await.unwrap();
            assert_eq!(response.status(), 304);
            assert_eq!(header(&response, "etag"), etag);
            assert!(response.bytes().await.unwrap().is_empty());
        }
        let weak_list = format!("\"nope\", W/{etag}");
        let response = app.request(Method::GET, &format!("/v1/plan/{id}")).header("if-none-match", weak_list).send().await.unwrap();
        assert_eq!(response.status(), 304, "weak comparison, comma list");
        let response = conditional("\"other\"").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let response = conditional("").send().await.unwrap();
        assert_eq!(response.status(), 200, "an empty If-None-Match is an empty list (RFC 9110), which matches nothing");
        let bad = conditional("not-a-tag").send().await.unwrap();
        expect_problem(bad, 400, "invalid-header").await;

        let service_id = plan["linkedPlanServices"][0]["objectId"].as_str().unwrap();
        let response = app.get(service_id).await;
        assert_eq!(response.status(), 200);
        let service_etag = header(&response, "etag");
        assert_ne!(service_etag, etag);
        assert_eq!(response.json::<Value>().await.unwrap(), plan["linkedPlanServices"][0]);
        let cost_share = plan["linkedPlanServices"][0]["planserviceCostShares"]["objectId"].as_str().unwrap();
        assert_eq!(app.get(cost_share).await.json::<Value>().await.unwrap(), plan["linkedPlanServices"][0]["planserviceCostShares"]);

        expect_problem(app.get("unknown-id").await, 404, "not-found").await;
        expect_problem(app.get("bad%20id").await, 400, "invalid-id").await;
    }

    pub async fn list_pages_newest_first_with_a_cursor(app: TestApp) {
        let mut ids = Vec::new();
        for _ in 0..5 {
            let plan = unique_plan(&tag());
            assert_eq!(app.create(&plan).await.status(), 201);
            ids.push(id_of(&plan));
        }
        ids.reverse();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/plan?limit=2&cursor={c}"),
                None => "/v1/plan?limit=2".to_owned(),
            };
            let page: Value = app.request(Method::GET, &path).send().await.unwrap().json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(id_of));
            match page.get("nextCursor") {
                Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
                None => break,
            }
            // A plan written between pages goes to the front, never into a later page.
            if seen.len() == 2 {
                assert_eq!(app.create(&unique_plan(&tag())).await.status(), 201);
            }
        }
        assert_eq!(seen, ids, "every plan once, newest first, no gap, no duplicate");
        let default: Value = app.request(Method::GET, "/v1/plan").send().await.unwrap().json().await.unwrap();
        assert_eq!(default["items"].as_array().unwrap().len(), 6);
        for bad in ["limit=0", "limit=101", "limit=ten", "cursor=%%%", "cursor=bm90LWEtY3Vyc29y"] {
            let response = app.request(Method::GET, &format!("/v1/plan?{bad}")).send().await.unwrap();
            expect_problem(response, 400, "invalid-query").await;
        }
    }

    pub async fn put_replaces_drops_objects_and_checks_preconditions(app: TestApp) {
        let mut plan = unique_plan(&tag());
        let id = id_of(&plan);
        let etag = header(&app.create(&plan).await, "etag");
        let dropped = plan["linkedPlanServices"][1]["objectId"].as_str().unwrap().to_owned();
        plan["linkedPlanServices"].as_array_mut().unwrap().pop();
        plan["planType"] = json!("outOfNetwork");

        expect_problem(app.put(&id, &plan, None).await, 428, "precondition-required").await;
        expect_problem(app.put(&id, &plan, Some("\"stale\"")).await, 412, "precondition-failed").await;
        expect_problem(app.put(&id, &plan, Some(&format!("W/{etag}"))).await, 412, "precondition-failed").await;
        let mut wrong_id = plan.clone();
        wrong_id["objectId"] = json!("some-other-id");
        expect_problem(app.put(&id, &wrong_id, Some(&etag)).await, 400, "id-mismatch").await;

        let response = app.put(&id, &plan, Some(&format!("\"x\", {etag}"))).await;
        assert_eq!(response.status(), 200);
        let new_etag = header(&response, "etag");
        assert_ne!(new_etag, etag);
        assert_eq!(header(&response, "x-plan-version"), "2");
        assert_eq!(response.json::<Value>().await.unwrap(), plan);
        expect_problem(app.get(&dropped).await, 404, "not-found").await;

        // The same PUT again changes nothing: same ETag, no new version.
        let again = app.put(&id, &plan, Some(&new_etag)).await;
        assert_eq!(
            (again.status().as_u16(), header(&again, "etag"), header(&again, "x-plan-version")),
            (200, new_etag.clone(), "2".into())
        );

        // If-None-Match: * is create-only.
        let fresh = unique_plan(&tag());
        let fresh_id = id_of(&fresh);
        let create_only =
            |body: &Value| app.request(Method::PUT, &format!("/v1/plan/{fresh_id}")).header("if-none-match", "*").json(body).send();
        let created = create_only(&fresh).await.unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(header(&created, "location"), format!("/v1/plan/{fresh_id}"));
        expect_problem(create_only(&fresh).await.unwrap(), 412, "precondition-failed").await;
        // PUT on a nested object's id is refused.
        let nested = plan["linkedPlanServices"][0]["objectId"].as_str().unwrap();
        let mut as_plan = unique_plan(&tag());
        as_plan["objectId"] = json!(nested);
        expect_problem(app.put(nested, &as_plan, Some("*")).await, 405, "nested-object").await;
    }

    pub async fn merge_patch_merges_by_object_id(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let etag = header(&app.create(&plan).await, "etag");
        let t = tag();
        let existing = plan["linkedPlanServices"][0]["objectId"].clone();
        let patch = json!({
            "planCostShares": {"copay": 40},
            "linkedPlanServices": [{"objectId": existing, "linkedService": {"name": "Annual physical"}}, plan_service(&t, "dental", 15)]
        });
        expect_problem(app.merge_patch(&id, &patch, None).await, 428, "precondition-required").await;
        expect_problem(app.merge_patch(&id, &patch, Some("\"stale\"")).await, 412, "precondition-failed").await;
        let response = app.merge_patch(&id, &patch, Some(&etag)).await;
        assert_eq!(response.status(), 200);
        let new_etag = header(&response, "etag");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["planCostShares"]["copay"], 40);
        assert_eq!(body["planCostShares"]["deductible"], 2000);
        let services = body["linkedPlanServices"].as_array().unwrap();
        assert_eq!(services.len(), 3);
        assert_eq!(services[0]["linkedService"]["name"], "Annual physical");
        assert_eq!(services[2], plan_service(&t, "dental", 15));
        assert_eq!(app.get(&format!("svc-{t}")).await.status(), 200, "the appended service is addressable");
        assert_eq!(app.get(&id).await.json::<Value>().await.unwrap(), body);

        // An invalid result is refused and changes nothing.
        let invalid = json!({"planCostShares": {"copay": "free"}});
        let problem = expect_problem(app.merge_patch(&id, &invalid, Some(&new_etag)).await, 400, "validation-failed").await;
        assert_eq!(problem["violations"][0]["pointer"], "/planCostShares/copay");
        let removing_required = json!({"planType": null});
        expect_problem(app.merge_patch(&id, &removing_required, Some(&new_etag)).await, 400, "validation-failed").await;
        expect_problem(app.merge_patch(&id, &json!({"objectId": "renamed"}), Some(&new_etag)).await, 400, "plan-id-changed").await;
        expect_problem(app.merge_patch(&id, &json!([1]), Some(&new_etag)).await, 400, "invalid-patch").await;
        assert_eq!(app.etag(&id).await, new_etag);
        let response = app.patch(&id, "text/plain", &json!({}), Some(&new_etag)).await;
        assert!(header(&response, "accept-patch").contains("application/json-patch+json"));
        expect_problem(response, 415, "unsupported-media-type").await;
        expect_problem(app.merge_patch("unknown-plan", &patch, Some("*")).await, 404, "not-found").await;
    }

    pub async fn json_patch_removes_a_linked_plan_service(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let etag = header(&app.create(&plan).await, "etag");
        let removed = plan["linkedPlanServices"][1]["objectId"].as_str().unwrap();
        let removed_service = plan["linkedPlanServices"][1]["linkedService"]["objectId"].as_str().unwrap();
        let patch = json!([
            {"op": "test", "path": "/linkedPlanServices/1/objectId", "value": removed},
            {"op": "remove", "path": "/linkedPlanServices/1"}
        ]);
        let failing = json!([{"op": "test", "path": "/planType", "value": "nope"}]);
        expect_problem(app.patch(&id, "application/json-patch+json", &failing, Some(&etag)).await, 409, "patch-conflict").await;
        expect_problem(app.patch(&id, "application/json-patch+json", &json!({"op": "remove"}), Some(&etag)).await, 400, "invalid-patch")
            .await;
        let response = app.patch(&id, "application/json-patch+json", &patch, Some(&etag)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["linkedPlanServices"].as_array().unwrap().len(), 1);
        expect_problem(app.get(removed).await, 404, "not-found").await;
        expect_problem(app.get(removed_service).await, 404, "not-found").await;
    }

    pub async fn delete_cascades_and_refuses_nested_ids(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let etag = header(&app.create(&plan).await, "etag");
        let nested = plan["linkedPlanServices"][0]["objectId"].as_str().unwrap();
        let problem = expect_problem(app.delete(nested, Some("*")).await, 405, "nested-object").await;
        assert!(problem["detail"].as_str().unwrap().contains(&format!("PATCH /v1/plan/{id}")), "says how to remove it");
        assert_eq!(app.get(nested).await.status(), 200, "nothing deleted");
        expect_problem(app.delete(&id, None).await, 428, "precondition-required").await;
        expect_problem(app.delete(&id, Some("\"stale\"")).await, 412, "precondition-failed").await;
        let response = app.delete(&id, Some(&etag)).await;
        assert_eq!(response.status(), 204);
        assert_eq!(header(&response, "x-plan-version"), "2", "the deletion's version, as its change event carries it");
        assert!(response.bytes().await.unwrap().is_empty());
        for object in [id.as_str(), nested, plan["planCostShares"]["objectId"].as_str().unwrap()] {
            expect_problem(app.get(object).await, 404, "not-found").await;
        }
        expect_problem(app.delete(&id, Some("*")).await, 404, "not-found").await;
        // Its ids are free again.
        assert_eq!(app.create(&plan).await.status(), 201);
    }

    pub async fn unknown_routes_and_methods_are_problems(app: TestApp) {
        expect_problem(app.request(Method::GET, "/v2/plan").send().await.unwrap(), 404, "route-not-found").await;
        expect_problem(app.request(Method::GET, "/v1/plan/a/b").send().await.unwrap(), 404, "route-not-found").await;
        let response = app.request(Method::DELETE, "/v1/plan").send().await.unwrap();
        let allow = header(&response, "allow");
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        expect_problem(response, 405, "method-not-allowed").await;
        let response = app.request(Method::POST, "/v1/health").send().await.unwrap();
        expect_problem(response, 405, "method-not-allowed").await;
    }

    pub async fn schema_and_health_are_served(app: TestApp) {
        let response = app.request(Method::GET, "/v1/schema/plan").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "application/schema+json");
        let etag = header(&response, "etag");
        let schema: Value = response.json().await.unwrap();
        assert_eq!(schema, serde_json::from_str::<Value>(plan::PLAN_SCHEMA).unwrap());
        let again = app.request(Method::GET, "/v1/schema/plan").header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        let health = app.request(Method::GET, "/v1/health").send().await.unwrap();
        assert_eq!(health.status(), 200);
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert!(body["backends"].as_object().unwrap().values().all(|b| b["status"] == "up"), "{body}");
    }

    /// Small requests that used to cost hundreds of megabytes: each is refused with a short
    /// problem, and the stored plan stays as it was.
    pub async fn amplifying_patches_are_refused_and_change_nothing(app: TestApp) {
        let plan = unique_plan(&tag());
        let id = id_of(&plan);
        let etag = header(&app.create(&plan).await, "etag");
        let bombs = [("", "/x"), ("/linkedPlanServices", "/linkedPlanServices/-")];
        for (from, path) in bombs {
            let operations: Vec<Value> = (0..18)
                .map(|i| json!({"op": "copy", "from": from, "path": if path == "/x" { format!("/x{i}") } else { path.to_owned() }}))
                .collect();
            let response = app.patch(&id, "application/json-patch+json", &Value::Array(operations), Some("*")).await;
            let problem = expect_problem(response, 413, "plan-too-large").await;
            assert!(problem.to_string().len() < 2_000, "{problem}");
        }
        let too_many = Value::Array(vec![json!({"op": "test", "path": "/objectId", "value": id}); 1001]);
        expect_problem(app.patch(&id, "application/json-patch+json", &too_many, Some("*")).await, 400, "invalid-patch").await;
        assert_eq!(app.etag(&id).await, etag, "nothing was written");
    }

    /// A merge patch can grow a plan, but never past the stored-plan limit: what GET returns,
    /// PUT accepts.
    pub async fn a_plan_cannot_grow_past_the_stored_limit(app: TestApp) {
        // The longest organisation names make the largest services.
        let org = format!("{}.example.com", "o".repeat(200));
        let with_org = |mut value: Value| {
            set_org(&mut value, &org);
            value
        };
        let plan = with_org(unique_plan(&tag()));
        let id = id_of(&plan);
        assert_eq!(app.create(&plan).await.status(), 201);
        let run = tag();
        // About 1,600 bytes each: 400 fit, 800 do not.
        let services = |from: usize| -> Value {
            let long = |prefix: &str, i: usize| format!("{prefix}-{run}-{i}-{}", "x".repeat(100));
            Value::Array(
                (from..from + 400)
                    .map(|i| {
                        let mut service = plan_service(&format!("{run}-{i}"), &"n".repeat(256), 1);
                        service["objectId"] = json!(long("ps", i));
                        service["linkedService"]["objectId"] = json!(long("svc", i));
                        service["planserviceCostShares"]["objectId"] = json!(long("pcs", i));
                        with_org(service)
                    })
                    .collect(),
            )
        };
        let grown = app.merge_patch(&id, &json!({"linkedPlanServices": services(0)}), Some("*")).await;
        assert_eq!(grown.status(), 200);
        let etag = header(&grown, "etag");
        let problem =
            expect_problem(app.merge_patch(&id, &json!({"linkedPlanServices": services(400)}), Some("*")).await, 413, "plan-too-large")
                .await;
        assert!(problem["detail"].as_str().unwrap().contains(&plan::MAX_PLAN_BYTES.to_string()), "{problem}");
        let stored = app.get(&id).await;
        assert_eq!(header(&stored, "etag"), etag, "nothing was written");
        let body = stored.bytes().await.unwrap();
        assert!(body.len() <= plan::MAX_PLAN_BYTES);
        let same: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(app.put(&id, &same, Some(&etag)).await.status(), 200, "a stored plan can be written back");
    }

    /// Bodies that once made the validator hold every error at once, or quote the document back.
    pub async fn huge_invalid_bodies_get_short_answers(app: TestApp) {
        let plan = unique_plan(&tag());
        // Just under 1 MiB of empty services.
        let mut body = serde_json::to_string(&plan).unwrap();
        let at = body.find("\"linkedPlanServices\":[").unwrap() + "\"linkedPlanServices\":[".len();
        let empties = "{},".repeat((1024 * 1024 - body.len() - 16) / 3);
        body.insert_str(at, &empties);
        let response = app.request(Method::POST, "/v1/plan").header("content-type", "application/json").body(body).send().await.unwrap();
        let problem = expect_problem(response, 400, "validation-failed").await;
        assert_eq!(problem["violationCount"], 1, "{problem}");

        let mut many = plan.clone();
        let service = plan["linkedPlanServices"][0].clone();
        many["linkedPlanServices"] = Value::Array((0..1001).map(|_| service.clone()).collect());
        let response = app.create(&many).await;
        let problem = expect_problem(response, 400, "validation-failed").await;
        assert!(problem.to_string().len() < 2_000, "{} bytes", problem.to_string().len());

        let mut flood = serde_json::Map::new();
        for i in 0..90_000 {
            flood.insert(format!("k{i}"), json!(1));
        }
        let response = app.request(Method::POST, "/v1/search").json(&Value::Object(flood)).send().await.unwrap();
        let problem = expect_problem(response, 400, "invalid-search").await;
        assert_eq!(problem["violationCount"], 90_000);
        assert_eq!(problem["violations"].as_array().unwrap().len(), 100);
        assert!(problem.to_string().len() < 64 * 1024, "{} bytes", problem.to_string().len());
        expect_problem(app.get(&id_of(&plan)).await, 404, "not-found").await;
    }

    /// Limits the edge enforces before any route runs, answered as problems with a request id.
    pub async fn oversized_requests_are_problems(app: TestApp) {
        let long = format!("/v1/plan/{}", "a".repeat(9_000));
        let problem = expect_problem(app.request(Method::GET, &long).send().await.unwrap(), 414, "uri-too-long").await;
        assert!(problem["requestId"].as_str().is_some_and(|id| !id.is_empty()));
        let mut request = app.request(Method::GET, "/v1/plan");
        for i in 0..101 {
            request = request.header(format!("x-filler-{i}"), "1");
        }
        expect_problem(request.send().await.unwrap(), 431, "headers-too-large").await;
        let big = app.request(Method::GET, "/v1/plan").header("x-filler", "v".repeat(40_000));
        expect_problem(big.send().await.unwrap(), 431, "headers-too-large").await;

        // A declared length over the limit is refused without waiting for the body.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
        let token = app.token.clone().unwrap_or_default();
        let head = format!(
            "POST /v1/plan HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 4096];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer)).await.expect("answered before the body");
        let answer = String::from_utf8_lossy(&answer[..read.unwrap()]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload-too-large"), "{answer}");
    }

    pub async fn request_ids_are_echoed(app: TestApp) {
        let response = app.request(Method::GET, "/v1/plan/missing-one").header("x-request-id", "trace-123").send().await.unwrap();
        assert_eq!(header(&response, "x-request-id"), "trace-123");
        let problem = expect_problem(response, 404, "not-found").await;
        assert_eq!(problem["instance"], "/v1/plan/missing-one");
    }
}

macro_rules! http_cases {
    ($backend:ident, $spawn:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(app) = $spawn else { return };
                    cases::$case(app).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $spawn:expr) => {
        http_cases!(
            $backend,
            $spawn,
            [
                create_answers_201_with_location_etag_and_the_stored_plan,
                create_refuses_bad_input_and_changes_nothing,
                create_refuses_ids_that_exist,
                get_finds_nested_objects_and_honours_if_none_match,
                list_pages_newest_first_with_a_cursor,
                put_replaces_drops_objects_and_checks_preconditions,
                merge_patch_merges_by_object_id,
                json_patch_removes_a_linked_plan_service,
                delete_cascades_and_refuses_nested_ids,
                unknown_routes_and_methods_are_problems,
                schema_and_health_are_served,
                request_ids_are_echoed,
                amplifying_patches_are_refused_and_change_nothing,
                a_plan_cannot_grow_past_the_stored_limit,
                huge_invalid_bodies_get_short_answers,
                oversized_requests_are_problems,
            ]
        );
    };
}

all_cases!(embedded, Some(spawn_embedded(WritePolicy::default()).await));
all_cases!(
    redis,
    (match redis_store() {
        Some(store) => Some(spawn_on(store, WritePolicy::default()).await),
        None => None,
    })
);

#[tokio::test]
async fn if_match_is_optional_when_the_deployment_says_so() {
    let app = spawn_embedded(WritePolicy { require_if_match: false }).await;
    let plan = sample_plan();
    assert_eq!(app.create(&plan).await.status(), 201);
    let response = app.merge_patch(&id_of(&plan), &json!({"planType": "outOfNetwork"}), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.delete(&id_of(&plan), None).await.status(), 204);
}
