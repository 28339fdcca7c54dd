//! The use cases. Handlers call exactly one of these; every rule of the API lives here.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::PlanError;
use crate::etag::{ETag, Preconditions, ReadOutcome};
use crate::events::{ChangeEvent, ChangePublisher};
use crate::id::ObjectId;
use crate::model::Plan;
use crate::patch::{PatchError, PlanPatch};
use crate::store::{Expected, PageMark, PlanReader, PlanWrite, PlanWriter, StoredPlan, WriteError};
use crate::tenant::{Caller, Tenant};
use crate::validate::{MAX_PLAN_BYTES, Violation, Violations, parse_plan};

/// A read-modify-write that loses a race re-reads and tries again, this many times at most.
const MAX_ATTEMPTS: u32 = 64;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// A representation to send: a plan, or one object of a plan with its subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representation {
    pub body: String,
    pub etag: ETag,
    /// The version of the plan the representation was taken from.
    pub version: u64,
    pub plan_id: ObjectId,
}

impl From<StoredPlan> for Representation {
    fn from(stored: StoredPlan) -> Self {
        Self { body: stored.body, etag: stored.etag, version: stored.version, plan_id: stored.id }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Found(Representation),
    NotModified(ETag),
}

/// The outcome of a PUT: the stored plan, and whether the PUT created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub plan: Representation,
    pub created: bool,
}

/// A validated `GET /v1/plan` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub after: Option<PageMark>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub plans: Vec<Representation>,
    pub next_cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "p1:";

impl ListQuery {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, PlanError> {
        let mut violations = Violations::new();
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    violations.push(Violation::new("/limit", format!("limit must be an integer from 1 to {MAX_PAGE_SIZE}")));
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        let after = match cursor.map(decode_cursor) {
            None => None,
            Some(Some(mark)) => Some(mark),
            Some(None) => {
                violations.push(Violation::new("/cursor", "cursor is not one this API returned"));
                None
            }
        };
        violations.finish(Self { limit, after }).map_err(PlanError::InvalidQuery)
    }
}

fn encode_cursor(mark: PageMark) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", mark.0))
}

fn decode_cursor(raw: &str) -> Option<PageMark> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?.parse().ok().map(PageMark)
}

/// Reads: get by id (plan or nested object) and list.
#[derive(Clone)]
pub struct PlanReads {
    store: Arc<dyn PlanReader>,
}

impl PlanReads {
    pub fn new(store: Arc<dyn PlanReader>) -> Self {
        Self { store }
    }

    /// The plan with this id or, for a nested object's id, that object with its subtree.
    pub async fn get(&self, id: &ObjectId, preconditions: &Preconditions, caller: &Caller) -> Result<Read, PlanError> {
        let tenant = &caller.tenant;
        let representation = self.find(id, tenant).await?.ok_or_else(|| PlanError::NotFound(id.clone()))?;
        Ok(match preconditions.for_read(&representation.etag) {
            ReadOutcome::Send => Read::Found(representation),
            ReadOutcome::NotModified => Read::NotModified(representation.etag),
            ReadOutcome::PreconditionFailed => return Err(PlanError::PreconditionFailed),
        })
    }

    async fn find(&self, id: &ObjectId, tenant: &Tenant) -> Result<Option<Representation>, PlanError> {
        if let Some(plan) = self.store.plan(id).await? {
            return Ok(tenant.sees(&plan.org).then(|| plan.into()));
        }
        let Some(plan_id) = self.store.owner(id).await? else { return Ok(None) };
        let Some(stored) = self.store.plan(&plan_id).await?.filter(|plan| tenant.sees(&plan.org)) else { return Ok(None) };
        let plan = decode(&stored)?;
        // An owner entry can outlive its object by a moment (a write releases ids after it
        // commits); the plan itself is the truth.
        Ok(plan.find(id).map(|node| {
            let body = node.to_json();
            Representation { etag: ETag::of(body.as_bytes()), body, version: stored.version, plan_id: stored.id.clone() }
        }))
    }

    pub async fn list(&self, query: ListQuery, caller: &Caller) -> Result<ListPage, PlanError> {
        let tenant = &caller.tenant;
        let page = self.store.page(tenant.confined_to(), query.after, query.limit).await?;
        Ok(ListPage { plans: page.plans.into_iter().map(Representation::from).collect(), next_cursor: page.next.map(encode_cursor) })
    }
}

/// Whether writes to an existing plan must carry If-Match (`REQUIRE_IF_MATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePolicy {
    pub require_if_match: bool,
}

impl Default for WritePolicy {
    fn default() -> Self {
        Self { require_if_match: true }
    }
}

/// Writes: create, replace, patch and delete, each a compare-and-set on the plan version,
/// each followed by its change event.
#[derive(Clone)]
pub struct PlanWrites {
    store: Arc<dyn PlanWriter>,
    publisher: Arc<dyn ChangePublisher>,
    policy: WritePolicy,
}

impl PlanWrites {
    pub fn new(store: Arc<dyn PlanWriter>, publisher: Arc<dyn ChangePublisher>, policy: WritePolicy) -> Self {
        Self { store, publisher, policy }
    }

    /// `POST /v1/plan`: a new plan; its id and every nested id must be unused.
    pub async fn create(&self, document: Value, caller: &Caller) -> Result<Representation, PlanError> {
        let tenant = &caller.tenant;
        let plan = parse_plan(document).map_err(PlanError::Invalid)?;
        ensure_own_org(&plan, tenant)?;
        let id = plan.object_id.clone();
        match self.commit(&plan, Expected::Absent, caller).await {
            Err(PlanError::Contended) => Err(PlanError::PlanExists(id)),
            other => other,
        }
    }

    /// `PUT /v1/plan/{id}`: replaces the whole plan, or creates it when absent.
    pub async fn replace(
        &self,
        id: &ObjectId,
        document: Value,
        preconditions: &Preconditions,
        caller: &Caller,
    ) -> Result<Written, PlanError> {
        let tenant = &caller.tenant;
        let plan = parse_plan(document).map_err(PlanError::Invalid)?;
        if &plan.object_id != id {
            return Err(PlanError::IdMismatch { path: id.clone(), body: plan.object_id });
        }
        ensure_own_org(&plan, tenant)?;
        self.read_modify_write(id, preconditions, caller, IfAbsent::Create, |_| Ok(plan.clone())).await
    }

    /// `PATCH /v1/plan/{id}`: applies the patch to the current plan and validates the result.
    pub async fn patch(
        &self,
        id: &ObjectId,
        patch: &PlanPatch,
        preconditions: &Preconditions,
        caller: &Caller,
    ) -> Result<Representation, PlanError> {
        let tenant = &caller.tenant;
        let written = self
            .read_modify_write(id, preconditions, caller, IfAbsent::NotFound, |current| {
                let current = current.ok_or_else(|| PlanError::NotFound(id.clone()))?;
                let document: Value = serde_json::from_str(&current.body).map_err(corrupt)?;
                let patched = patch.apply(&document).map_err(|e| match e {
                    PatchError::NotApplicable(detail) => PlanError::PatchConflict(detail),
                    PatchError::TooLarge { size, limit } => PlanError::TooLarge { size, limit },
                    other => PlanError::InvalidPatch(other.to_string()),
                })?;
                // Checked before the schema: a merge patch with another root objectId replaces
                // the whole document, and "the id cannot change" is the useful answer.
                if let Some(to) = patched.get("objectId").and_then(Value::as_str).filter(|to| *to != id.as_str()) {
                    let to = ObjectId::parse(to).map_err(|_| PlanError::Invalid(Violations::one("/objectId", "not a valid objectId")))?;
                    return Err(PlanError::PlanIdChanged { from: id.clone(), to });
                }
                let plan = parse_plan(patched).map_err(PlanError::Invalid)?;
                ensure_own_org(&plan, tenant)?;
                Ok(plan)
            })
            .await?;
        Ok(written.plan)
    }

    /// `DELETE /v1/plan/{id}`: the plan and every object in it. Returns the deletion's version
    /// (the tombstone's), the one its change event carries.
    pub async fn delete(&self, id: &ObjectId, preconditions: &Preconditions, caller: &Caller) -> Result<u64, PlanError> {
        let tenant = &caller.tenant;
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.current_or_absent(id, tenant).await?.ok_or_else(|| PlanError::NotFound(id.clone()))?;
            self.check(preconditions, Some(&current.etag))?;
            match self.store.delete(id, current.version).await {
                Ok(version) => {
                    self.announce(ChangeEvent::delete(id.clone(), version, &caller.request_id).traced(caller.trace_id.clone())).await;
                    return Ok(version);
                }
                Err(WriteError::VersionConflict) => retry_after_conflict(attempt).await,
                Err(WriteError::Store(e)) => return Err(e.into()),
                Err(WriteError::IdTaken(other)) => return Err(PlanError::IdTaken(other)),
            }
        }
        Err(PlanError::Contended)
    }

    /// The live plan this caller may see, `None` when there is none, or why the id cannot be
    /// written as a plan: another organisation's plan is a 404, a nested object's id a 405.
    async fn current_or_absent(&self, id: &ObjectId, tenant: &Tenant) -> Result<Option<StoredPlan>, PlanError> {
        if let Some(plan) = self.store.plan(id).await? {
            return if tenant.sees(&plan.org) { Ok(Some(plan)) } else { Err(PlanError::NotFound(id.clone())) };
        }
        if let Some(plan_id) = self.store.owner(id).await?
            && let Some(owner) = self.store.plan(&plan_id).await?.filter(|plan| tenant.sees(&plan.org))
            && let Some(node) = decode(&owner)?.find(id)
        {
            return Err(PlanError::NestedObject { id: id.clone(), object_type: node.object_type(), plan_id });
        }
        Ok(None)
    }

    /// Reads the plan, checks the preconditions, computes the new plan and writes it if the plan
    /// is still at the version read; a lost race starts over from a fresh read.
    async fn read_modify_write(
        &self,
        id: &ObjectId,
        preconditions: &Preconditions,
        caller: &Caller,
        if_absent: IfAbsent,
        next: impl Fn(Option<&StoredPlan>) -> Result<Plan, PlanError>,
    ) -> Result<Written, PlanError> {
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.current_or_absent(id, &caller.tenant).await?;
            if current.is_none() && if_absent == IfAbsent::NotFound {
                return Err(PlanError::NotFound(id.clone()));
            }
            self.check(preconditions, current.as_ref().map(|c| &c.etag))?;
            let plan = next(current.as_ref())?;
            let expected = match &current {
                Some(current) if current.body == plan.to_json() => {
                    // Nothing changes: no new version, no event, the same ETag.
                    return Ok(Written { plan: current.clone().into(), created: false });
                }
                Some(current) => Expected::Version(current.version),
                None => Expected::Absent,
            };
            match self.commit(&plan, expected, caller).await {
                Ok(plan) => return Ok(Written { plan, created: current.is_none() }),
                Err(PlanError::Contended) => retry_after_conflict(attempt).await,
                Err(other) => return Err(other),
            }
        }
        Err(PlanError::Contended)
    }

    /// Preconditions, and the rule that a write to an existing plan must be conditional.
    /// A failed precondition (412) wins over a missing one (428), so `If-None-Match: *` on an
    /// existing plan says "exists" rather than "send If-Match".
    fn check(&self, preconditions: &Preconditions, current: Option<&ETag>) -> Result<(), PlanError> {
        if !preconditions.allow_write(current) {
            return Err(PlanError::PreconditionFailed);
        }
        if current.is_some() && self.policy.require_if_match && preconditions.if_match.is_none() {
            return Err(PlanError::PreconditionRequired);
        }
        Ok(())
    }

    /// One compare-and-set write, then its event. A version conflict comes back as `Contended`
    /// for the caller's retry loop.
    async fn commit(&self, plan: &Plan, expected: Expected, caller: &Caller) -> Result<Representation, PlanError> {
        let body = plan.to_json();
        if body.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge { size: body.len(), limit: MAX_PLAN_BYTES });
        }
        let etag = ETag::of(body.as_bytes());
        let write = PlanWrite {
            id: plan.object_id.clone(),
            org: plan.org.clone(),
            expected,
            body: body.clone(),
            etag: etag.clone(),
            object_ids: plan.object_ids(),
        };
        match self.store.commit(write).await {
            Ok(version) => {
                self.announce(ChangeEvent::upsert(plan.clone(), version, &caller.request_id).traced(caller.trace_id.clone())).await;
                Ok(Representation { body, etag, version, plan_id: plan.object_id.clone() })
            }
            Err(WriteError::VersionConflict) => Err(PlanError::Contended),
            Err(WriteError::IdTaken(id)) => Err(PlanError::IdTaken(id)),
            Err(WriteError::Store(e)) => Err(e.into()),
        }
    }
}

impl PlanWrites {
    /// Publishes a committed change and clears its outbox mark. A failure changes nothing for the
    /// client: the commit stands, the mark stays, and the sweep republishes it.
    async fn announce(&self, event: ChangeEvent) {
        let (id, version) = (event.plan_id.clone(), event.version);
        match self.publisher.publish(&event).await {
            Ok(()) => {
                if let Err(error) = self.store.mark_published(&id, version).await {
                    tracing::warn!(plan = %id, version, %error, "published, but the outbox mark stays; the sweep will publish again");
                }
            }
            Err(error) => {
                ::metrics::counter!(crate::metrics::EVENTS_PENDING.name).increment(1);
                tracing::warn!(plan = %id, version, %error, "change event not published; left for the sweep");
            }
        }
    }
}

/// What a read-modify-write does when the plan does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfAbsent {
    Create,
    NotFound,
}

/// A confined caller writes only plans of its own organisation: 403, since the caller sent the
/// foreign `_org` itself and learns nothing from the refusal.
fn ensure_own_org(plan: &Plan, tenant: &Tenant) -> Result<(), PlanError> {
    if tenant.sees(&plan.org) { Ok(()) } else { Err(PlanError::ForeignOrg(plan.org.clone())) }
}

fn decode(stored: &StoredPlan) -> Result<Plan, PlanError> {
    serde_json::from_str(&stored.body).map_err(corrupt)
}

fn corrupt(error: serde_json::Error) -> PlanError {
    PlanError::Internal(crate::store::StoreError::corrupt(error))
}

/// A compare-and-set that lost to another writer: counted, then tried again after [`backoff`].
async fn retry_after_conflict(attempt: u32) {
    ::metrics::counter!(crate::metrics::STORE_CAS_RETRIES.name).increment(1);
    backoff(attempt).await;
}

/// A short, jittered pause so that racing writers do not retry in lockstep.
async fn backoff(attempt: u32) {
    let jitter = RandomState::new().hash_one(attempt) % 1000;
    let micros = (200 << attempt.min(5)) + jitter;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}
