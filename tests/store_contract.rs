//! The store contract: every adapter (embedded, Redis writing at once and in steps, Redis Cluster)
//! must pass every case.

use std::sync::Arc;

use futures_util::future::join_all;
use plan::probe::Probe;
use plan::store::{Expected, PageMark, PlanWriter, StoreWalk, WriteError};
use plan_e2e::{id, plan_service, redis_cluster_store, redis_stepwise_store, redis_store, set_org, tag, unique_plan, write_of};
use plan_store::EmbeddedStore;
use serde_json::{Value, json};

/// What the contract exercises: the writer and reader ports, the walk and the health probe.
trait ContractStore: PlanWriter + StoreWalk + Probe {}
impl<T: PlanWriter + StoreWalk + Probe> ContractStore for T {}

type Store = Arc<dyn ContractStore>;

mod cases {
    use super::*;

    pub async fn create_then_read(store: Store) {
        let doc = unique_plan(&tag());
        let write = write_of(doc.clone(), Expected::Absent);
        assert_eq!(store.commit(write.clone()).await.unwrap(), 1);
        let stored = store.plan(&write.id).await.unwrap().expect("stored");
        assert_eq!((stored.version, &stored.etag, &stored.body), (1, &write.etag, &write.body));
        for object_id in &write.object_ids {
            assert_eq!(store.owner(object_id).await.unwrap().as_ref(), Some(&write.id), "{object_id}");
        }
        assert_eq!(store.plan(&id("never-written")).await.unwrap(), None);
        assert_eq!(store.owner(&id("never-written")).await.unwrap(), None);
    }

    pub async fn create_is_refused_when_the_plan_exists(store: Store) {
        let write = write_of(unique_plan(&tag()), Expected::Absent);
        store.commit(write.clone()).await.unwrap();
        assert!(matches!(store.commit(write.clone()).await, Err(WriteError::VersionConflict)));
        assert_eq!(store.plan(&write.id).await.unwrap().unwrap().version, 1);
    }

    pub async fn replace_is_compare_and_set_on_the_version(store: Store) {
        let mut doc = unique_plan(&tag());
        let first = write_of(doc.clone(), Expected::Absent);
        store.commit(first.clone()).await.unwrap();
        doc["planType"] = json!("outOfNetwork");
        assert!(matches!(store.commit(write_of(doc.clone(), Expected::Version(7))).await, Err(WriteError::VersionConflict)));
        assert!(matches!(store.commit(write_of(doc.clone(), Expected::Absent)).await, Err(WriteError::VersionConflict)));
        assert_eq!(store.commit(write_of(doc.clone(), Expected::Version(1))).await.unwrap(), 2);
        let stored = store.plan(&first.id).await.unwrap().unwrap();
        assert_eq!(stored.version, 2);
        assert!(stored.body.contains("outOfNetwork"));
    }

    pub async fn dropped_ids_are_released_and_new_ids_owned(store: Store) {
        let t = tag();
        let mut doc = unique_plan(&t);
        let write = write_of(doc.clone(), Expected::Absent);
        store.commit(write.clone()).await.unwrap();
        let dropped = id(doc["linkedPlanServices"][1]["objectId"].as_str().unwrap());
        doc["linkedPlanServices"].as_array_mut().unwrap().remove(1);
        doc["linkedPlanServices"].as_array_mut().unwrap().push(plan_service(&format!("new-{t}"), "dental", 5));
        store.commit(write_of(doc, Expected::Version(1))).await.unwrap();
        assert_eq!(store.owner(&dropped).await.unwrap(), None);
        assert_eq!(store.owner(&id(&format!("ps-new-{t}"))).await.unwrap(), Some(write.id.clone()));
        // The released id is free for another plan.
        let mut other = unique_plan(&tag());
        other["linkedPlanServices"][0]["objectId"] = json!(dropped.as_str());
        let other = write_of(other, Expected::Absent);
        store.commit(other.clone()).await.unwrap();
        assert_eq!(store.owner(&dropped).await.unwrap(), Some(other.id));
    }

    pub async fn an_id_of_another_plan_is_refused_and_nothing_changes(store: Store) {
        let first = unique_plan(&tag());
        let first_write = write_of(first.clone(), Expected::Absent);
        store.commit(first_write.clone()).await.unwrap();
        let stolen = first["linkedPlanServices"][0]["linkedService"]["objectId"].as_str().unwrap().to_owned();
        let mut second = unique_plan(&tag());
        second["linkedPlanServices"][1]["linkedService"]["objectId"] = json!(stolen);
        let second_write = write_of(second, Expected::Absent);
        match store.commit(second_write.clone()).await {
            Err(WriteError::IdTaken(taken)) => assert_eq!(taken.as_str(), stolen),
            other => panic!("expected IdTaken, got {other:?}"),
        }
        assert_eq!(store.plan(&second_write.id).await.unwrap(), None);
        assert_eq!(store.owner(&id(&stolen)).await.unwrap(), Some(first_write.id.clone()));
        assert_eq!(store.plan(&first_write.id).await.unwrap().unwrap().body, first_write.body);
        // A plan id that is another plan's nested id is refused too.
        let mut third = unique_plan(&tag());
        third["objectId"] = json!(stolen);
        assert!(matches!(store.commit(write_of(third, Expected::Absent)).await, Err(WriteError::IdTaken(_))));
    }

    pub async fn delete_cascades_and_versions_keep_growing(store: Store) {
        let write = write_of(unique_plan(&tag()), Expected::Absent);
        store.commit(write.clone()).await.unwrap();
        assert!(matches!(store.delete(&write.id, 2).await, Err(WriteError::VersionConflict)));
        store.delete(&write.id, 1).await.unwrap();
        assert_eq!(store.plan(&write.id).await.unwrap(), None);
        for object_id in &write.object_ids {
            assert_eq!(store.owner(object_id).await.unwrap(), None, "{object_id}");
        }
        assert!(matches!(store.delete(&write.id, 2).await, Err(WriteError::VersionConflict)), "already deleted");
        // Re-created, the plan continues its version sequence: 1 (create), 2 (delete), 3.
        assert_eq!(store.commit(write.clone()).await.unwrap(), 3);
        assert!(matches!(
            store.commit(write_of(serde_json::from_str(&write.body).unwrap(), Expected::Version(2))).await,
            Err(WriteError::VersionConflict)
        ));
    }

    pub async fn pages_are_newest_first_and_stable_while_plans_are_written(store: Store) {
        let mut created = Vec::new();
        for _ in 0..7 {
            let write = write_of(unique_plan(&tag()), Expected::Absent);
            store.commit(write.clone()).await.unwrap();
            created.push(write.id);
        }
        let ids = |page: &plan::store::PlanPage| page.plans.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        // Each test has its own key prefix (or store), so these 7 are all the plans there are.
        let first = store.page(None, None, 2).await.unwrap();
        assert_eq!(ids(&first), [created[6].clone(), created[5].clone()]);
        // A plan created now belongs before the first page; a deleted one drops out; nothing shifts.
        store.commit(write_of(unique_plan(&tag()), Expected::Absent)).await.unwrap();
        store.delete(&created[3], 1).await.unwrap();
        let second = store.page(None, first.next, 2).await.unwrap();
        assert_eq!(ids(&second), [created[4].clone(), created[2].clone()]);
        let third = store.page(None, second.next, 2).await.unwrap();
        assert_eq!(ids(&third), [created[1].clone(), created[0].clone()]);
        assert_eq!(third.next, None, "the last page has no cursor");
        assert!(store.page(None, Some(PageMark(0)), 3).await.unwrap().plans.is_empty());
    }

    pub async fn pages_by_organisation_follow_org_changes(store: Store) {
        let org_plan = |org: &str| {
            let mut doc = unique_plan(&tag());
            set_org(&mut doc, org);
            doc
        };
        let (a1, b1, a2) = (org_plan("a.example"), org_plan("b.example"), org_plan("a.example"));
        for doc in [&a1, &b1, &a2] {
            store.commit(write_of(doc.clone(), Expected::Absent)).await.unwrap();
        }
        let ids = |page: plan::store::PlanPage| page.plans.into_iter().map(|p| (p.id.to_string(), p.org)).collect::<Vec<_>>();
        let id_of = |doc: &Value| doc["objectId"].as_str().unwrap().to_owned();
        let a = |doc: &Value| (id_of(doc), "a.example".to_owned());
        let b = |doc: &Value| (id_of(doc), "b.example".to_owned());
        assert_eq!(ids(store.page(Some("a.example"), None, 10).await.unwrap()), [a(&a2), a(&a1)]);
        assert_eq!(ids(store.page(Some("b.example"), None, 10).await.unwrap()), [b(&b1)]);
        assert!(store.page(Some("nobody.example"), None, 10).await.unwrap().plans.is_empty());
        // A replace that changes the organisation moves the plan, keeping its place in time.
        let mut moved = a1.clone();
        set_org(&mut moved, "b.example");
        store.commit(write_of(moved.clone(), Expected::Version(1))).await.unwrap();
        assert_eq!(ids(store.page(Some("a.example"), None, 10).await.unwrap()), [a(&a2)]);
        assert_eq!(ids(store.page(Some("b.example"), None, 10).await.unwrap()), [b(&b1), b(&moved)]);
        store.delete(&id(&id_of(&b1)), 1).await.unwrap();
        assert_eq!(ids(store.page(Some("b.example"), None, 10).await.unwrap()), [b(&moved)]);
    }

    pub async fn concurrent_writers_of_one_version_have_one_winner(store: Store) {
        let doc = unique_plan(&tag());
        let write = write_of(doc.clone(), Expected::Absent);
        store.commit(write.clone()).await.unwrap();
        let attempts = (0..16).map(|i| {
            let store = store.clone();
            let mut doc = doc.clone();
            doc["planType"] = json!(format!("type-{i}"));
            async move { store.commit(write_of(doc, Expected::Version(1))).await }
        });
        let results = join_all(attempts).await;
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
        assert!(results.iter().all(|r| matches!(r, Ok(2) | Err(WriteError::VersionConflict))));
        assert_eq!(store.plan(&write.id).await.unwrap().unwrap().version, 2);
    }

    pub async fn concurrent_plans_claiming_one_id_have_one_winner(store: Store) {
        let shared = format!("shared-{}", tag());
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            let mut doc = unique_plan(&tag());
            doc["linkedPlanServices"][0]["objectId"] = json!(shared);
            async move { store.commit(write_of(doc, Expected::Absent)).await }
        });
        let results = join_all(attempts).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(WriteError::IdTaken(_)))));
    }

    pub async fn large_plans_are_written_whole(store: Store) {
        let t = tag();
        let mut doc = unique_plan(&t);
        let services: Vec<Value> = (0..400).map(|i| plan_service(&format!("{t}-{i}"), "bulk", i)).collect();
        doc["linkedPlanServices"] = Value::Array(services);
        let write = write_of(doc, Expected::Absent);
        assert_eq!(write.object_ids.len(), 2 + 3 * 400);
        store.commit(write.clone()).await.unwrap();
        assert_eq!(store.plan(&write.id).await.unwrap().unwrap().body, write.body);
        assert_eq!(store.owner(&id(&format!("svc-{t}-399"))).await.unwrap(), Some(write.id));
    }

    pub async fn the_outbox_holds_every_unpublished_version_up_to_its_cap(store: Store) {
        let mut doc = unique_plan(&tag());
        let write = write_of(doc.clone(), Expected::Absent);
        store.commit(write.clone()).await.unwrap();
        store.mark_published(&write.id, 1).await.unwrap();
        let rewrites = plan::store::MAX_OUTBOX_PER_PLAN as u64 + 8;
        for version in 1..=rewrites {
            doc["planCostShares"]["copay"] = json!(version);
            store.commit(write_of(doc.clone(), Expected::Version(version))).await.unwrap();
        }
        let outbox = |states: Vec<plan::store::PlanState>| states.into_iter().find(|s| s.id == write.id).map(|s| s.outbox).unwrap();
        let held = outbox(walk_all(store.as_ref()).await);
        let versions: Vec<u64> = held.iter().map(|u| u.version).collect();
        let expected: Vec<u64> = (rewrites + 2 - plan::store::MAX_OUTBOX_PER_PLAN as u64..=rewrites + 1).collect();
        assert_eq!(versions, expected, "the newest versions, oldest first; the oldest superseded ones dropped");
        let body: Value = serde_json::from_str(held[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["planCostShares"]["copay"], json!(expected[0] - 1), "each version as committed");
        assert!(held.iter().all(|u| u.committed_at_ms.is_some()));
        // Publishing one version takes out that one only; a delete joins as a body-less entry.
        store.mark_published(&write.id, expected[3]).await.unwrap();
        store.delete(&write.id, rewrites + 1).await.unwrap();
        let held = outbox(walk_all(store.as_ref()).await);
        assert!(!held.iter().any(|u| u.version == expected[3]));
        assert_eq!(held.last().map(|u| (u.version, u.body.is_none())), Some((rewrites + 2, true)));
    }

    async fn walk_all(store: &dyn ContractStore) -> Vec<plan::store::PlanState> {
        let mut states = Vec::new();
        let mut cursor = None;
        loop {
            let (batch, next) = store.walk(cursor, 100).await.unwrap();
            states.extend(batch);
            match next {
                Some(next) => cursor = Some(next),
                None => return states,
            }
        }
    }

    pub async fn probe_answers(store: Store) {
        store.ping().await.unwrap();
        assert!(!store.name().is_empty());
    }

    pub async fn the_walk_visits_every_plan_live_or_deleted_with_its_outbox(store: Store) {
        let mut ids = Vec::new();
        for n in 0..5 {
            let write = write_of(unique_plan(&format!("{}-{n}", tag())), Expected::Absent);
            store.commit(write.clone()).await.unwrap();
            if n % 2 == 0 {
                store.mark_published(&write.id, 1).await.unwrap();
            }
            ids.push(write.id);
        }
        let deleted = store.delete(&ids[4], 1).await.unwrap();
        // Batches of two, so the cursor is followed; a plan may come twice (Redis' SCAN), never
        // not at all.
        let mut seen = std::collections::BTreeMap::new();
        let mut cursor = None;
        loop {
            let (batch, next) = store.walk(cursor, 2).await.unwrap();
            for state in batch {
                seen.insert(state.id.clone(), state);
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for (n, id) in ids.iter().enumerate() {
            let state = seen.get(id).unwrap_or_else(|| panic!("the walk missed plan {id}"));
            let outbox: Vec<u64> = state.outbox.iter().map(|u| u.version).collect();
            match n {
                4 => {
                    assert!(state.plan.is_none(), "a deleted plan is walked as a tombstone");
                    assert_eq!((state.version, outbox), (deleted, vec![deleted]), "its delete waits in the outbox");
                }
                n if n % 2 == 0 => assert_eq!((state.version, outbox, state.plan.is_some()), (1, vec![], true), "{id}: published"),
                _ => assert_eq!((state.version, outbox, state.plan.is_some()), (1, vec![1], true), "{id}: unpublished"),
            }
        }
    }
}

macro_rules! contract {
    ($backend:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = $make else { return };
                    cases::$case(store).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $make:expr) => {
        contract!(
            $backend,
            $make,
            [
                create_then_read,
                create_is_refused_when_the_plan_exists,
                replace_is_compare_and_set_on_the_version,
                dropped_ids_are_released_and_new_ids_owned,
                an_id_of_another_plan_is_refused_and_nothing_changes,
                delete_cascades_and_versions_keep_growing,
                pages_are_newest_first_and_stable_while_plans_are_written,
                pages_by_organisation_follow_org_changes,
                concurrent_writers_of_one_version_have_one_winner,
                concurrent_plans_claiming_one_id_have_one_winner,
                large_plans_are_written_whole,
                the_outbox_holds_every_unpublished_version_up_to_its_cap,
                probe_answers,
                the_walk_visits_every_plan_live_or_deleted_with_its_outbox,
            ]
        );
    };
}

all_cases!(embedded, Some(Arc::new(EmbeddedStore::new()) as Store));
all_cases!(redis, redis_store().map(|s| s as Store));
all_cases!(redis_stepwise, redis_stepwise_store().map(|s| s as Store));
all_cases!(redis_cluster, redis_cluster_store().map(|s| s as Store));
