//! The use cases of `service.rs` without a socket: the embedded store, and doubles for a store
//! that is down, one that always loses the compare-and-set, and publishers that record or refuse.
//! Backoffs run on tokio's paused clock.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, Operation, PublishError};
use plan::store::{PageMark, PlanPage, PlanReader, PlanWrite, PlanWriter, StoreError, StoreWalk, StoredPlan, WriteError};
use plan::{Caller, ETag, ObjectId, PlanError, PlanReads, PlanWrites, Preconditions, Read, TagCondition, Tenant, WritePolicy};
use plan_store::EmbeddedStore;
use serde_json::{Value, json};

fn sample() -> Value {
    serde_json::from_str(include_str!("../../../examples/plan.json")).expect("the sample plan")
}

fn id(raw: &str) -> ObjectId {
    ObjectId::parse(raw).expect("an objectId")
}

fn caller() -> Caller {
    Caller::new(Tenant::unrestricted(), "test-request")
}

fn if_match(etag: &ETag) -> Preconditions {
    Preconditions { if_match: Some(TagCondition::Tags(vec![etag.clone()])), if_none_match: None }
}

/// Every event it is given, in order.
#[derive(Default)]
struct Recording(Mutex<Vec<ChangeEvent>>);

#[async_trait]
impl ChangePublisher for Recording {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl Recording {
    fn operations(&self) -> Vec<(Operation, u64)> {
        self.0.lock().unwrap().iter().map(|e| (e.operation, e.version)).collect()
    }
}

/// A broker that is down.
struct Refusing;

#[async_trait]
impl ChangePublisher for Refusing {
    async fn publish(&self, _event: &ChangeEvent) -> Result<(), PublishError> {
        Err(PublishError::new("the broker is down"))
    }
}

/// A store that is down: every call fails as unavailable.
struct Down;

fn down() -> StoreError {
    StoreError::unavailable("the store is down")
}

#[async_trait]
impl PlanReader for Down {
    async fn plan(&self, _id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        Err(down())
    }

    async fn owner(&self, _object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        Err(down())
    }

    async fn page(&self, _org: Option<&str>, _after: Option<PageMark>, _limit: usize) -> Result<PlanPage, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl PlanWriter for Down {
    async fn commit(&self, _write: PlanWrite) -> Result<u64, WriteError> {
        Err(down().into())
    }

    async fn delete(&self, _id: &ObjectId, _expected: u64) -> Result<u64, WriteError> {
        Err(down().into())
    }

    async fn mark_published(&self, _id: &ObjectId, _version: u64) -> Result<(), StoreError> {
        Err(down())
    }
}

/// The embedded store, except that every compare-and-set of an existing plan loses to another
/// writer (as under heavy contention), and counts its attempts.
struct AlwaysBeaten {
    inner: EmbeddedStore,
    attempts: Mutex<u32>,
}

#[async_trait]
impl PlanReader for AlwaysBeaten {
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        self.inner.plan(id).await
    }

    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        self.inner.owner(object_id).await
    }

    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError> {
        self.inner.page(org, after, limit).await
    }
}

#[async_trait]
impl PlanWriter for AlwaysBeaten {
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError> {
        if matches!(write.expected, plan::store::Expected::Absent) {
            return self.inner.commit(write).await;
        }
        *self.attempts.lock().unwrap() += 1;
        Err(WriteError::VersionConflict)
    }

    async fn delete(&self, _id: &ObjectId, _expected: u64) -> Result<u64, WriteError> {
        *self.attempts.lock().unwrap() += 1;
        Err(WriteError::VersionConflict)
    }

    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError> {
        self.inner.mark_published(id, version).await
    }
}

/// The versions still waiting in the outbox of `plan`.
async fn outbox(store: &EmbeddedStore, plan: &ObjectId) -> Vec<u64> {
    let (states, _) = store.walk(None, 100).await.unwrap();
    states.into_iter().find(|state| &state.id == plan).map(|state| state.outbox.iter().map(|u| u.version).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_failed_precondition_wins_over_a_missing_one() {
    let store = Arc::new(EmbeddedStore::new());
    let writes = PlanWrites::new(store.clone(), Arc::new(Recording::default()), WritePolicy { require_if_match: true });
    let plan = writes.create(sample(), &caller()).await.unwrap();
    let plan_id = plan.plan_id.clone();
    let exists = Preconditions { if_match: None, if_none_match: Some(TagCondition::Any) };
    // If-None-Match: * on an existing plan says "exists" (412), not "send If-Match" (428).
    assert!(matches!(writes.replace(&plan_id, sample(), &exists, &caller()).await, Err(PlanError::PreconditionFailed)));
    assert!(matches!(writes.replace(&plan_id, sample(), &Preconditions::default(), &caller()).await, Err(PlanError::PreconditionRequired)));
    let stale = if_match(&ETag::of(b"another representation"));
    assert!(matches!(writes.replace(&plan_id, sample(), &stale, &caller()).await, Err(PlanError::PreconditionFailed)));
    assert!(matches!(writes.delete(&plan_id, &stale, &caller()).await, Err(PlanError::PreconditionFailed)));
    let mut changed = sample();
    changed["planType"] = json!("outOfNetwork");
    let written = writes.replace(&plan_id, changed, &if_match(&plan.etag), &caller()).await.unwrap();
    assert_eq!((written.created, written.plan.version), (false, 2));
}

#[tokio::test]
async fn creating_an_existing_plan_is_refused_and_changes_nothing() {
    let store = Arc::new(EmbeddedStore::new());
    let events = Arc::new(Recording::default());
    let writes = PlanWrites::new(store.clone(), events.clone(), WritePolicy::default());
    let first = writes.create(sample(), &caller()).await.unwrap();
    let mut again = sample();
    again["planType"] = json!("outOfNetwork");
    assert!(matches!(writes.create(again, &caller()).await, Err(PlanError::PlanExists(plan)) if plan == first.plan_id));
    assert_eq!(store.plan(&first.plan_id).await.unwrap().unwrap().body, first.body);
    assert_eq!(events.operations(), [(Operation::Upsert, 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_write_that_keeps_losing_the_race_is_contended() {
    let store = Arc::new(AlwaysBeaten { inner: EmbeddedStore::new(), attempts: Mutex::new(0) });
    let events = Arc::new(Recording::default());
    let writes = PlanWrites::new(store.clone(), events.clone(), WritePolicy::default());
    let plan = writes.create(sample(), &caller()).await.unwrap();
    let mut changed = sample();
    changed["planType"] = json!("outOfNetwork");
    assert!(matches!(writes.replace(&plan.plan_id, changed, &if_match(&plan.etag), &caller()).await, Err(PlanError::Contended)));
    let replace_attempts = *store.attempts.lock().unwrap();
    assert!(replace_attempts > 1, "the write retried after each lost race ({replace_attempts} attempts)");
    assert!(matches!(writes.delete(&plan.plan_id, &if_match(&plan.etag), &caller()).await, Err(PlanError::Contended)));
    assert_eq!(*store.attempts.lock().unwrap(), 2 * replace_attempts, "delete retries as often");
    assert_eq!(events.operations(), [(Operation::Upsert, 1)], "no event for a change that did not happen");
}

#[tokio::test]
async fn a_nested_object_is_read_by_its_id_but_written_only_through_its_plan() {
    let store = Arc::new(EmbeddedStore::new());
    let reads = PlanReads::new(store.clone());
    let writes = PlanWrites::new(store.clone(), Arc::new(Recording::default()), WritePolicy::default());
    let plan = writes.create(sample(), &caller()).await.unwrap();
    let service = sample()["linkedPlanServices"][0].clone();
    let service_id = id(service["objectId"].as_str().unwrap());
    let Read::Found(object) = reads.get(&service_id, &Preconditions::default(), &caller()).await.unwrap() else {
        panic!("the nested object is found")
    };
    assert_eq!(serde_json::from_str::<Value>(&object.body).unwrap(), service);
    assert_eq!((object.plan_id.clone(), object.version), (plan.plan_id.clone(), 1));
    let not_a_plan =
        |result: Result<(), PlanError>| matches!(result, Err(PlanError::NestedObject { plan_id, .. }) if plan_id == plan.plan_id);
    assert!(not_a_plan(writes.delete(&service_id, &Preconditions::default(), &caller()).await.map(drop)));
    let patch = plan::PlanPatch::merge(json!({"planType": "x"})).unwrap();
    assert!(not_a_plan(writes.patch(&service_id, &patch, &Preconditions::default(), &caller()).await.map(drop)));
    assert_eq!(store.plan(&plan.plan_id).await.unwrap().unwrap().version, 1, "nothing changed");
}

#[tokio::test]
async fn a_change_that_could_not_be_published_keeps_its_outbox_mark() {
    let store = Arc::new(EmbeddedStore::new());
    let unpublished = PlanWrites::new(store.clone(), Arc::new(Refusing), WritePolicy::default());
    let plan = unpublished.create(sample(), &caller()).await.expect("the commit stands though the broker is down");
    assert_eq!(outbox(&store, &plan.plan_id).await, [1], "left for the sweep");

    let events = Arc::new(Recording::default());
    let published = PlanWrites::new(store.clone(), events.clone(), WritePolicy::default());
    let mut changed = sample();
    changed["planType"] = json!("outOfNetwork");
    published.replace(&plan.plan_id, changed, &if_match(&plan.etag), &caller()).await.unwrap();
    assert_eq!(events.operations(), [(Operation::Upsert, 2)]);
    assert_eq!(outbox(&store, &plan.plan_id).await, [1], "only the published version left the outbox");
}

#[tokio::test]
async fn a_store_that_is_down_is_unavailable_and_nothing_is_published() {
    let store = Arc::new(Down);
    let events = Arc::new(Recording::default());
    let reads = PlanReads::new(store.clone());
    let writes = PlanWrites::new(store, events.clone(), WritePolicy::default());
    let plan_id = id(sample()["objectId"].as_str().unwrap());
    let unavailable = |result: Result<(), PlanError>| matches!(result, Err(PlanError::Unavailable(_)));
    assert!(unavailable(reads.get(&plan_id, &Preconditions::default(), &caller()).await.map(drop)));
    assert!(unavailable(reads.list(plan::ListQuery::parse(None, None).unwrap(), &caller()).await.map(drop)));
    assert!(unavailable(writes.create(sample(), &caller()).await.map(drop)));
    assert!(unavailable(writes.replace(&plan_id, sample(), &Preconditions::default(), &caller()).await.map(drop)));
    assert!(unavailable(writes.delete(&plan_id, &Preconditions::default(), &caller()).await.map(drop)));
    assert!(events.operations().is_empty());
}
