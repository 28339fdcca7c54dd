//! Listings in the Redis store (issue 11): the listing sorted sets are updated after the commit,
//! best effort, so a page filters every row on the plan and its organisation, a delete removes
//! only its own entry, and the reindex walk restores what a failed update left out.

use plan::store::{Expected, PlanReader, PlanWriter, Repair, StoreWalk};
use plan_e2e::raw_redis::raw;
use plan_e2e::{redis_config, set_org, tag, unique_plan, write_of};
use plan_store::RedisStore;
use serde_json::Value;

fn org_plan(org: &str) -> Value {
    let mut doc = unique_plan(&tag());
    set_org(&mut doc, org);
    doc
}

async fn walk_and_repair(store: &RedisStore) -> Vec<Repair> {
    let mut repairs = Vec::new();
    let mut cursor = None;
    loop {
        let (states, next) = store.walk(cursor, 100).await.unwrap();
        repairs.extend(store.repair(&states).await.unwrap());
        match next {
            Some(next) => cursor = Some(next),
            None => return repairs,
        }
    }
}

fn ids(page: &plan::store::PlanPage) -> Vec<(String, String)> {
    page.plans.iter().map(|p| (p.id.to_string(), p.org.clone())).collect()
}

/// A delete whose listing update failed leaves the id in organisation A's listing; organisation B
/// then creates a plan with that id. A's listing must not show B's plan, and the walk takes the
/// leftover out.
async fn a_leftover_entry_never_shows_another_organisations_plan(url: String, cluster: bool) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let store = RedisStore::new(&config).unwrap();
    let mut raw = raw(&url, cluster).await;
    let a_listing = format!("{{{}:plans}}:order:org:a.example", config.key_prefix);
    let doc = org_plan("a.example");
    let write = write_of(doc.clone(), Expected::Absent);
    store.commit(write.clone()).await.unwrap();
    let seq: f64 = raw.cmd(redis::cmd("ZSCORE").arg(&a_listing).arg(write.id.as_str())).await;
    store.delete(&write.id, 1).await.unwrap();
    // The failed ZREM: the entry is back in A's listing.
    let _: i64 = raw.cmd(redis::cmd("ZADD").arg(&a_listing).arg(seq).arg(write.id.as_str())).await;
    let mut other = doc.clone();
    set_org(&mut other, "b.example");
    store.commit(write_of(other, Expected::Absent)).await.unwrap();

    let a_page = store.page(Some("a.example"), None, 10).await.unwrap();
    assert_eq!(ids(&a_page), [], "organisation A's listing shows B's plan");
    let b_page = store.page(Some("b.example"), None, 10).await.unwrap();
    assert_eq!(ids(&b_page), [(write.id.to_string(), "b.example".to_owned())]);
    // The walk cannot know which other listings a plan was ever in, but a page never shows them.
    walk_and_repair(&store).await;
    assert_eq!(ids(&store.page(Some("a.example"), None, 10).await.unwrap()), []);
}

/// A create whose listing update failed is missing from both listings until the walk restores
/// it; a deleted plan whose removal failed is taken out by the walk; a second walk finds nothing.
async fn the_walk_restores_listing_membership(url: String, cluster: bool) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let store = RedisStore::new(&config).unwrap();
    let mut raw = raw(&url, cluster).await;
    let (order, a_listing) =
        (format!("{{{}:plans}}:order", config.key_prefix), format!("{{{}:plans}}:order:org:a.example", config.key_prefix));
    let created = write_of(org_plan("a.example"), Expected::Absent);
    let deleted = write_of(org_plan("a.example"), Expected::Absent);
    store.commit(created.clone()).await.unwrap();
    store.commit(deleted.clone()).await.unwrap();
    let seq: f64 = raw.cmd(redis::cmd("ZSCORE").arg(&order).arg(deleted.id.as_str())).await;
    store.delete(&deleted.id, 1).await.unwrap();
    // The failed ZADD after the create, and the failed ZREM after the delete.
    for listing in [&order, &a_listing] {
        let _: i64 = raw.cmd(redis::cmd("ZREM").arg(listing).arg(created.id.as_str())).await;
        let _: i64 = raw.cmd(redis::cmd("ZADD").arg(listing).arg(seq).arg(deleted.id.as_str())).await;
    }
    assert_eq!(ids(&store.page(Some("a.example"), None, 10).await.unwrap()), [], "the create is missing from the listing");

    let mut repairs: Vec<String> = walk_and_repair(&store).await.iter().map(ToString::to_string).collect();
    repairs.sort();
    assert_eq!(repairs.len(), 2, "{repairs:?}");
    let listed = vec![(created.id.to_string(), "a.example".to_owned())];
    assert_eq!(ids(&store.page(Some("a.example"), None, 10).await.unwrap()), listed);
    assert_eq!(ids(&store.page(None, None, 10).await.unwrap()), listed);
    let left: Option<f64> = raw.cmd(redis::cmd("ZSCORE").arg(&order).arg(deleted.id.as_str())).await;
    assert_eq!(left, None, "the deleted plan's leftover entry is gone");
    assert!(walk_and_repair(&store).await.is_empty(), "a second walk finds nothing to mend");
}

/// A delete's listing removal takes out only the entry at the deleted plan's own sequence: when a
/// re-create (a new sequence) got its entry in first, the live plan stays listed.
async fn a_delete_never_removes_a_re_created_plan_from_the_listing(url: String, cluster: bool) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let store = RedisStore::new(&config).unwrap();
    let mut raw = raw(&url, cluster).await;
    let order = format!("{{{}:plans}}:order", config.key_prefix);
    let write = write_of(org_plan("a.example"), Expected::Absent);
    store.commit(write.clone()).await.unwrap();
    // The re-create's entry, at the newer sequence it would have, arriving before the delete's
    // removal (the order in which two processes' listing updates can reach Redis).
    let _: i64 = raw.cmd(redis::cmd("ZADD").arg(&order).arg(1_000_000).arg(write.id.as_str())).await;
    store.delete(&write.id, 1).await.unwrap();
    let score: Option<f64> = raw.cmd(redis::cmd("ZSCORE").arg(&order).arg(write.id.as_str())).await;
    assert_eq!(score, Some(1_000_000.0), "the delete removed the re-created plan's entry");
    assert!(store.plan(&write.id).await.unwrap().is_none());
}

/// Made at once (a standalone Redis), a refused create changes nothing at all: no registration
/// for the walk, no sequence number, no plan hash.
#[tokio::test]
async fn a_refused_create_made_at_once_changes_nothing() {
    let Some(url) = plan_e2e::service_var("PLAN_TEST_REDIS_URL") else { return };
    let config = redis_config(vec![url.clone()], false);
    let store = RedisStore::new(&config).unwrap();
    let mut raw = raw(&url, false).await;
    let (walk_key, seq_key) = (format!("{{{}:plans}}:walk", config.key_prefix), format!("{{{}:plans}}:seq", config.key_prefix));
    let holder = write_of(org_plan("a.example"), Expected::Absent);
    store.commit(holder.clone()).await.unwrap();
    let taken = holder.object_ids.iter().find(|id| **id != holder.id).unwrap().clone();
    let before: (usize, Option<u64>) = (raw.cmd(redis::cmd("ZCARD").arg(&walk_key)).await, raw.cmd(redis::cmd("GET").arg(&seq_key)).await);
    for _ in 0..50 {
        let mut doc = org_plan("b.example");
        doc["planCostShares"]["objectId"] = serde_json::json!(taken.as_str());
        let refused = write_of(doc, Expected::Absent);
        let outcome = store.commit(refused.clone()).await;
        assert!(matches!(outcome, Err(plan::store::WriteError::IdTaken(ref id)) if *id == taken), "{outcome:?}");
        let exists: bool = raw.cmd(redis::cmd("EXISTS").arg(format!("{}:plan:{{{}}}", config.key_prefix, refused.id))).await;
        assert!(!exists, "a refused create left its plan hash");
    }
    let after: (usize, Option<u64>) = (raw.cmd(redis::cmd("ZCARD").arg(&walk_key)).await, raw.cmd(redis::cmd("GET").arg(&seq_key)).await);
    assert_eq!(before, after, "registrations and sequence after 50 refused creates");
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod standalone {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(url) = plan_e2e::service_var("PLAN_TEST_REDIS_URL") else { return };
                    super::$case(url, false).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(urls) = plan_e2e::service_var("PLAN_TEST_REDIS_CLUSTER_URLS") else { return };
                    super::$case(urls, true).await;
                }
            )*
        }
    };
}

on_both!(
    a_leftover_entry_never_shows_another_organisations_plan,
    the_walk_restores_listing_membership,
    a_delete_never_removes_a_re_created_plan_from_the_listing,
    refused_creates_leave_nothing_for_the_walk,
);

/// 1,000 refused creates (each names an objectId another plan holds) written in steps register
/// their ids for the walk before they commit; once older than the lease the walk prunes them, so
/// the walk's set holds only plans that committed, and a second walk reads only those.
async fn refused_creates_leave_nothing_for_the_walk(url: String, cluster: bool) {
    let config = redis_config(url.split(',').map(str::to_owned).collect(), cluster);
    let lease = std::time::Duration::from_millis(1_000);
    let store = RedisStore::new(&config).unwrap().with_lease(lease, std::time::Duration::from_millis(500)).stepwise();
    let mut raw = raw(&url, cluster).await;
    let walk_key = format!("{{{}:plans}}:walk", config.key_prefix);
    let holder = write_of(org_plan("a.example"), Expected::Absent);
    store.commit(holder.clone()).await.unwrap();
    let taken = holder.object_ids.iter().find(|id| **id != holder.id).unwrap().clone();
    let mut refused = Vec::new();
    for _ in 0..20 {
        refused.extend(
            futures_util::future::join_all((0..50).map(|_| {
                let mut doc = org_plan("b.example");
                doc["planCostShares"]["objectId"] = serde_json::json!(taken.as_str());
                let store = &store;
                async move { store.commit(write_of(doc, Expected::Absent)).await }
            }))
            .await,
        );
    }
    let unexpected: Vec<_> = refused.iter().filter(|r| !matches!(r, Err(plan::store::WriteError::IdTaken(_)))).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let registered: usize = raw.cmd(redis::cmd("ZCARD").arg(&walk_key)).await;
    assert_eq!(registered, 1_001, "every create registers before its commit");

    tokio::time::sleep(lease + std::time::Duration::from_millis(200)).await;
    // The walk sees every plan at least once; ZSCAN may repeat one (the pruning shrinks the set
    // while it is scanned, and a rehash can return an element twice): count distinct plans.
    let mut walked = std::collections::BTreeSet::new();
    let mut cursor = None;
    loop {
        let (states, next) = store.walk(cursor, 500).await.unwrap();
        walked.extend(states.into_iter().map(|state| state.id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, std::collections::BTreeSet::from([holder.id.clone()]));
    let left: usize = raw.cmd(redis::cmd("ZCARD").arg(&walk_key)).await;
    eprintln!("refused creates: {registered} registrations before the walk, {left} after (cluster: {cluster})");
    assert_eq!(left, 1, "only the committed plan stays registered");
}
