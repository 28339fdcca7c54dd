//! objectId ownership in the Redis store under races and faults (issue 11): no sequence of lost
//! replies, crashes and races may leave one objectId in the id sets of two plans, whether writers
//! go at once (a standalone Redis), in steps (a cluster, or a plan of many ids) or both.

use std::sync::Arc;
use std::time::Duration;

use plan::ObjectId;
use plan::store::{Expected, PlanReader, PlanWrite, PlanWriter, WriteError};
use plan_e2e::raw_redis::{RawRedis, raw};
use plan_e2e::{plan_service, redis_config, service_var, set_org, tag, unique_plan, write_of};
use plan_store::{RedisConfig, RedisStore};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// Rounds of the two-writer race.
const ROUNDS: usize = 1_000;

/// A plan document of `org` holding `shared` as its plan cost shares' id, or not.
fn variant(base: &Value, shared: Option<&str>) -> Value {
    let mut doc = base.clone();
    if let Some(shared) = shared {
        doc["planCostShares"]["objectId"] = json!(shared);
    }
    doc
}

fn org_plan(org: &str) -> Value {
    let mut doc = unique_plan(&tag());
    set_org(&mut doc, org);
    doc
}

struct Writer {
    store: Arc<RedisStore>,
    base: Value,
    id: String,
    version: u64,
}

impl Writer {
    async fn create(config: &RedisConfig, org: &str, stepwise: bool) -> Self {
        let store = RedisStore::new(config).unwrap();
        let store = Arc::new(if stepwise { store.stepwise() } else { store });
        let base = org_plan(org);
        let id = base["objectId"].as_str().unwrap().to_owned();
        let version = store.commit(write_of(base.clone(), Expected::Absent)).await.unwrap();
        Self { store, base, id, version }
    }

    /// Commits the plan with or without the shared id; true when committed.
    async fn write(&mut self, shared: Option<&str>) -> bool {
        match self.store.commit(write_of(variant(&self.base, shared), Expected::Version(self.version))).await {
            Ok(version) => {
                self.version = version;
                true
            }
            Err(WriteError::IdTaken(_)) => false,
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// Two plans race for one id, round after round, through the stale entries a crash leaves: an
/// entry confirmed for a version of plan A that no longer holds the id, and a pending claim of A
/// older than any lease. After every round at most one plan's id set holds the id. `stepwise`:
/// whether each of A and B writes in steps or at once (a cluster always goes in steps).
async fn two_writers_never_share_an_id(url: String, cluster: bool, stepwise: [bool; 2]) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let prefix = config.key_prefix.clone();
    let mut a = Writer::create(&config, "a.example", stepwise[0]).await;
    let mut b = Writer::create(&config, "b.example", stepwise[1]).await;
    // A third plan that only ever appears in stale entries, so that both writers must take over.
    let c = Writer::create(&config, "c.example", false).await;
    let mut raw = raw(&url, cluster).await;
    let shared = format!("shared-{}", tag());
    let owner_key = format!("{prefix}:obj:{{{shared}}}");
    let ids_key = |plan: &str| format!("{prefix}:plan:{{{plan}}}:ids");
    let (mut shared_by_both, mut won_by_a, mut won_by_b, mut neither) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        // What a crash leaves behind: an entry for the id, confirmed or claimed long ago, of A or
        // of C, while that plan's id set does not list the id.
        let holder = if round % 4 < 2 { (&a.id, a.version) } else { (&c.id, c.version) };
        let stale = if round % 2 == 0 { format!("{}:{}", holder.0, holder.1) } else { format!("{}:0:1000", holder.0) };
        raw.set(&owner_key, &stale).await;
        // Vary who starts first by up to a millisecond either way.
        let jitter = Duration::from_micros((round as u64 * 7_919) % 1_000);
        let (a_delay, b_delay) = if round % 8 < 4 { (jitter, Duration::ZERO) } else { (Duration::ZERO, jitter) };
        let (a_won, b_won) = tokio::join!(
            async {
                tokio::time::sleep(a_delay).await;
                a.write(Some(&shared)).await
            },
            async {
                tokio::time::sleep(b_delay).await;
                b.write(Some(&shared)).await
            }
        );
        let in_a = raw.is_member(&ids_key(&a.id), &shared).await;
        let in_b = raw.is_member(&ids_key(&b.id), &shared).await;
        assert_eq!((a_won, b_won), (in_a, in_b), "round {round}: a commit that succeeded holds the id");
        match (in_a, in_b) {
            (true, true) => shared_by_both += 1,
            (true, false) => won_by_a += 1,
            (false, true) => won_by_b += 1,
            (false, false) => neither += 1,
        }
        // The winner lets go of the id again (a normal release), so the next round starts free.
        if in_a {
            assert!(a.write(None).await);
        }
        if in_b {
            assert!(b.write(None).await);
        }
    }
    eprintln!(
        "{ROUNDS} rounds (cluster: {cluster}, A and B in steps: {stepwise:?}): shared by both {shared_by_both}, won by A {won_by_a}, by B {won_by_b}, by neither {neither}; \
         last entry {:?}",
        raw.get(&owner_key).await
    );
    assert_eq!(shared_by_both, 0, "one objectId in the id sets of two plans");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_through_stale_entries_never_share_an_id() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    two_writers_never_share_an_id(url, false, [false, false]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_in_steps_racing_one_at_once_never_share_an_id() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    two_writers_never_share_an_id(url, false, [true, false]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_through_stale_entries_never_share_an_id_in_a_cluster() {
    let Some(urls) = service_var("PLAN_TEST_REDIS_CLUSTER_URLS") else { return };
    two_writers_never_share_an_id(urls, true, [true, true]).await;
}

/// A TCP forwarder to Redis that, once armed, lets through the first command that mentions the
/// armed bytes and then swallows every reply on that connection and cuts it: a COMMIT that Redis
/// executes but whose reply never reaches the writer (a timeout, a crash of the writer, a network
/// cut).
struct LosingProxy {
    port: u16,
    armed: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LosingProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<std::sync::Mutex<Option<Vec<u8>>>> = Arc::default();
        let shared = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(forward(client, server, shared.clone()));
            }
        });
        Self { port, armed, task }
    }

    fn arm(&self, pattern: &str) {
        *self.armed.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: tokio::net::TcpStream, server: tokio::net::TcpStream, armed: Arc<std::sync::Mutex<Option<Vec<u8>>>>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let mute = muted.clone();
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let hit = {
                let mut armed = armed.lock().unwrap();
                let hit = armed.as_ref().is_some_and(|p| buffer[..n].windows(p.len()).any(|w| w == p.as_slice()));
                if hit {
                    *armed = None;
                }
                hit
            };
            if hit {
                mute.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
            if hit {
                // Let Redis run the command, then cut the connection without its reply.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
        }
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if muted.load(Ordering::SeqCst) {
            break;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    if muted.load(Ordering::SeqCst) {
        let _ = upstream.await;
    } else {
        upstream.abort();
    }
}

/// The COMMIT of plan A (written in steps) runs in Redis but its reply is lost, so A's writer never
/// confirms its claims. Past the lease another plan asks for one of A's ids: refused (409),
/// because A's id set lists it, and A's nested object is still A's. The reindex walk then confirms
/// A's entries.
/// What a test of a lost reply starts from: plan A's create ran in Redis, but its reply was lost on
/// the way back through a [`LosingProxy`] (A's writer goes in steps or at once).
struct LostReply {
    a: PlanWrite,
    /// A nested id of A (its plan cost shares), for another plan to ask for.
    shared: ObjectId,
    /// A store that reaches Redis directly, with the same lease.
    direct: RedisStore,
    raw: RawRedis,
    prefix: String,
}

async fn lose_the_reply_of_a_create(url: &str, stepwise: bool, lease: Duration) -> LostReply {
    let upstream = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = LosingProxy::start(upstream).await;
    let window = lease / 2;
    let mut config = redis_config(vec![format!("redis://127.0.0.1:{}", proxy.port)], false);
    let through_proxy = RedisStore::new(&config).unwrap().with_lease(lease, window);
    let through_proxy = if stepwise { through_proxy.stepwise() } else { through_proxy };
    config.urls = vec![url.to_owned()];
    let direct = RedisStore::new(&config).unwrap().with_lease(lease, window);

    // A first write loads every script, so the armed command is the COMMIT itself, not a NOSCRIPT.
    through_proxy.commit(write_of(org_plan("a.example"), Expected::Absent)).await.unwrap();
    let a = write_of(org_plan("a.example"), Expected::Absent);
    let shared = a.object_ids.iter().find(|id| id.as_str().starts_with("1234vxc2324sdf")).unwrap().clone();
    proxy.arm(&format!(":plan:{{{}}}", a.id));
    let lost = through_proxy.commit(a.clone()).await;
    assert!(matches!(lost, Err(WriteError::Store(_))), "the writer never heard back: {lost:?}");
    assert_eq!(direct.plan(&a.id).await.unwrap().map(|p| p.version), Some(1), "yet Redis committed the plan");
    LostReply { a, shared, direct, raw: raw(url, false).await, prefix: config.key_prefix }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_reply_never_gives_an_id_a_second_owner() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    let lease = Duration::from_millis(1_500);
    let LostReply { a, shared, direct, mut raw, prefix } = lose_the_reply_of_a_create(&url, true, lease).await;
    let owner_key = format!("{prefix}:obj:{{{shared}}}");
    let entry = raw.get(&owner_key).await.unwrap();
    assert!(entry.starts_with(&format!("{}:0:", a.id)), "the claim was never confirmed: {entry}");

    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    let mut b_doc = org_plan("b.example");
    b_doc["planCostShares"]["objectId"] = json!(shared.as_str());
    match direct.commit(write_of(b_doc, Expected::Absent)).await {
        Err(WriteError::IdTaken(id)) => assert_eq!(id, shared),
        other => panic!("another plan got an id of a committed plan: {other:?}"),
    }
    assert_eq!(direct.owner(&shared).await.unwrap(), Some(a.id.clone()), "GET of the object still finds A");
    eprintln!("lost COMMIT reply; entry left {entry}; another plan's claim past the lease: IdTaken");

    // The walk confirms what the lost reply left pending.
    let report = plan::jobs::sweep(&direct, &direct, &plan_e2e::RecordingPublisher::default()).await.unwrap();
    assert!(report.repaired >= a.object_ids.len(), "{report:?}");
    assert_eq!(raw.get(&owner_key).await.unwrap(), format!("{}:1", a.id));
}

/// The same lost reply for a write made at once (a standalone Redis): the script confirmed every
/// entry with the commit, so the other plan is refused at once, not only while a lease runs, and
/// the walk finds nothing to repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_of_a_write_made_at_once_leaves_every_entry_confirmed() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    let LostReply { a, shared, direct, mut raw, prefix } = lose_the_reply_of_a_create(&url, false, Duration::from_secs(30)).await;
    for id in &a.object_ids {
        assert_eq!(raw.get(&format!("{prefix}:obj:{{{id}}}")).await, Some(format!("{}:1", a.id)), "{id}");
    }

    let mut b_doc = org_plan("b.example");
    b_doc["planCostShares"]["objectId"] = json!(shared.as_str());
    match direct.commit(write_of(b_doc, Expected::Absent)).await {
        Err(WriteError::IdTaken(id)) => assert_eq!(id, shared),
        other => panic!("another plan got an id of a committed plan: {other:?}"),
    }
    assert_eq!(direct.owner(&shared).await.unwrap(), Some(a.id.clone()));
    let report = plan::jobs::sweep(&direct, &direct, &plan_e2e::RecordingPublisher::default()).await.unwrap();
    assert_eq!(report.repaired, 0, "{report:?}");
}

/// The reindex walk finds owner entries that disagree with the id sets: a missing entry, another
/// plan's leftover, a claim older than the lease are confirmed for the plan that lists the id; an
/// id that two id sets list is reported, not guessed at; fresh claims are left alone.
#[tokio::test]
async fn the_walk_repairs_owner_entries_that_disagree_with_the_id_sets() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    let config = redis_config(vec![url.clone()], false);
    let store = RedisStore::new(&config).unwrap().with_lease(Duration::from_secs(2), Duration::from_secs(1));
    let mut raw = raw(&url, false).await;
    let prefix = &config.key_prefix;
    let a = write_of(org_plan("a.example"), Expected::Absent);
    let b = write_of(org_plan("b.example"), Expected::Absent);
    store.commit(a.clone()).await.unwrap();
    store.commit(b.clone()).await.unwrap();
    let owner_key = |id: &plan::ObjectId| format!("{prefix}:obj:{{{id}}}");
    let [missing, leftover, old_claim, fresh_claim, shared, ..] = a.object_ids.as_slice() else { panic!("ids") };
    let RawRedis::Single(conn) = &mut raw else { unreachable!() };
    let _: () = conn.del(owner_key(missing)).await.unwrap();
    raw.set(&owner_key(leftover), &format!("{}:7", b.id)).await;
    raw.set(&owner_key(old_claim), &format!("{}:0:1000", a.id)).await;
    let RawRedis::Single(conn) = &mut raw else { unreachable!() };
    let _: () = redis::cmd("EVAL")
        .arg("local t = redis.call('TIME'); redis.call('SET', KEYS[1], ARGV[1] .. ':0:' .. (t[1] * 1000))")
        .arg(1)
        .arg(owner_key(fresh_claim))
        .arg(a.id.as_str())
        .query_async(conn)
        .await
        .unwrap();
    // A hand-made break of the invariant: B's id set lists one of A's ids, and the entry names B.
    let _: () = conn.sadd(format!("{prefix}:plan:{{{}}}:ids", b.id), shared.as_str()).await.unwrap();
    raw.set(&owner_key(shared), &format!("{}:1", b.id)).await;

    let report = plan_wiring::reindex::drift_check(&store, &plan_index::EmbeddedIndex::new(), &|_| {}).await.unwrap();
    let mut restored: Vec<String> = report
        .repairs
        .iter()
        .filter_map(|r| match r {
            plan::store::Repair::OwnerRestored { plan, object_id, .. } if *plan == a.id => Some(object_id.to_string()),
            _ => None,
        })
        .collect();
    restored.sort();
    let mut expected = vec![missing.to_string(), leftover.to_string(), old_claim.to_string()];
    expected.sort();
    assert_eq!(restored, expected, "{:#?}", report.repairs);
    assert!(
        report.repairs.iter().any(|r| matches!(r, plan::store::Repair::SharedObjectId { object_id, .. } if object_id == shared)),
        "{:#?}",
        report.repairs
    );
    for id in [missing, leftover, old_claim] {
        assert_eq!(raw.get(&owner_key(id)).await.unwrap(), format!("{}:1", a.id));
    }
    assert!(raw.get(&owner_key(fresh_claim)).await.unwrap().starts_with(&format!("{}:0:", a.id)), "a claim in flight is left alone");
    let again = plan_wiring::reindex::drift_check(&store, &plan_index::EmbeddedIndex::new(), &|_| {}).await.unwrap();
    assert!(again.repairs.iter().all(|r| matches!(r, plan::store::Repair::SharedObjectId { .. })), "{:#?}", again.repairs);
}

/// Every committed write leaves each of its ids confirmed at its version and the ids it dropped
/// released, and a delete releases them all: nothing stays pending for the walk to finish (the
/// claims, confirms and releases go one script per hash slot, one in all on a standalone Redis).
/// `services`: linked plan services of the first version (50 make 152 ids, more than one script
/// takes: a standalone Redis then commits in steps, and the update to one service releases more
/// ids than its script does).
async fn writes_confirm_and_release_their_ids(url: String, cluster: bool, stepwise: bool, services: usize) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let store = RedisStore::new(&config).unwrap();
    let store = if stepwise { store.stepwise() } else { store };
    let mut raw = raw(&url, cluster).await;
    let owner_key = |id: &plan::ObjectId| format!("{}:obj:{{{id}}}", config.key_prefix);
    let t = tag();
    let mut document = unique_plan(&t);
    if services > 2 {
        document["linkedPlanServices"] = (0..services).map(|i| plan_service(&format!("{t}-{i}"), "bulk", i as u64)).collect();
    }
    set_org(&mut document, "a.example");
    let first = write_of(document.clone(), Expected::Absent);
    let plan_id = first.id.clone();
    let v1 = store.commit(first.clone()).await.unwrap();
    assert_eq!(first.object_ids.len(), 2 + 3 * services.max(2), "the plan's ids");
    for id in &first.object_ids {
        assert_eq!(raw.get(&owner_key(id)).await, Some(format!("{plan_id}:{v1}")), "{id} after the create");
    }

    let mut smaller = document.clone();
    smaller["linkedPlanServices"].as_array_mut().unwrap().truncate(1);
    let second = write_of(smaller, Expected::Version(v1));
    let v2 = store.commit(second.clone()).await.unwrap();
    let dropped: Vec<&plan::ObjectId> = first.object_ids.iter().filter(|id| !second.object_ids.contains(id)).collect();
    assert_eq!(dropped.len(), 3 * (services.max(2) - 1), "linked plan services with their services and cost shares");
    for id in &second.object_ids {
        assert_eq!(raw.get(&owner_key(id)).await, Some(format!("{plan_id}:{v2}")), "{id} after the update");
    }
    for id in dropped {
        assert_eq!(raw.get(&owner_key(id)).await, None, "{id} was dropped: released");
    }

    store.delete(&plan_id, v2).await.unwrap();
    for id in &second.object_ids {
        assert_eq!(raw.get(&owner_key(id)).await, None, "{id} after the delete");
    }

    // A delete of the whole first version: every id released, however many.
    let again = write_of(document, Expected::Absent);
    let v4 = store.commit(again.clone()).await.unwrap();
    store.delete(&plan_id, v4).await.unwrap();
    for id in &again.object_ids {
        assert_eq!(raw.get(&owner_key(id)).await, None, "{id} after deleting the re-created plan");
    }
}

#[tokio::test]
async fn writes_confirm_and_release_every_id() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    writes_confirm_and_release_their_ids(url.clone(), false, false, 2).await;
    writes_confirm_and_release_their_ids(url, false, false, 50).await;
}

#[tokio::test]
async fn writes_in_steps_confirm_and_release_every_id() {
    let Some(url) = service_var("PLAN_TEST_REDIS_URL") else { return };
    writes_confirm_and_release_their_ids(url.clone(), false, true, 2).await;
    writes_confirm_and_release_their_ids(url, false, true, 50).await;
}

#[tokio::test]
async fn writes_confirm_and_release_every_id_in_a_cluster() {
    let Some(urls) = service_var("PLAN_TEST_REDIS_CLUSTER_URLS") else { return };
    writes_confirm_and_release_their_ids(urls.clone(), true, false, 2).await;
    writes_confirm_and_release_their_ids(urls, true, false, 50).await;
}
