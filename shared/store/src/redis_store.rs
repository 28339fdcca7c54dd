//! The Redis store (ElastiCache, standalone or cluster mode).
//!
//! Keys, all of one plan under one hash tag so each per-plan step is one atomic script in one slot:
//! - `{p}:plan:{<id>}`      hash: `version`, `committed` (when the latest change was committed,
//!   ms), `seq` and `org` (kept in a tombstone), and while live `body`, `etag`; `pending` only in
//!   plans written before the outbox (the latest version's mark)
//! - `{p}:plan:{<id>}:outbox` hash: every unpublished version of the plan, as committed:
//!   `<version>` -> `<committed ms>:u:<body>` or `<committed ms>:d:` (a delete)
//! - `{p}:plan:{<id>}:ids`  set: every objectId of the live plan
//! - `{p}:obj:{<oid>}`      string: who owns an objectId, `<planId>:<version>` once confirmed,
//!   `<planId>:0:<ms>` while claimed (`<ms>`: the claim's time by that node's `TIME`)
//! - `{<p>:plans}:order`    sorted set: plan id by creation sequence, for newest-first pages
//! - `{<p>:plans}:order:org:<org>`  the same, for one organisation's plans
//! - `{<p>:plans}:seq`      counter for that sequence
//! - `{<p>:plans}:walk`     sorted set of every plan id registered by a create, scored by the
//!   registration time: what the reindex job walks (`{<p>:plans}:all`, the plain set of earlier
//!   versions, is walked too)
//!
//! # objectId ownership
//!
//! An objectId belongs to at most one plan's id set. Owner entries and plans live in different
//! slots (no cross-slot atomicity in a cluster), so a write goes in three steps:
//! 1. **claim** every id: an entry that is free or already this plan's is (re)written as a pending
//!    claim stamped with the owner node's `TIME`. Re-claiming always writes a fresh value, so a
//!    takeover that compared the old value fails. Claims never expire by TTL.
//! 2. **commit** the plan with one compare-and-set script, given the oldest claim time: the script
//!    refuses (`claim-expired`, and the writer claims afresh) when the plan node's `TIME` says that
//!    claim is older than the commit window W. A commit therefore lands within W of its claims, or
//!    never, even when it runs late (a Redis paused with the command in its socket buffer).
//! 3. **confirm** each claim (`<plan>:<version>`), only if the entry is still that very claim, and
//!    release the ids the plan dropped (only confirmed entries of an earlier version).
//!
//! Claims, confirms and releases go one script per hash slot: on a standalone Redis one script
//! for all of a write's ids, on a cluster (where every objectId hashes to its own slot) mostly one
//! per id. Each entry is decided on its own inside the script, exactly as one script per id would.
//! Steps on independent keys are sent together, so the store's part of a create is four round
//! trips (the walk registration with the claims, the commit, the listing order with the confirms,
//! then the outbox mark after the publish) and of a delete three.
//!
//! # At once, on a standalone Redis
//!
//! One node holds every key, so one script can do what the steps do: check every owner entry
//! by the rules above (free or this plan's; another plan's only when stale and not in the
//! holder's id set), then commit, confirm every entry at the new version, release the dropped
//! ids and update the listings, or refuse with nothing changed. A write of at most
//! [`KEYS_PER_SCRIPT`] objectIds goes so (one round trip; it leaves no pending claim, so a lost
//! reply leaves nothing for the walk to confirm); a bigger one goes in the steps, so that no
//! script holds Redis for more than that many entries, and a delete releases its ids in the same
//! script up to that many. The two kinds of writer keep the invariant against each other: each
//! honours the other's entries by the same rules (a test races them). These scripts name the
//! owner, id-set and listing keys they derive from the ids and the organisation inside the script,
//! which only a standalone Redis allows, with Lua functions rendered from [`Keys`].
//!
//! Another plan may take an entry over only when it is stale: a confirmed entry, or a pending claim
//! older than the lease L, *and* the holder's id set does not list the id; the takeover is a
//! compare-and-set on the exact value seen. Why that is enough: the holder can add the id to its
//! set only by a commit within W of a claim, and every claim rewrites the entry. A takeover that
//! saw a claim older than L read it more than L after the claim, so a commit of that claim (within
//! W) came before the read, and the id-set check that follows sees it; a later claim changed the
//! value and the compare-and-set fails. This holds while the clocks of two nodes differ by less
//! than L - W (20 s by default; cluster nodes are NTP-synchronised to milliseconds). So a lost
//! COMMIT reply, a crash between the steps, or a writer that stalls leaves a pending entry that
//! nobody can take while the holder's set lists the id, and that the reindex walk confirms
//! ([`StoreWalk::repair`]). A confirm that finds another plan's entry can only follow a clock skew
//! beyond L - W or a hand-edited key: the write answers an invariant violation (`Corrupt`, logged
//! at error level) and the walk reports or repairs it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{join, try_join, try_join_all};
use plan::probe::{Probe, ProbeError};
use plan::store::{
    Expected, MAX_OUTBOX_PER_PLAN, PageMark, PlanPage, PlanReader, PlanState, PlanWrite, PlanWriter, Repair, StoreError, StoreWalk,
    StoredPlan, Unpublished, WriteError,
};
use plan::{ETag, ObjectId};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, ScriptInvocation, Value};
use tokio::sync::OnceCell;

use crate::config::RedisConfig;

/// The lease L: a pending claim younger than this is never taken over by another plan.
const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// The commit window W: a commit refuses claims older than this. Far above any write's own
/// deadline, far below the lease (the difference is the clock skew between nodes tolerated).
const COMMIT_WINDOW: Duration = Duration::from_secs(10);
/// Claim-and-commit rounds before a write whose claims keep expiring gives up.
const CLAIM_ATTEMPTS: u32 = 3;
/// Owner entries one claim, confirm or release script takes at most: bounds how long one script
/// holds Redis (a plan can carry thousands of objectIds).
const KEYS_PER_SCRIPT: usize = 128;

pub struct RedisStore {
    conn: Connection,
    keys: Keys,
    op_timeout: Duration,
    lease: Duration,
    window: Duration,
    /// Writes of at most [`KEYS_PER_SCRIPT`] objectIds commit in one script (a standalone Redis).
    at_once: bool,
}

impl RedisStore {
    /// Builds the client without connecting: a cold start succeeds while Redis is down, and the
    /// first request that needs Redis answers 503 instead.
    pub fn new(config: &RedisConfig) -> Result<Self, StoreError> {
        let connect_timeout = config.op_timeout.mul_f32(0.4);
        let response_timeout = config.op_timeout.mul_f32(0.6);
        let conn = if config.cluster || config.urls.len() > 1 {
            let mut builder = ClusterClient::builder(config.urls.clone())
                .connection_timeout(connect_timeout)
                .response_timeout(response_timeout)
                .retries(1);
            if let Some(certs) = certificates(config) {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(StoreError::unavailable)?;
            Connection::Cluster { client: Box::new(client), conn: Arc::new(OnceCell::new()) }
        } else {
            let url = config.urls.first().ok_or_else(|| StoreError::unavailable("no Redis URL"))?;
            let client = match certificates(config) {
                Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(StoreError::unavailable)?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(100));
            let manager = ConnectionManager::new_lazy_with_config(client, manager_config).map_err(StoreError::unavailable)?;
            Connection::Single(manager)
        };
        Ok(Self {
            at_once: matches!(conn, Connection::Single(_)),
            conn,
            keys: Keys { prefix: config.key_prefix.clone() },
            op_timeout: config.op_timeout,
            lease: CLAIM_LEASE,
            window: COMMIT_WINDOW,
        })
    }

    /// Writes in the three steps a cluster needs even on a standalone Redis (the tests put the
    /// step protocol through faults that only a proxy in front of one node can inject, and race
    /// it against writes made at once, as a store with both kinds of writer would see).
    pub fn stepwise(mut self) -> Self {
        self.at_once = false;
        self
    }

    /// Another claim lease L and commit window W (tests use seconds, not the default 30 s / 10 s).
    /// The window is kept below the lease; L - W is the clock skew between nodes tolerated.
    pub fn with_lease(mut self, lease: Duration, window: Duration) -> Self {
        self.lease = lease;
        self.window = window.min(lease / 2);
        self
    }

    /// Runs one store operation under the deadline, on a handle to the shared connection.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let work = async {
            let conn = self.conn.handle().await?;
            op(conn).await
        };
        match tokio::time::timeout(self.op_timeout, work).await {
            Ok(result) => result.map_err(store_error),
            Err(_) => Err(StoreError::unavailable(plan::store::TimedOut(self.op_timeout))),
        }
    }

    /// Owner keys in the groups one script may take together, each with its position in `keys`:
    /// on a standalone Redis all of them (in chunks of [`KEYS_PER_SCRIPT`]), on a cluster those of
    /// one hash slot (a script touches one slot only; objectIds hash to their own slots, so there
    /// this is mostly a key per script, as before). On a standalone Redis this cuts a write's
    /// scripts from one per objectId to one per step.
    fn script_groups(&self, keys: Vec<String>) -> Vec<Vec<(usize, String)>> {
        let mut groups: Vec<Vec<(usize, String)>> = Vec::new();
        let mut open: HashMap<Option<Slot>, usize> = HashMap::new();
        let cluster = matches!(self.conn, Connection::Cluster { .. });
        for (position, key) in keys.into_iter().enumerate() {
            let slot = cluster.then(|| Slot::for_key(&key));
            let group = match open.get(&slot).copied().filter(|&g| groups.get(g).is_some_and(|g| g.len() < KEYS_PER_SCRIPT)) {
                Some(g) => g,
                None => {
                    groups.push(Vec::new());
                    open.insert(slot, groups.len() - 1);
                    groups.len() - 1
                }
            };
            if let Some(group) = groups.get_mut(group) {
                group.push((position, key));
            }
        }
        groups
    }

    /// Claims every objectId for `plan`, or names one that another plan holds. Returns each id's
    /// claim time (the owner node's clock, ms).
    async fn claim_all(&self, plan: &ObjectId, ids: &[ObjectId]) -> Result<Vec<u64>, WriteError> {
        let groups = self.script_groups(ids.iter().map(|id| self.keys.owner(id)).collect());
        let replies = self
            .with_conn(|conn| {
                let calls = groups.iter().map(move |group| {
                    let mut conn = conn.clone();
                    let mut invocation = over_keys(&CLAIM, group);
                    invocation.arg(plan.as_str());
                    async move { invocation.invoke_async::<Vec<Vec<Value>>>(&mut conn).await }
                });
                try_join_all(calls)
            })
            .await?;
        let mut outcomes: Vec<Claim> = ids.iter().map(|_| Claim::Unknown).collect();
        for (group, reply) in groups.iter().zip(replies) {
            if reply.len() != group.len() {
                return Err(StoreError::corrupt("a claim script answered for another number of ids").into());
            }
            for ((position, _), answer) in group.iter().zip(reply) {
                if let Some(outcome) = outcomes.get_mut(*position) {
                    *outcome = Claim::from_reply(&answer);
                }
            }
        }
        let mut times = Vec::with_capacity(ids.len());
        for (id, outcome) in ids.iter().zip(outcomes) {
            times.push(match outcome {
                Claim::Ours(at) => at,
                Claim::Held { owner_value, age_ms } => self.take_over_if_stale(plan, id, &owner_value, age_ms).await?,
                Claim::Unknown => return Err(StoreError::corrupt(format!("unexpected claim reply for {id}")).into()),
            });
        }
        Ok(times)
    }

    /// Another plan's entry for `id`: a conflict if that plan holds the id or may still commit it
    /// (a pending claim younger than the lease); a stale leftover is taken over with a
    /// compare-and-set on the exact value seen (see the module documentation for why the id-set
    /// check and the compare-and-set may be two round trips).
    async fn take_over_if_stale(&self, plan: &ObjectId, id: &ObjectId, owner_value: &str, age_ms: Option<u64>) -> Result<u64, WriteError> {
        let taken = || WriteError::IdTaken(id.clone());
        if age_ms.is_some_and(|age| age <= millis(self.lease)) {
            return Err(taken());
        }
        let owner = parse_owner(owner_value).ok_or_else(taken)?.plan;
        let ids_key = self.keys.plan_ids(&owner);
        let still_held: bool = self
            .with_conn(|mut conn| async move { redis::cmd("SISMEMBER").arg(ids_key).arg(id.as_str()).query_async(&mut conn).await })
            .await?;
        if still_held {
            return Err(taken());
        }
        let owner_key = self.keys.owner(id);
        let claimed_at: u64 = self
            .with_conn(|mut conn| async move { TAKE_OVER.key(owner_key).arg(owner_value).arg(plan.as_str()).invoke_async(&mut conn).await })
            .await?;
        if claimed_at > 0 {
            tracing::warn!(object_id = %id, previous = owner_value, "took over a stale objectId entry");
            Ok(claimed_at)
        } else {
            Err(taken())
        }
    }

    /// Keeps the listing order in step with a commit or delete: a new plan joins the global and
    /// its organisation's order, an organisation change moves it, a delete removes it. Best effort
    /// after the commit: pages filter every row on the plan and its organisation, and the walk
    /// restores what a failure left out ([`StoreWalk::repair`]). A removal takes out only the entry
    /// with this plan's own sequence, so a delete racing a re-create (a new sequence) never
    /// removes the live plan.
    async fn update_order(&self, id: &ObjectId, seq: &str, previous_org: Option<&str>, org: Option<&str>) {
        let member = id.as_str();
        let mut commands = Vec::new();
        let mut step = |script: &'static Script, keys: &[String]| {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            invocation.arg(member).arg(seq);
            commands.push(invocation);
        };
        match (previous_org, org) {
            (None, Some(org)) => step(&LISTING_ADD, &[self.keys.order(), self.keys.org_order(org)]),
            (Some(previous), Some(org)) if previous != org => {
                step(&LISTING_DROP, &[self.keys.org_order(previous)]);
                step(&LISTING_ADD, &[self.keys.org_order(org)]);
            }
            (Some(previous), None) => step(&LISTING_DROP, &[self.keys.order(), self.keys.org_order(previous)]),
            _ => return,
        }
        let result = self
            .with_conn(|conn| {
                try_join_all(commands.iter().map(move |cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.invoke_async::<i64>(&mut conn).await }
                }))
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(plan = %id, %error, "listing order not updated; the reindex walk restores it");
        }
    }

    /// After a commit at `version`: confirm the claims of the ids the plan holds, release those it
    /// dropped. An unreachable Redis is logged, not returned: the write is committed, the pending
    /// claims stay protected by the plan's id set, and the walk confirms them later. A claim found
    /// in another plan's hands is an invariant violation, returned as `Corrupt`.
    async fn settle_owners(&self, plan: &ObjectId, version: u64, held: &[(ObjectId, u64)], dropped: &[String]) -> Result<(), WriteError> {
        let confirm_groups = self.script_groups(held.iter().map(|(id, _)| self.keys.owner(id)).collect());
        let release_groups = self.script_groups(dropped.iter().map(|id| self.keys.owner_raw(id)).collect());
        let result = self
            .with_conn(|conn| {
                let release_conn = conn.clone();
                let confirms = confirm_groups.iter().map(move |group| {
                    let mut conn = conn.clone();
                    let mut invocation = over_keys(&CONFIRM, group);
                    invocation.arg(plan.as_str()).arg(version);
                    for (position, _) in group {
                        invocation.arg(held.get(*position).map_or(0, |(_, claimed_at)| *claimed_at));
                    }
                    async move {
                        let answers: Vec<i64> = invocation.invoke_async(&mut conn).await?;
                        // 0: another plan's entry (an invariant violation); 1 and 2 are fine.
                        let violations = group.iter().zip(answers).filter(|(_, answer)| *answer == 0);
                        Ok::<_, RedisError>(
                            violations.filter_map(|((position, _), _)| held.get(*position).map(|(id, _)| id.clone())).collect::<Vec<_>>(),
                        )
                    }
                });
                let releases = release_groups.iter().map(move |group| {
                    let mut conn = release_conn.clone();
                    let mut invocation = over_keys(&RELEASE, group);
                    invocation.arg(plan.as_str()).arg(version);
                    async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await.map(drop) }
                });
                async move {
                    let (confirmed, _) = try_join(try_join_all(confirms), try_join_all(releases)).await?;
                    Ok(confirmed.into_iter().flatten().collect::<Vec<ObjectId>>())
                }
            })
            .await;
        match result {
            Ok(violations) if violations.is_empty() => Ok(()),
            Ok(violations) => {
                tracing::error!(%plan, version, object_ids = ?violations, "objectId entries belong to another plan after commit: ownership invariant violated");
                Err(StoreError::corrupt(format!("objectId ownership invariant violated for {violations:?} of plan {plan}")).into())
            }
            Err(error) => {
                tracing::warn!(%plan, %error, "could not settle objectId entries after commit; the walk confirms them");
                Ok(())
            }
        }
    }
}

impl RedisStore {
    /// A write on a standalone Redis in one script (see "At once" in the module documentation).
    async fn commit_at_once(&self, write: &PlanWrite) -> Result<u64, WriteError> {
        let keys = [
            self.keys.plan(&write.id),
            self.keys.plan_ids(&write.id),
            self.keys.outbox(&write.id),
            self.keys.seq(),
            self.keys.walk(),
            self.keys.order(),
        ];
        let reply: Vec<Value> = self
            .with_conn(|mut conn| {
                let mut invocation = COMMIT_AT_ONCE.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                for id in &write.object_ids {
                    invocation.key(self.keys.owner(id));
                }
                invocation
                    .arg(expected_arg(write.expected))
                    .arg(&write.body)
                    .arg(write.etag.to_string())
                    .arg(write.id.as_str())
                    .arg(&write.org)
                    .arg(&self.keys.prefix)
                    .arg(millis(self.lease));
                for id in &write.object_ids {
                    invocation.arg(id.as_str());
                }
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        let bad = || StoreError::corrupt("unexpected script reply");
        let text = |v: &Value| redis::from_redis_value_ref::<String>(v).map_err(|_| bad());
        let (version, taken_over, unreleased) = match reply.as_slice() {
            [Value::Int(0)] => return Err(WriteError::VersionConflict),
            [Value::Int(0), status, id] if text(status)? == "taken" => {
                let id = text(id)?;
                let id = write.object_ids.iter().find(|known| known.as_str() == id).ok_or_else(bad)?;
                return Err(WriteError::IdTaken(id.clone()));
            }
            [Value::Int(version), Value::Int(taken), rest @ ..] => {
                let taken = usize::try_from(*taken).map_err(|_| bad())?;
                let (pairs, unreleased) = rest.split_at_checked(2 * taken).ok_or_else(bad)?;
                (u64::try_from(*version).map_err(|_| bad())?, pairs, unreleased)
            }
            _ => return Err(bad().into()),
        };
        for pair in taken_over.chunks_exact(2) {
            if let [id, previous] = pair {
                tracing::warn!(object_id = text(id)?, previous = text(previous)?, "took over a stale objectId entry");
            }
        }
        if !unreleased.is_empty() {
            let dropped = unreleased.iter().map(text).collect::<Result<Vec<_>, _>>()?;
            self.settle_owners(&write.id, version, &[], &dropped).await?;
        }
        Ok(version)
    }

    /// A delete on a standalone Redis in one script: the tombstone, the releases (up to
    /// [`KEYS_PER_SCRIPT`] of them; the writer releases the rest) and the listings.
    async fn delete_at_once(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError> {
        let keys = [self.keys.plan(id), self.keys.plan_ids(id), self.keys.outbox(id), self.keys.order()];
        let reply: Vec<Value> = self
            .with_conn(|mut conn| {
                let mut invocation = DELETE_AT_ONCE.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(expected).arg(id.as_str()).arg(&self.keys.prefix);
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        let (tombstone_version, unreleased) = versioned_ids(&reply)?;
        if tombstone_version == 0 {
            return Err(WriteError::VersionConflict);
        }
        if !unreleased.is_empty() {
            self.settle_owners(id, tombstone_version, &[], &unreleased).await?;
        }
        Ok(tombstone_version)
    }
}

#[async_trait]
impl PlanReader for RedisStore {
    #[tracing::instrument(name = "redis.plan", skip_all, fields(plan = %id))]
    async fn plan(&self, id: &ObjectId) -> Result<Option<StoredPlan>, StoreError> {
        let key = self.keys.plan(id);
        let row: PlanRow = self.with_conn(|mut conn| async move { plan_row(key).query_async(&mut conn).await }).await?;
        stored_plan(id.clone(), row)
    }

    #[tracing::instrument(name = "redis.owner", skip_all, fields(object_id = %object_id))]
    async fn owner(&self, object_id: &ObjectId) -> Result<Option<ObjectId>, StoreError> {
        let key = self.keys.owner(object_id);
        let value: Option<String> =
            self.with_conn(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }).await?;
        Ok(value.as_deref().and_then(parse_owner).map(|entry| entry.plan))
    }

    #[tracing::instrument(name = "redis.page", skip_all, fields(limit = limit))]
    async fn page(&self, org: Option<&str>, after: Option<PageMark>, limit: usize) -> Result<PlanPage, StoreError> {
        let order = match org {
            Some(org) => self.keys.org_order(org),
            None => self.keys.order(),
        };
        let max = after.map_or_else(|| "+inf".to_owned(), |mark| format!("({}", mark.0));
        let entries: Vec<(String, u64)> = self
            .with_conn(|mut conn| async move {
                redis::cmd("ZRANGE")
                    .arg(order)
                    .arg(max)
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let more = entries.len() > limit;
        let entries = entries.get(..limit).unwrap_or(entries.as_slice());
        let ids: Vec<ObjectId> = entries.iter().filter_map(|(id, _)| ObjectId::parse(id).ok()).collect();
        let rows: Vec<PlanRow> = self
            .with_conn(|conn| {
                try_join_all(ids.iter().map(move |id| {
                    let mut conn = conn.clone();
                    let key = self.keys.plan(id);
                    async move { plan_row(key).query_async(&mut conn).await }
                }))
            })
            .await?;
        let mut plans = Vec::with_capacity(rows.len());
        for (id, row) in ids.into_iter().zip(rows) {
            // A plan deleted since the range was read is simply not on the page, nor is a leftover
            // entry for a plan that now belongs to another organisation (a listing update that
            // failed after its commit, and the id since re-created elsewhere).
            plans.extend(stored_plan(id, row)?.filter(|plan| org.is_none_or(|org| plan.org == org)));
        }
        let next = if more { entries.last().map(|(_, seq)| PageMark(*seq)) } else { None };
        Ok(PlanPage { plans, next })
    }
}

#[async_trait]
impl PlanWriter for RedisStore {
    #[tracing::instrument(name = "redis.commit", skip_all, fields(plan = %write.id, object_ids = write.object_ids.len()))]
    async fn commit(&self, write: PlanWrite) -> Result<u64, WriteError> {
        if self.at_once && write.object_ids.len() <= KEYS_PER_SCRIPT {
            return self.commit_at_once(&write).await;
        }
        let expected = expected_arg(write.expected);
        let (plan_key, ids_key, outbox_key) = (self.keys.plan(&write.id), self.keys.plan_ids(&write.id), self.keys.outbox(&write.id));
        let mut attempt = 1;
        let (claims, reply) = loop {
            // A create registers the id for the reindex walk before its commit, so a crash right
            // after the commit cannot hide the plan from the sweep; the registration time counts
            // as a claim (the commit refuses it past the window), which is what lets the walk
            // prune the registrations of creates that never committed.
            // The registration and the claims touch different keys: one round trip for both.
            let register = async {
                match write.expected {
                    Expected::Absent => {
                        let (seq_key, walk_key, id) = (self.keys.seq(), self.keys.walk(), write.id.as_str());
                        let (seq, at): (u64, u64) = self
                            .with_conn(|mut conn| async move { REGISTER.key(seq_key).key(walk_key).arg(id).invoke_async(&mut conn).await })
                            .await?;
                        Ok::<_, WriteError>((seq.to_string(), Some(at)))
                    }
                    Expected::Version(_) => Ok((String::new(), None)),
                }
            };
            let ((seq, registered_at), times) = try_join(register, self.claim_all(&write.id, &write.object_ids)).await?;
            let oldest = times.iter().copied().chain(registered_at).min().map(|t| t.to_string()).unwrap_or_default();
            let reply: Vec<Value> = self
                .with_conn(|mut conn| {
                    let mut invocation = COMMIT.key(plan_key.as_str());
                    invocation
                        .key(ids_key.as_str())
                        .key(outbox_key.as_str())
                        .arg(&expected)
                        .arg(&write.body)
                        .arg(write.etag.to_string())
                        .arg(&seq)
                        .arg(&write.org)
                        .arg(&oldest)
                        .arg(millis(self.window));
                    for id in &write.object_ids {
                        invocation.arg(id.as_str());
                    }
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            if !claim_expired(&reply) {
                break (times, reply);
            }
            tracing::warn!(plan = %write.id, attempt, "claims older than the commit window; claiming again");
            if attempt == CLAIM_ATTEMPTS {
                return Err(StoreError::unavailable("objectId claims kept expiring before the commit").into());
            }
            attempt += 1;
        };
        let (version, answer) = versioned_ids(&reply)?;
        let [seq, previous_org, dropped @ ..] = answer.as_slice() else { return Err(WriteError::VersionConflict) };
        let previous_org = Some(previous_org.as_str()).filter(|org| !org.is_empty());
        let held: Vec<(ObjectId, u64)> = write.object_ids.iter().cloned().zip(claims).collect();
        // The listings and the owner entries are independent keys: one round trip for both.
        let ((), settled) =
            join(self.update_order(&write.id, seq, previous_org, Some(&write.org)), self.settle_owners(&write.id, version, &held, dropped))
                .await;
        settled?;
        Ok(version)
    }

    #[tracing::instrument(name = "redis.delete", skip_all, fields(plan = %id, expected = expected))]
    async fn delete(&self, id: &ObjectId, expected: u64) -> Result<u64, WriteError> {
        if self.at_once {
            return self.delete_at_once(id, expected).await;
        }
        let (plan_key, ids_key, outbox_key) = (self.keys.plan(id), self.keys.plan_ids(id), self.keys.outbox(id));
        let reply: Vec<Value> = self
            .with_conn(
                |mut conn| async move { DELETE.key(plan_key).key(ids_key).key(outbox_key).arg(expected).invoke_async(&mut conn).await },
            )
            .await?;
        let (tombstone_version, answer) = versioned_ids(&reply)?;
        let [org, seq, released @ ..] = answer.as_slice() else { return Err(WriteError::VersionConflict) };
        let ((), settled) =
            join(self.update_order(id, seq, Some(org.as_str()), None), self.settle_owners(id, tombstone_version, &[], released)).await;
        settled?;
        Ok(tombstone_version)
    }

    #[tracing::instrument(name = "redis.mark_published", skip_all, fields(plan = %id, version = version))]
    async fn mark_published(&self, id: &ObjectId, version: u64) -> Result<(), StoreError> {
        let (key, outbox) = (self.keys.plan(id), self.keys.outbox(id));
        self.with_conn(|mut conn| async move { MARK_PUBLISHED.key(key).key(outbox).arg(version).invoke_async::<i64>(&mut conn).await })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl StoreWalk for RedisStore {
    #[tracing::instrument(name = "redis.walk", skip_all, fields(batch = batch))]
    async fn walk(&self, cursor: Option<String>, batch: usize) -> Result<(Vec<PlanState>, Option<String>), StoreError> {
        // Two phases: the scored registrations (`z:<cursor>`), then the plain set earlier versions
        // of this store kept (`s:<cursor>`), until nothing is left in it.
        let cursor = cursor.unwrap_or_else(|| "z:0".to_owned());
        let (phase, position) = cursor.split_once(':').ok_or_else(|| StoreError::corrupt("not a walk cursor"))?;
        let (ids, next, registrations) = match phase {
            "z" => {
                let (walk_key, position) = (self.keys.walk(), position.to_owned());
                let (next, flat): (String, Vec<String>) = self
                    .with_conn(|mut conn| async move {
                        redis::cmd("ZSCAN").arg(walk_key).arg(position).arg("COUNT").arg(batch.max(1)).query_async(&mut conn).await
                    })
                    .await?;
                let pairs: Vec<(String, String)> =
                    flat.chunks_exact(2).filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone()))).collect();
                let next = if next == "0" { "s:0".to_owned() } else { format!("z:{next}") };
                (pairs.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), Some(next), pairs)
            }
            "s" => {
                let (legacy, position) = (self.keys.all(), position.to_owned());
                let (next, ids): (String, Vec<String>) = self
                    .with_conn(|mut conn| async move {
                        redis::cmd("SSCAN").arg(legacy).arg(position).arg("COUNT").arg(batch.max(1)).query_async(&mut conn).await
                    })
                    .await?;
                (ids, Some(next).filter(|n| n != "0").map(|n| format!("s:{n}")), Vec::new())
            }
            _ => return Err(StoreError::corrupt("not a walk cursor")),
        };
        let ids: Vec<ObjectId> = ids.iter().filter_map(|id| ObjectId::parse(id).ok()).collect();
        let rows: Vec<Vec<Value>> = self
            .with_conn(|conn| {
                try_join_all(ids.iter().map(move |id| {
                    let mut conn = conn.clone();
                    let (key, outbox) = (self.keys.plan(id), self.keys.outbox(id));
                    async move { WALK_ROW.key(key).key(outbox).invoke_async(&mut conn).await }
                }))
            })
            .await?;
        let mut states = Vec::with_capacity(ids.len());
        let mut never_committed = Vec::new();
        for (id, reply) in ids.into_iter().zip(rows) {
            let (row, pending, committed_at_ms, outbox) = walk_row(&id, &reply)?;
            // An id whose first write never committed has no version: nothing to walk.
            let Some(version) = row.0 else {
                never_committed.push(id);
                continue;
            };
            let plan = stored_plan(id.clone(), row)?;
            let unpublished = pending.is_some() || !outbox.is_empty();
            states.push(PlanState { id, version, plan, unpublished, outbox, committed_at_ms });
        }
        self.prune_registrations(&never_committed, &registrations).await?;
        Ok((states, next))
    }

    #[tracing::instrument(name = "redis.repair", skip_all, fields(plans = plans.len()))]
    async fn repair(&self, plans: &[PlanState]) -> Result<Vec<Repair>, StoreError> {
        let mut repairs = Vec::new();
        for state in plans {
            if let Some(plan) = &state.plan {
                repairs.extend(self.repair_owners(plan).await?);
            }
            repairs.extend(self.repair_listings(state).await?);
        }
        for repair in &repairs {
            match repair {
                Repair::SharedObjectId { .. } => tracing::error!(%repair, "ownership invariant violated"),
                _ => tracing::warn!(%repair, "repaired"),
            }
        }
        Ok(repairs)
    }
}

impl RedisStore {
    /// Takes out the walk registrations of creates that never committed (refused, conflicting, or
    /// crashed), once older than the lease: such a create can no longer commit, since its commit
    /// counts the registration as a claim and refuses it past the window. The removal compares the
    /// score seen, so a create of the same id registering again meanwhile keeps its entry, and the
    /// plan is read again after it: a commit that landed anyway is registered back.
    async fn prune_registrations(&self, never_committed: &[ObjectId], registrations: &[(String, String)]) -> Result<(), StoreError> {
        let mut pruned = 0;
        for id in never_committed {
            let Some((_, score)) = registrations.iter().find(|(member, _)| member == id.as_str()) else { continue };
            let (walk_key, member) = (self.keys.walk(), id.as_str());
            let removed: i64 = self
                .with_conn(|mut conn| async move {
                    PRUNE.key(walk_key).arg(member).arg(score).arg(millis(self.lease)).invoke_async(&mut conn).await
                })
                .await?;
            if removed == 0 {
                continue;
            }
            let key = self.keys.plan(id);
            let version: Option<u64> =
                self.with_conn(|mut conn| async move { redis::cmd("HGET").arg(key).arg("version").query_async(&mut conn).await }).await?;
            if version.is_some() {
                let walk_key = self.keys.walk();
                let _: i64 = self
                    .with_conn(
                        |mut conn| async move { redis::cmd("ZADD").arg(walk_key).arg(score).arg(member).query_async(&mut conn).await },
                    )
                    .await?;
            } else {
                pruned += 1;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "walk registrations of creates that never committed removed");
        }
        Ok(())
    }

    /// A live plan is in the global listing and its organisation's at its creation sequence; a
    /// deleted one is in neither (its tombstone keeps the sequence and organisation it had). Both
    /// steps are conditional on the sequence, so a re-created plan (a new sequence) is untouched.
    async fn repair_listings(&self, state: &PlanState) -> Result<Option<Repair>, StoreError> {
        let key = self.keys.plan(&state.id);
        // Read afresh, not from the walked state: a plan re-created since has a new sequence.
        let (seq, org, live): (Option<String>, Option<String>, bool) =
            self.with_conn(|mut conn| async move { LISTED_AS.key(key).invoke_async(&mut conn).await }).await?;
        let (Some(seq), Some(org)) = (seq, org) else { return Ok(None) };
        let member = state.id.as_str();
        let script: &Script = if live { &LISTING_ADD } else { &LISTING_DROP };
        let (order, org_order) = (self.keys.order(), self.keys.org_order(&org));
        let changed: i64 = self
            .with_conn(|mut conn| async move { script.key(order).key(org_order).arg(member).arg(&seq).invoke_async(&mut conn).await })
            .await?;
        Ok((changed > 0).then(|| match live {
            true => Repair::ListingRestored { plan: state.id.clone(), org },
            false => Repair::ListingRemoved { plan: state.id.clone(), listing: format!("all and {org}") },
        }))
    }

    /// Every id in the plan's id set must have an owner entry naming the plan. Entries that a lost
    /// reply or a crash left (missing, a claim older than the lease, another plan's leftover that
    /// plan no longer lists) are confirmed for the plan with a compare-and-set on the value seen,
    /// so a write racing the walk wins.
    async fn repair_owners(&self, plan: &StoredPlan) -> Result<Vec<Repair>, StoreError> {
        let ids_key = self.keys.plan_ids(&plan.id);
        let ids: Vec<String> =
            self.with_conn(|mut conn| async move { redis::cmd("SMEMBERS").arg(ids_key).query_async(&mut conn).await }).await?;
        let ids: Vec<ObjectId> = ids.iter().filter_map(|id| ObjectId::parse(id).ok()).collect();
        let entries: Vec<(String, u64)> = self
            .with_conn(|conn| {
                try_join_all(ids.iter().map(move |id| {
                    let mut conn = conn.clone();
                    let key = self.keys.owner(id);
                    async move { OWNER_STATE.key(key).invoke_async::<(String, u64)>(&mut conn).await }
                }))
            })
            .await?;
        let confirmed = format!("{}:{}", plan.id, plan.version);
        let mut repairs = Vec::new();
        for (object_id, (value, now)) in ids.into_iter().zip(entries) {
            let entry = parse_owner(&value);
            let stale_claim = |entry: &OwnerEntry| entry.claimed_at.is_some_and(|at| now.saturating_sub(at) > millis(self.lease));
            match &entry {
                Some(entry) if entry.plan == plan.id && (entry.claimed_at.is_none() || !stale_claim(entry)) => continue,
                Some(entry) if entry.plan != plan.id => {
                    if entry.claimed_at.is_some() && !stale_claim(entry) {
                        continue; // another plan's claim in flight: it cannot commit the id, the next walk looks again
                    }
                    let other_ids = self.keys.plan_ids(&entry.plan);
                    let member = object_id.as_str();
                    let shared: bool = self
                        .with_conn(
                            |mut conn| async move { redis::cmd("SISMEMBER").arg(other_ids).arg(member).query_async(&mut conn).await },
                        )
                        .await?;
                    if shared {
                        repairs.push(Repair::SharedObjectId { object_id, plans: [plan.id.clone(), entry.plan.clone()] });
                        continue;
                    }
                }
                _ => {}
            }
            let key = self.keys.owner(&object_id);
            let (seen, new) = (value.as_str(), confirmed.as_str());
            let swapped: i64 =
                self.with_conn(|mut conn| async move { OWNER_CAS.key(key).arg(seen).arg(new).invoke_async(&mut conn).await }).await?;
            if swapped == 1 {
                repairs.push(Repair::OwnerRestored { plan: plan.id.clone(), object_id, found: Some(value).filter(|v| !v.is_empty()) });
            }
        }
        Ok(repairs)
    }
}

#[async_trait]
impl Probe for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    #[tracing::instrument(name = "redis.ping", skip_all)]
    async fn ping(&self) -> Result<(), ProbeError> {
        let pong: String = self.with_conn(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await }).await?;
        if pong == "PONG" { Ok(()) } else { Err(ProbeError::new(format!("PING answered {pong:?}"))) }
    }
}

/// An invocation of `script` with the owner keys of one [`RedisStore::script_groups`] group.
fn over_keys<'s>(script: &'s Script, group: &[(usize, String)]) -> ScriptInvocation<'s> {
    let mut invocation = script.prepare_invoke();
    for (_, key) in group {
        invocation.key(key);
    }
    invocation
}

fn certificates(config: &RedisConfig) -> Option<redis::TlsCertificates> {
    config.ca_pem.clone().map(|root| redis::TlsCertificates { client_tls: None, root_cert: Some(root) })
}

/// A walked plan: its row, the mark from before the outbox, its commit time, and its outbox in
/// version order.
type WalkRow = (PlanRow, Option<u64>, Option<i64>, Vec<Unpublished>);

fn walk_row(id: &ObjectId, reply: &[Value]) -> Result<WalkRow, StoreError> {
    let bad = || StoreError::corrupt(format!("unexpected walk reply for {id}"));
    let text = |v: &Value| redis::from_redis_value_ref::<Option<String>>(v).map_err(|_| bad());
    let [version, body, etag, org, pending, committed, outbox @ ..] = reply else { return Err(bad()) };
    let number = |v: &Value| text(v).map(|t| t.and_then(|t| t.parse::<i64>().ok()));
    let row = (number(version)?.and_then(|v| u64::try_from(v).ok()), text(body)?, text(etag)?, text(org)?);
    let pending = number(pending)?.and_then(|v| u64::try_from(v).ok());
    let mut entries = Vec::with_capacity(outbox.len() / 2);
    for pair in outbox.chunks_exact(2) {
        let [version, entry] = pair else { return Err(bad()) };
        let version: u64 = text(version)?.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let entry = text(entry)?.ok_or_else(bad)?;
        let mut parts = entry.splitn(3, ':');
        let (at, kind, rest) = (parts.next(), parts.next(), parts.next());
        let body = match (kind, rest) {
            (Some("u"), Some(body)) => Some(body.to_owned()),
            (Some("d"), _) => None,
            _ => return Err(bad()),
        };
        entries.push(Unpublished { version, body, committed_at_ms: at.and_then(|at| at.parse().ok()) });
    }
    entries.sort_by_key(|e| e.version);
    Ok((row, pending, number(committed)?, entries))
}

/// `version`, `body`, `etag`, `org` of a plan hash; all but the version are absent once deleted.
type PlanRow = (Option<u64>, Option<String>, Option<String>, Option<String>);

fn plan_row(key: String) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(key).arg("version").arg("body").arg("etag").arg("org");
    cmd
}

fn stored_plan(id: ObjectId, (version, body, etag, org): PlanRow) -> Result<Option<StoredPlan>, StoreError> {
    let (Some(version), Some(body), Some(etag), Some(org)) = (version, body, etag, org) else { return Ok(None) };
    let etag = ETag::parse(&etag).map_err(|_| StoreError::corrupt(format!("stored ETag of {id} is malformed")))?;
    Ok(Some(StoredPlan { id, org, version, etag, body }))
}

/// `{version, id, id, ...}` as the commit and delete scripts answer; version 0 is a conflict.
fn versioned_ids(reply: &[Value]) -> Result<(u64, Vec<String>), StoreError> {
    let bad = || StoreError::corrupt("unexpected script reply");
    let (first, rest) = reply.split_first().ok_or_else(bad)?;
    let version = match first {
        Value::Int(v) => u64::try_from(*v).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let ids = rest.iter().map(|v| redis::from_redis_value_ref::<String>(v).map_err(|_| bad())).collect::<Result<_, _>>()?;
    Ok((version, ids))
}

/// An owner entry: `<planId>:<version>` once confirmed, `<planId>:0:<ms>` while claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerEntry {
    plan: ObjectId,
    /// The confirmed version, 0 while claimed.
    version: u64,
    /// When a pending claim was made (ms, the owner node's clock).
    claimed_at: Option<u64>,
}

fn parse_owner(value: &str) -> Option<OwnerEntry> {
    let (plan, rest) = value.split_once(':')?;
    let plan = ObjectId::parse(plan).ok()?;
    Some(match rest.split_once(':') {
        Some(("0", at)) => OwnerEntry { plan, version: 0, claimed_at: Some(at.parse().ok()?) },
        Some(_) => return None,
        None => OwnerEntry { plan, version: rest.parse().ok()?, claimed_at: None },
    })
}

/// The commit scripts' `expected` argument.
fn expected_arg(expected: Expected) -> String {
    match expected {
        Expected::Absent => "absent".to_owned(),
        Expected::Version(v) => v.to_string(),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The commit script's answer when the oldest claim is older than the commit window.
fn claim_expired(reply: &[Value]) -> bool {
    matches!(reply, [Value::Int(0), status] if redis::from_redis_value_ref::<String>(status).is_ok_and(|s| s == "claim-expired"))
}

enum Claim {
    /// Claimed now for this plan, at this time.
    Ours(u64),
    /// Another plan's entry, with the age of its claim when pending (`None`: confirmed).
    Held {
        owner_value: String,
        age_ms: Option<u64>,
    },
    Unknown,
}

impl Claim {
    fn from_reply(reply: &[Value]) -> Self {
        let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
        match reply {
            [status, Value::Int(at)] if text(status).as_deref() == Some("ours") => Self::Ours(u64::try_from(*at).unwrap_or_default()),
            [status, owner, Value::Int(age)] if text(status).as_deref() == Some("held") => match text(owner) {
                Some(owner_value) => Self::Held { owner_value, age_ms: u64::try_from(*age).ok() },
                None => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }
}

fn store_error(error: RedisError) -> StoreError {
    match error.kind() {
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => StoreError::corrupt(error),
        _ => StoreError::unavailable(error),
    }
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn plan(&self, id: &ObjectId) -> String {
        format!("{}:plan:{{{id}}}", self.prefix)
    }

    fn plan_ids(&self, id: &ObjectId) -> String {
        self.plan_ids_raw(id.as_str())
    }

    fn plan_ids_raw(&self, id: &str) -> String {
        format!("{}:plan:{{{id}}}:ids", self.prefix)
    }

    fn outbox(&self, id: &ObjectId) -> String {
        format!("{}:plan:{{{id}}}:outbox", self.prefix)
    }

    fn owner(&self, id: &ObjectId) -> String {
        self.owner_raw(id.as_str())
    }

    /// Ids read back from our own scripts were ObjectIds when written.
    fn owner_raw(&self, id: &str) -> String {
        format!("{}:obj:{{{id}}}", self.prefix)
    }

    fn org_order(&self, org: &str) -> String {
        format!("{{{}:plans}}:order:org:{org}", self.prefix)
    }

    fn order(&self) -> String {
        format!("{{{}:plans}}:order", self.prefix)
    }

    /// The plain set of plan ids earlier versions of this store kept for the walk; still walked.
    fn all(&self) -> String {
        format!("{{{}:plans}}:all", self.prefix)
    }

    /// Sorted set: every registered plan id, scored by its registration time (ms).
    fn walk(&self) -> String {
        format!("{{{}:plans}}:walk", self.prefix)
    }

    fn seq(&self) -> String {
        format!("{{{}:plans}}:seq", self.prefix)
    }
}

/// Lua functions naming the keys the at-once scripts derive inside themselves (`owner_key(id)`,
/// `ids_key(plan)`, `org_order_key(org)`, from the script's local `prefix`), rendered from the
/// [`Keys`] methods themselves so that the scripts and the client cannot disagree on a key.
fn lua_key_functions() -> String {
    // Render a method with marks for the prefix and its argument, then splice the Lua variables in.
    const PREFIX: &str = "\u{1}";
    const ARG: &str = "\u{2}";
    let marked = Keys { prefix: PREFIX.to_owned() };
    let lua = |key: String| {
        let quoted = |part: &str| format!("'{part}'");
        let with_arg: Vec<String> =
            key.split(PREFIX).map(|piece| piece.split(ARG).map(quoted).collect::<Vec<_>>().join(" .. arg .. ")).collect();
        with_arg.join(" .. prefix .. ")
    };
    format!(
        "local function owner_key(arg) return {} end\nlocal function ids_key(arg) return {} end\nlocal function org_order_key(arg) return {} end\n",
        lua(marked.owner_raw(ARG)),
        lua(marked.plan_ids_raw(ARG)),
        lua(marked.org_order(ARG)),
    )
}

/// The shared connection: a reconnecting multiplexed connection, or a cluster connection that is
/// made on first use (so a cold start never waits for, or fails on, an unreachable cluster).
enum Connection {
    Single(ConnectionManager),
    Cluster { client: Box<ClusterClient>, conn: Arc<OnceCell<ClusterConnection>> },
}

impl Connection {
    async fn handle(&self) -> Result<Conn, RedisError> {
        match self {
            Self::Single(manager) => Ok(Conn::Single(manager.clone())),
            Self::Cluster { client, conn } => {
                let conn = conn.get_or_try_init(|| client.get_async_connection()).await?;
                Ok(Conn::Cluster(conn.clone()))
            }
        }
    }
}

/// A cheap clone of the shared connection; commands from clones share one multiplexed socket.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// `now`: this node's clock in ms. Scripts are replicated by their effects (Redis 7), so reading
/// `TIME` before writing is allowed.
const NOW_MS: &str = "local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
";

/// Puts `new_version` in the outbox (KEYS[3]) as committed (`body`, false for a delete), keeping at
/// most MAX_OUTBOX_PER_PLAN versions: the oldest superseded ones go first.
const HOLD: &str = "local entry = string.format('%d', now) .. (body and (':u:' .. body) or ':d:')
redis.call('HSET', KEYS[3], new_version, entry)
if redis.call('HLEN', KEYS[3]) > MAX_OUTBOX then
  local held = redis.call('HKEYS', KEYS[3])
  local versions = {}
  for _, v in ipairs(held) do table.insert(versions, tonumber(v)) end
  table.sort(versions)
  for i = 1, #versions - MAX_OUTBOX do redis.call('HDEL', KEYS[3], string.format('%d', versions[i])) end
end
";

/// KEYS: owner entries (of one slot). ARGV: plan id.
/// Answers, per key, {"ours", claim time} (free, or this plan's own entry: rewritten as a fresh
/// claim either way) or {"held", value, age of the pending claim in ms, or -1 when confirmed}.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local answers = {{}}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  local held = nil
  if value then
    local owner, rest = string.match(value, '^([^:]+):(.*)$')
    if owner ~= ARGV[1] then
      local claimed = string.match(rest or '', '^0:(%d+)$')
      local age = -1
      if claimed then age = math.max(now - tonumber(claimed), 0) end
      held = {{'held', value, age}}
    end
  end
  if held then
    answers[i] = held
  else
    redis.call('SET', key, ARGV[1] .. ':0:' .. string.format('%d', now))
    answers[i] = {{'ours', now}}
  end
end
return answers
"
    ))
});

/// KEYS: owner entry. ARGV: the stale value seen, new plan id. Compare-and-set to a fresh claim;
/// answers the claim time, or 0 when the entry changed.
static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. ':0:' .. string.format('%d', now))
return now
"
    ))
});

/// KEYS: owner entries (of one slot). ARGV: plan id, committed version, then for each key the
/// claim time this write made. Confirms each entry at this version if it is still that claim (or
/// an earlier confirmed version of this plan). Answers, per key, 1 (confirmed, or a later version
/// already is), 2 (a newer claim of this plan: its own write confirms it), 0 (another plan's
/// entry: an invariant violation).
static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function confirm(key, claimed_at)
  local value = redis.call('GET', key)
  if value then
    local owner, rest = string.match(value, '^([^:]+):(.*)$')
    if owner ~= ARGV[1] then return 0 end
    local claimed = string.match(rest, '^0:(%d+)$')
    if claimed then
      if claimed ~= claimed_at then return 2 end
    elseif (tonumber(rest) or 0) >= tonumber(ARGV[2]) then
      return 1
    end
  end
  redis.call('SET', key, ARGV[1] .. ':' .. ARGV[2])
  return 1
end
local answers = {}
for i, key in ipairs(KEYS) do answers[i] = confirm(key, ARGV[2 + i]) end
return answers
",
    )
});

/// KEYS: owner entries (of one slot). ARGV: plan id, the version that dropped the ids. Deletes each
/// entry only if an earlier confirmed version of this plan holds it (never a pending claim, never
/// a later one). Answers, per key, 1 if deleted.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local plan = ARGV[1]
{RELEASE_FN}
return release(KEYS, tonumber(ARGV[2]))
"
    ))
});

/// `release(keys, version)`: deletes each owner entry of `keys` (of one slot) only if an earlier
/// confirmed version of the local `plan` holds it (never a pending claim, never a later one);
/// answers, per key, 1 if deleted. One MGET and one DEL for all of them.
const RELEASE_FN: &str = "local function release(keys, version)
  local answers, gone = {}, {}
  if #keys == 0 then return answers end
  local values = redis.call('MGET', unpack(keys))
  for i, key in ipairs(keys) do
    local owner, confirmed = string.match(values[i] or '', '^([^:]+):(%d+)$')
    confirmed = tonumber(confirmed)
    answers[i] = 0
    if owner == plan and confirmed and confirmed > 0 and confirmed < version then
      answers[i] = 1
      table.insert(gone, key)
    end
  end
  if #gone > 0 then redis.call('DEL', unpack(gone)) end
  return answers
end
";

/// What both at-once scripts use, given their locals `plan` and `prefix`: the key functions,
/// `release`, and `release_ids(ids, version, answer)`, which releases the entries of the plan's
/// `ids`, or appends them to `answer` for the writer to release in steps when there are more than
/// one script takes.
fn at_once_functions() -> String {
    format!(
        r"{keys}{RELEASE_FN}
local function release_ids(ids, version, answer)
  if #ids > {KEYS_PER_SCRIPT} then
    for _, id in ipairs(ids) do table.insert(answer, id) end
    return
  end
  local keys = {{}}
  for _, id in ipairs(ids) do table.insert(keys, owner_key(id)) end
  release(keys, version)
end
",
        keys = lua_key_functions()
    )
}

/// KEYS: sequence counter, walk registrations. ARGV: plan id. Takes the next creation sequence and
/// registers the id for the walk at this node's time; answers {sequence, time}.
static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {{seq, now}}
"
    ))
});

/// KEYS: walk registrations. ARGV: plan id, the score seen, the lease (ms). Removes the
/// registration if it still has that score and is older than the lease; answers 1 if removed.
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
if score == nil or score ~= tonumber(ARGV[2]) or now - score <= tonumber(ARGV[3]) then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
"
    ))
});

/// KEYS: plan hash, outbox. Answers {version, body, etag, org, pending, committed, then the
/// outbox as version, entry pairs}; absent fields are nil.
static WALK_ROW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local row = redis.call('HMGET', KEYS[1], 'version', 'body', 'etag', 'org', 'pending', 'committed')
local answer = {row[1], row[2], row[3], row[4], row[5], row[6]}
for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do table.insert(answer, v) end
return answer
",
    )
});

/// KEYS: plan hash. Answers {seq, org, 1 if live (it has an ETag) else 0}; a tombstone keeps the
/// seq and org.
static LISTED_AS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'seq', 'org', 'etag')
return {h[1], h[2], h[3] and 1 or 0}
",
    )
});

/// KEYS: listings. ARGV: plan id, its creation sequence. Adds the plan to each listing; answers
/// how many lacked it at that sequence.
static LISTING_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local added = 0
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('ZSCORE', key, ARGV[1]) or '') ~= tonumber(ARGV[2]) then
    redis.call('ZADD', key, ARGV[2], ARGV[1])
    added = added + 1
  end
end
return added
",
    )
});

/// KEYS: listings. ARGV: plan id, its creation sequence. Removes the plan from each listing only
/// where it is listed at that sequence (a re-created plan has a new one); answers how many.
static LISTING_DROP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = 0
for _, key in ipairs(KEYS) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score and tonumber(score) == tonumber(ARGV[2]) then
    removed = removed + redis.call('ZREM', key, ARGV[1])
  end
end
return removed
",
    )
});

/// KEYS: owner entry. Answers {value ('' when absent), this node's clock in ms}.
static OWNER_STATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
return {{redis.call('GET', KEYS[1]) or '', now}}
"
    ))
});

/// KEYS: owner entry. ARGV: the value seen ('' when absent), the new value. Compare-and-set.
static OWNER_CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
",
    )
});

// The write scripts share their steps, so that the writes in steps and at once cannot drift
// apart: `EXPECTED` checks the plan against ARGV[1], `store_plan()` writes a new version of it
// (the caller sets `new_version` and `seq`), `tombstone()` checks and deletes it.

/// ARGV[1] ('absent' or a version) against the plan hash (KEYS[1]): defines `current` (version,
/// etag, seq, org), `version` and `live`, or answers {0}. A plan is live while it has an ETag,
/// which is written and deleted with its body: the body itself never enters Lua to be tested
/// (Redis's Lua copies and hashes every string it is handed, a whole plan's bytes for a yes or no).
const EXPECTED: &str = "local current = redis.call('HMGET', KEYS[1], 'version', 'etag', 'seq', 'org')
local version = tonumber(current[1]) or 0
local live = current[2] ~= false
if ARGV[1] == 'absent' then
  if live then return {0} end
elseif not live or version ~= tonumber(ARGV[1]) then
  return {0}
end
";

/// Writes `new_version` of the plan (ARGV: 2 body, 3 etag, 5 org, 8.. every objectId) at `seq`,
/// puts it in the outbox and replaces the id set (KEYS[2]); defines `dropped`, the ids the
/// previous version held and this one does not.
fn store_plan() -> String {
    format!(
        r"redis.call('HSET', KEYS[1], 'version', new_version, 'body', ARGV[2], 'etag', ARGV[3], 'seq', seq, 'org', ARGV[5], 'committed', now)
redis.call('HDEL', KEYS[1], 'pending')
local MAX_OUTBOX = {MAX_OUTBOX_PER_PLAN}
local body = ARGV[2]
{HOLD}
local keep = {{}}
for i = 8, #ARGV do keep[ARGV[i]] = true end
local dropped = {{}}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not keep[id] then table.insert(dropped, id) end
end
redis.call('DEL', KEYS[2])
-- SADD in chunks: unpack() is limited by the Lua stack.
local chunk = {{}}
for i = 8, #ARGV do
  table.insert(chunk, ARGV[i])
  if #chunk == 500 then redis.call('SADD', KEYS[2], unpack(chunk)); chunk = {{}} end
end
if #chunk > 0 then redis.call('SADD', KEYS[2], unpack(chunk)) end
"
    )
}

/// Deletes the plan (KEYS[1]) if it is live at version ARGV[1], or answers {0}: leaves a tombstone
/// holding the version (so a re-created plan continues the sequence) and the plan's `seq` and
/// `org` (so the walk can take a leftover listing entry out), puts the delete in the outbox and
/// removes the id set (KEYS[2]). Defines `current` (version, etag, org, seq; live while it has an
/// ETag, as in `EXPECTED`), `new_version` and `ids`, the ids the plan held.
fn tombstone() -> String {
    format!(
        r"local current = redis.call('HMGET', KEYS[1], 'version', 'etag', 'org', 'seq')
local version = tonumber(current[1]) or 0
if current[2] == false or version ~= tonumber(ARGV[1]) then return {{0}} end
local new_version, body = version + 1, false
redis.call('HSET', KEYS[1], 'version', new_version, 'committed', now)
redis.call('HDEL', KEYS[1], 'pending')
local MAX_OUTBOX = {MAX_OUTBOX_PER_PLAN}
{HOLD}
redis.call('HDEL', KEYS[1], 'body', 'etag')
local ids = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
"
    )
}

/// KEYS: plan hash, plan id set, outbox. ARGV: expected ('absent' or a version), body, etag,
/// creation sequence ('' keeps the current one), org, the oldest claim time (ms, '' without
/// claims), the commit window (ms), then every objectId of the new plan.
/// Answers {new version, sequence, previous org ('' if none), dropped ids...}, {0} when the plan
/// is not as expected, or {0, 'claim-expired'} when this node's clock says the oldest claim is
/// older than the window (the writer claims again).
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
if ARGV[6] ~= '' and now - tonumber(ARGV[6]) > tonumber(ARGV[7]) then return {{0, 'claim-expired'}} end
{EXPECTED}
local new_version = version + 1
local seq = ARGV[4]
if seq == '' then seq = current[3] end
{store_plan}
local answer = {{new_version, seq, (live and current[4]) or ''}}
for _, id in ipairs(dropped) do table.insert(answer, id) end
return answer
",
        store_plan = store_plan()
    ))
});

/// KEYS: plan hash, plan id set, outbox. ARGV: expected version. The tombstone; answers
/// {tombstone version, org, seq, released ids...} or {0}.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
{tombstone}
local answer = {{new_version, current[3], current[4]}}
for _, id in ipairs(ids) do table.insert(answer, id) end
return answer
",
        tombstone = tombstone()
    ))
});

/// KEYS: plan hash, plan id set, outbox, sequence counter, walk registrations, global listing,
/// then the owner entry of every objectId. ARGV: expected ('absent' or a version), body, etag,
/// plan id, org, key prefix, lease (ms), then every objectId (in the order of their entries).
/// Checks every entry before writing anything (a refusal changes nothing), then commits as
/// COMMIT does, confirms every entry at the new version, releases the dropped ids (or answers them
/// when there are more than a script takes) and updates the listings as the writer's steps would.
/// Answers {new version, n, n pairs of a stale entry taken over and its old value, then the
/// dropped ids left to release}, {0} when the plan is not as expected, {0, 'taken', id} when
/// another plan holds an id.
static COMMIT_AT_ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
{EXPECTED}
local plan, prefix, lease = ARGV[4], ARGV[6], tonumber(ARGV[7])
{at_once}
local owner_keys = {{}}
for i = 7, #KEYS do owner_keys[i - 6] = KEYS[i] end
local entries = {{}}
if #owner_keys > 0 then entries = redis.call('MGET', unpack(owner_keys)) end
local taken_over = {{}}
for i = 7, #KEYS do
  local value = entries[i - 6]
  if value then
    local owner, rest = string.match(value, '^([^:]+):(.*)$')
    if owner ~= plan then
      local id = ARGV[i + 1]
      local claimed = string.match(rest or '', '^0:(%d+)$')
      local confirmed = string.match(rest or '', '^%d+$')
      if not owner or not (claimed or confirmed)
        or (claimed and now - tonumber(claimed) <= lease)
        or redis.call('SISMEMBER', ids_key(owner), id) == 1 then
        return {{0, 'taken', id}}
      end
      table.insert(taken_over, id)
      table.insert(taken_over, value)
    end
  end
end
local new_version = version + 1
local seq = current[3]
if ARGV[1] == 'absent' then
  seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[5], now, plan)
end
{store_plan}
if #owner_keys > 0 then
  local confirmed = plan .. ':' .. new_version
  local settled = {{}}
  for _, key in ipairs(owner_keys) do
    table.insert(settled, key)
    table.insert(settled, confirmed)
  end
  redis.call('MSET', unpack(settled))
end
local answer = {{new_version, #taken_over / 2}}
for _, v in ipairs(taken_over) do table.insert(answer, v) end
release_ids(dropped, new_version, answer)
local previous_org = live and current[4] or nil
if not previous_org then
  redis.call('ZADD', KEYS[6], seq, plan)
  redis.call('ZADD', org_order_key(ARGV[5]), seq, plan)
elseif previous_org ~= ARGV[5] then
  local listed = org_order_key(previous_org)
  if tonumber(redis.call('ZSCORE', listed, plan) or '') == tonumber(seq) then redis.call('ZREM', listed, plan) end
  redis.call('ZADD', org_order_key(ARGV[5]), seq, plan)
end
return answer
",
        store_plan = store_plan(),
        at_once = at_once_functions()
    ))
});

/// KEYS: plan hash, plan id set, outbox, global listing. ARGV: expected version, plan id, key
/// prefix. The tombstone, then the releases of the plan's ids (answered instead when there are
/// more than a script takes) and the removal from both listings at the plan's sequence. Answers
/// {tombstone version, ids left to release...} or {0}.
static DELETE_AT_ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{NOW_MS}
{tombstone}
local plan, prefix = ARGV[2], ARGV[3]
{at_once}
local answer = {{new_version}}
release_ids(ids, new_version, answer)
local org, seq = current[3], tonumber(current[4])
if org and seq then
  for _, listed in ipairs({{KEYS[4], org_order_key(org)}}) do
    if tonumber(redis.call('ZSCORE', listed, plan) or '') == seq then redis.call('ZREM', listed, plan) end
  end
end
return answer
",
        tombstone = tombstone(),
        at_once = at_once_functions()
    ))
});

/// KEYS: plan hash, outbox. ARGV: the published version. Takes that version out of the outbox
/// (and clears a mark from before the outbox if it is for that version).
static MARK_PUBLISHED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then
  removed = removed + redis.call('HDEL', KEYS[1], 'pending')
end
return removed
",
    )
});

#[cfg(test)]
mod tests {
    use plan::env::vars_of;

    use super::*;

    /// A store that never connects (building one opens no connection).
    fn store(urls: &str) -> RedisStore {
        RedisStore::new(&RedisConfig::from_vars(&vars_of(&[("REDIS_URL", urls)])).unwrap().unwrap()).unwrap()
    }

    fn positions(groups: &[Vec<(usize, String)>]) -> Vec<Vec<usize>> {
        groups.iter().map(|group| group.iter().map(|(position, _)| *position).collect()).collect()
    }

    // The standalone client needs a runtime to be built (it connects lazily, in the background).
    #[tokio::test]
    async fn a_standalone_redis_takes_a_writes_ids_in_one_script_per_chunk() {
        let standalone = store("redis://127.0.0.1:1");
        let keys: Vec<String> = (0..300).map(|n| standalone.keys.owner_raw(&format!("id-{n}"))).collect();
        let groups = standalone.script_groups(keys.clone());
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![KEYS_PER_SCRIPT, KEYS_PER_SCRIPT, 300 - 2 * KEYS_PER_SCRIPT]);
        assert_eq!(positions(&groups).concat(), (0..300).collect::<Vec<_>>(), "every key once, in order");
        assert!(groups.concat().iter().all(|(position, key)| keys.get(*position) == Some(key)));
        assert!(standalone.script_groups(Vec::new()).is_empty());
    }

    #[test]
    fn the_scripts_name_keys_as_the_client_does() {
        assert_eq!(
            lua_key_functions(),
            "local function owner_key(arg) return '' .. prefix .. ':obj:{' .. arg .. '}' end\n\
             local function ids_key(arg) return '' .. prefix .. ':plan:{' .. arg .. '}:ids' end\n\
             local function org_order_key(arg) return '{' .. prefix .. ':plans}:order:org:' .. arg .. '' end\n"
        );
    }

    #[test]
    fn on_a_cluster_one_script_takes_only_keys_of_one_slot() {
        let cluster = store("redis://127.0.0.1:1,redis://127.0.0.1:2");
        let keys: Vec<String> = (0..40).map(|n| cluster.keys.owner_raw(&format!("id-{}", n % 20))).collect();
        let groups = cluster.script_groups(keys.clone());
        for group in &groups {
            let slots: std::collections::HashSet<Slot> = group.iter().map(|(_, key)| Slot::for_key(key)).collect();
            assert_eq!(slots.len(), 1, "{group:?}");
        }
        let distinct: std::collections::HashSet<Slot> = keys.iter().map(Slot::for_key).collect();
        assert_eq!(groups.len(), distinct.len(), "one script per slot");
        let mut seen = positions(&groups).concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }
}
