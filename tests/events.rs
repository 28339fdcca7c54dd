//! Change events from the HTTP API: one per committed change, and none lost when the broker is
//! down (the outbox mark and the sweep).

use std::collections::BTreeMap;
use std::sync::Arc;

use plan::WritePolicy;
use plan::events::Operation;
use plan::jobs::sweep;
use plan::store::{PlanWriter, StoreWalk};
use plan_e2e::app::{header, spawn_with};
use plan_e2e::{RecordingPublisher, redis_store, tag, unique_plan};
use plan_store::EmbeddedStore;
use plan_wiring::backends::Store;
use serde_json::{Value, json};

async fn unpublished(walk: &dyn StoreWalk) -> BTreeMap<String, u64> {
    let mut marked = BTreeMap::new();
    let mut cursor = None;
    loop {
        let (states, next) = walk.walk(cursor, 3).await.unwrap();
        for state in states.into_iter().filter(|s| s.unpublished) {
            marked.insert(state.id.to_string(), state.version);
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return marked,
        }
    }
}

async fn one_event_per_committed_change<S: Store + 'static>(store: Arc<S>) {
    let publisher = Arc::new(RecordingPublisher::default());
    let app = spawn_with(store.clone(), publisher.clone(), WritePolicy::default()).await;
    let plan = unique_plan(&tag());
    let id = plan["objectId"].as_str().unwrap().to_owned();

    let created = app.create(&plan).await;
    let create_request = header(&created, "x-request-id");
    let etag = header(&created, "etag");
    let patched = app.merge_patch(&id, &json!({"planType": "outOfNetwork"}), Some(&etag)).await;
    let etag = header(&patched, "etag");
    let stored: Value = patched.json().await.unwrap();
    let unchanged = app.put(&id, &stored, Some(&etag)).await;
    assert_eq!(unchanged.status(), 200);
    assert_eq!(app.delete(&id, Some(&etag)).await.status(), 204);

    let events: Vec<_> = publisher.events().into_iter().filter(|e| e.plan_id.as_str() == id).collect();
    let summary: Vec<(Operation, u64)> = events.iter().map(|e| (e.operation, e.version)).collect();
    assert_eq!(summary, [(Operation::Upsert, 1), (Operation::Upsert, 2), (Operation::Delete, 3)], "a no-op PUT emits nothing");
    assert_eq!(serde_json::to_value(events[0].plan.as_ref().unwrap()).unwrap(), plan, "a full snapshot");
    assert_eq!(serde_json::to_value(events[1].plan.as_ref().unwrap()).unwrap(), stored);
    assert!(events[2].plan.is_none());
    assert_eq!(events[0].request_id, create_request);
    assert!(unpublished(store.as_ref()).await.is_empty(), "every published change is unmarked");
}

async fn writes_while_the_broker_is_down_are_swept_later<S: Store + 'static>(store: Arc<S>) {
    let publisher = Arc::new(RecordingPublisher::default());
    let app = spawn_with(store.clone(), publisher.clone(), WritePolicy::default()).await;
    let (kept, changed, deleted) = (unique_plan(&tag()), unique_plan(&tag()), unique_plan(&tag()));
    for plan in [&kept, &changed, &deleted] {
        assert_eq!(app.create(plan).await.status(), 201);
    }
    publisher.set_down(true);
    let id = |plan: &Value| plan["objectId"].as_str().unwrap().to_owned();
    let etag = app.etag(&id(&changed)).await;
    let response = app.merge_patch(&id(&changed), &json!({"planType": "outOfNetwork"}), Some(&etag)).await;
    assert_eq!(response.status(), 200, "the write succeeds although the broker is down");
    let etag = app.etag(&id(&deleted)).await;
    assert_eq!(app.delete(&id(&deleted), Some(&etag)).await.status(), 204);
    let created_while_down = unique_plan(&tag());
    assert_eq!(app.create(&created_while_down).await.status(), 201);

    let marked = unpublished(store.as_ref()).await;
    let expected = BTreeMap::from([(id(&changed), 2), (id(&deleted), 2), (id(&created_while_down), 1)]);
    assert_eq!(marked, expected, "exactly the unpublished changes are marked");

    // While the broker is still down the sweep stops at once and loses nothing.
    assert!(sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, publisher.as_ref()).await.is_err());
    assert_eq!(unpublished(store.as_ref()).await, expected);

    publisher.set_down(false);
    // A second later, a republished event still tells when its change was committed.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let sweep_started = plan::events::ChangeEvent::delete(plan_e2e::id("clock"), 1, "").occurred_at;
    let before = publisher.events().len();
    let report = sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, publisher.as_ref()).await.unwrap();
    assert_eq!(report.republished, 3);
    for event in &publisher.events()[before..] {
        assert!(event.occurred_at[..19] < sweep_started[..19], "{} is the sweep's time ({sweep_started})", event.occurred_at);
    }
    let swept: BTreeMap<String, (Operation, u64)> =
        publisher.events()[before..].iter().map(|e| (e.plan_id.to_string(), (e.operation, e.version))).collect();
    assert_eq!(
        swept,
        BTreeMap::from([
            (id(&changed), (Operation::Upsert, 2)),
            (id(&deleted), (Operation::Delete, 2)),
            (id(&created_while_down), (Operation::Upsert, 1)),
        ])
    );
    assert!(unpublished(store.as_ref()).await.is_empty());
    let again = sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, publisher.as_ref()).await.unwrap();
    assert_eq!(again.republished, 0, "a second sweep has nothing to do");
}

#[tokio::test]
async fn embedded_one_event_per_committed_change() {
    one_event_per_committed_change(Arc::new(EmbeddedStore::new())).await;
}

#[tokio::test]
async fn embedded_writes_while_the_broker_is_down_are_swept_later() {
    writes_while_the_broker_is_down_are_swept_later(Arc::new(EmbeddedStore::new())).await;
}

#[tokio::test]
async fn redis_one_event_per_committed_change() {
    let Some(store) = redis_store() else { return };
    one_event_per_committed_change(store).await;
}

#[tokio::test]
async fn redis_writes_while_the_broker_is_down_are_swept_later() {
    let Some(store) = redis_store() else { return };
    writes_while_the_broker_is_down_are_swept_later(store).await;
}

/// A publisher that refuses the records of one plan (as a broker refuses a record it cannot take)
/// and passes the rest on.
struct RefusesOnePlan {
    refused: String,
    inner: RecordingPublisher,
}

#[async_trait::async_trait]
impl plan::events::ChangePublisher for RefusesOnePlan {
    async fn publish(&self, event: &plan::events::ChangeEvent) -> Result<(), plan::events::PublishError> {
        if event.plan_id.as_str() == self.refused {
            return Err(plan::events::PublishError::rejected("the broker refused this record"));
        }
        self.inner.publish(event).await
    }
}

/// 1,000 plans written while the broker was down, one of which the broker refuses: the sweep
/// publishes every change of the other 999 (deletes included) and leaves that one marked, where it
/// used to stop at the refused plan and start from the top again next time.
async fn the_sweep_goes_past_a_plan_it_cannot_publish<S: Store + 'static>(store: Arc<S>) {
    let down = Arc::new(RecordingPublisher::default());
    down.set_down(true);
    let app = spawn_with(store.clone(), down.clone(), WritePolicy::default()).await;
    let mut ids = Vec::new();
    for _ in 0..1_000 {
        let plan = unique_plan(&tag());
        assert_eq!(app.create(&plan).await.status(), 201);
        ids.push(plan["objectId"].as_str().unwrap().to_owned());
    }
    // A tenth of them deleted while the broker is down, too.
    for id in ids.iter().step_by(10) {
        let etag = app.etag(id).await;
        assert_eq!(app.delete(id, Some(&etag)).await.status(), 204);
    }
    // The refused plan sits early in the walk (the embedded walk goes by id).
    let refused = ids.iter().min().unwrap().clone();
    let publisher = RefusesOnePlan { refused: refused.clone(), inner: RecordingPublisher::default() };
    let result = sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, &publisher).await;
    let published = publisher.inner.events().len();
    let left = unpublished(store.as_ref()).await;
    eprintln!("one refused plan among 1,000: {published} changes reached the topic, {} left marked; {result:?}", left.len());
    // 1,000 creates and 100 deletes, every one of them unpublished; the refused plan's stay behind.
    let refused_changes = if ids.iter().step_by(10).any(|id| *id == refused) { 2 } else { 1 };
    assert_eq!(published, 1_100 - refused_changes, "every other change reaches the topic, deletes included");
    assert_eq!(left.keys().collect::<Vec<_>>(), [&refused], "only the refused plan stays marked");
    let report = result.expect("a refused record does not stop the sweep");
    assert_eq!((report.republished, report.failed), (1_100 - refused_changes, refused_changes));
    assert_eq!(report.failures[0].plan.as_str(), refused);

    // An unreachable broker still stops it at once.
    let deleted = unique_plan(&tag());
    assert_eq!(app.create(&deleted).await.status(), 201);
    publisher.inner.set_down(true);
    assert!(matches!(sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, &publisher).await, Err(plan::jobs::SweepError::Publish(..))));
}

#[tokio::test]
async fn embedded_the_sweep_goes_past_a_plan_it_cannot_publish() {
    the_sweep_goes_past_a_plan_it_cannot_publish(Arc::new(EmbeddedStore::new())).await;
}

#[tokio::test]
async fn redis_the_sweep_goes_past_a_plan_it_cannot_publish() {
    let Some(store) = redis_store() else { return };
    the_sweep_goes_past_a_plan_it_cannot_publish(store).await;
}

/// A plan patched to v2, v3 and v4 while the broker is down: the sweep publishes v2, v3 and v4,
/// in that order, each as it was committed (an audit consumer sees every change), not v4 alone.
async fn every_unpublished_version_reaches_the_topic_in_order<S: Store + 'static>(store: Arc<S>) {
    let publisher = Arc::new(RecordingPublisher::default());
    let app = spawn_with(store.clone(), publisher.clone(), WritePolicy::default()).await;
    let plan = unique_plan(&tag());
    let id = plan["objectId"].as_str().unwrap().to_owned();
    assert_eq!(app.create(&plan).await.status(), 201);
    publisher.set_down(true);
    for copay in [11, 12, 13] {
        let etag = app.etag(&id).await;
        let response = app.merge_patch(&id, &json!({"planCostShares": {"copay": copay}}), Some(&etag)).await;
        assert_eq!(response.status(), 200);
    }
    publisher.set_down(false);
    let report = sweep(store.as_ref(), store.as_ref() as &dyn PlanWriter, publisher.as_ref()).await.unwrap();
    let events: Vec<_> = publisher.events().into_iter().filter(|e| e.plan_id.as_str() == id).collect();
    let seen: Vec<(u64, Option<u64>)> = events
        .iter()
        .map(|e| (e.version, e.plan.as_ref().map(|p| serde_json::to_value(p).unwrap()["planCostShares"]["copay"].as_u64().unwrap())))
        .collect();
    assert_eq!(seen, [(1, Some(23)), (2, Some(11)), (3, Some(12)), (4, Some(13))], "every version, in order, as committed");
    assert_eq!(report.republished, 3);
    assert!(unpublished(store.as_ref()).await.is_empty());
}

#[tokio::test]
async fn embedded_every_unpublished_version_reaches_the_topic_in_order() {
    every_unpublished_version_reaches_the_topic_in_order(Arc::new(EmbeddedStore::new())).await;
}

#[tokio::test]
async fn redis_every_unpublished_version_reaches_the_topic_in_order() {
    let Some(store) = redis_store() else { return };
    every_unpublished_version_reaches_the_topic_in_order(store).await;
}
