//! No lost updates: many clients patching one plan at once.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use plan::WritePolicy;
use plan_e2e::app::{TestApp, header, spawn_embedded, spawn_on};
use plan_e2e::{plan_service, redis_cluster_store, redis_store, tag, unique_plan};
use serde_json::{Value, json};

const CLIENTS: usize = 32;

/// 32 clients each append their own linked plan service with a merge PATCH carrying If-Match,
/// re-reading after every 412. Every 200 must be in the final plan, and the 200s must be exactly
/// the versions written (2..=33): a lost update would show as a missing service or a gap.
async fn if_match_patches_lose_nothing(app: TestApp) {
    let plan = unique_plan(&tag());
    let id = plan["objectId"].as_str().unwrap().to_owned();
    assert_eq!(app.create(&plan).await.status(), 201);
    let run = tag();
    let clients = (0..CLIENTS).map(|client| {
        let (app, id, run) = (&app, id.clone(), run.clone());
        async move {
            let patch = json!({"linkedPlanServices": [plan_service(&format!("{run}-{client}"), "concurrent", client as u64)]});
            let mut precondition_failures = 0;
            loop {
                let etag = app.etag(&id).await;
                let response = app.merge_patch(&id, &patch, Some(&etag)).await;
                match response.status().as_u16() {
                    200 => {
                        let version: u64 = header(&response, "x-plan-version").parse().unwrap();
                        return (client, version, precondition_failures);
                    }
                    412 => precondition_failures += 1,
                    other => panic!("client {client}: unexpected {other}: {}", response.text().await.unwrap()),
                }
                assert!(precondition_failures < 1000, "client {client} starved");
            }
        }
    });
    let results = join_all(clients).await;
    let versions: BTreeSet<u64> = results.iter().map(|(_, version, _)| *version).collect();
    assert_eq!(versions, (2..=CLIENTS as u64 + 1).collect(), "each 200 is its own version");
    let final_plan = app.get(&id).await;
    assert_eq!(header(&final_plan, "x-plan-version"), (CLIENTS + 1).to_string());
    let final_plan: Value = final_plan.json().await.unwrap();
    let present: BTreeSet<String> =
        final_plan["linkedPlanServices"].as_array().unwrap().iter().map(|s| s["objectId"].as_str().unwrap().to_owned()).collect();
    for (client, _, _) in &results {
        assert!(present.contains(&format!("ps-{run}-{client}")), "client {client}'s acknowledged change is missing");
    }
    let retries: usize = results.iter().map(|(_, _, r)| r).sum();
    eprintln!("{CLIENTS} clients: {retries} precondition failures (412) before every change landed");
}

/// Without If-Match (REQUIRE_IF_MATCH=false) the server's own compare-and-set loop keeps every
/// concurrent change.
async fn unconditional_patches_lose_nothing(app: TestApp) {
    let plan = unique_plan(&tag());
    let id = plan["objectId"].as_str().unwrap().to_owned();
    assert_eq!(app.create(&plan).await.status(), 201);
    let run = tag();
    let statuses = join_all((0..CLIENTS).map(|client| {
        let patch = json!({"linkedPlanServices": [plan_service(&format!("{run}-{client}"), "unconditional", 1)]});
        let (app, id) = (&app, id.clone());
        async move { app.merge_patch(&id, &patch, None).await.status().as_u16() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let final_plan: Value = app.get(&id).await.json().await.unwrap();
    assert_eq!(final_plan["linkedPlanServices"].as_array().unwrap().len(), 2 + CLIENTS);
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn if_match() {
        if_match_patches_lose_nothing(spawn_embedded(WritePolicy::default()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unconditional() {
        unconditional_patches_lose_nothing(spawn_embedded(WritePolicy { require_if_match: false }).await).await;
    }
}

mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn if_match() {
        let Some(store) = redis_store() else { return };
        if_match_patches_lose_nothing(spawn_on(store, WritePolicy::default()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unconditional() {
        let Some(store) = redis_store() else { return };
        unconditional_patches_lose_nothing(spawn_on(store, WritePolicy { require_if_match: false }).await).await;
    }
}

mod redis_cluster {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn if_match() {
        let Some(store) = redis_cluster_store() else { return };
        if_match_patches_lose_nothing(spawn_on(store, WritePolicy::default()).await).await;
    }
}
