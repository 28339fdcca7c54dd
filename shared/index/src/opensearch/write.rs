//! Applying a batch of changes: one realtime multi-get of what the index holds for the batch's
//! plans, then one bulk request (split above [`MAX_BULK_BYTES`]).
//!
//! Per plan and target index, the batch is played in order against what the index holds, so each
//! change knows which documents its predecessor had. An upsert writes its children, deletes the
//! documents the previous version had and this one has not, and writes the plan document last,
//! all with the plan version as external version; a delete removes every document the plan
//! document lists, then the plan document. A bulk applies one shard's items in order and all of
//! a plan's documents share a shard (routing), so a plan document at version v means the rest of
//! v is written. When the plan document of an upsert is refused by a newer delete's tombstone,
//! the children it wrote are deleted again (a second, rare bulk).

#![allow(
    clippy::indexing_slicing,
    reason = "`outcomes` and `missing` are sized from the changes and targets they are indexed by, and `targets` always holds the live index at 0"
)]

use std::collections::{BTreeMap, HashMap};

use plan::ObjectId;
use serde_json::{Value, json};

use opensearch::http::Method;

use super::client::{Cluster, error_reason, error_type, failure, is_transient};
use crate::document::{self, doc_id};
use crate::error::IndexError;
use crate::port::{ChangeOutcome, IndexChange};

/// Above this, a batch is sent as several bulk requests (at change boundaries): clusters refuse
/// bodies above `http.max_content_length` and large bulks stall other traffic.
pub(super) const MAX_BULK_BYTES: usize = 5 * 1024 * 1024;

/// What the index holds for one plan in one target.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    version: u64,
    /// Every objectId of that version; empty for a delete.
    object_ids: Vec<ObjectId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Child,
    Drop,
    Plan,
}

struct Item {
    change: usize,
    target: usize,
    role: Role,
    doc_id: String,
    plan_id: ObjectId,
    version: u64,
}

/// At most this many plans per scrub request (each is a small bool clause; clusters cap a query's
/// clauses at 1,024 by default).
const SCRUB_PLANS_PER_REQUEST: usize = 250;

/// The aliases to write: the first decides the outcomes; the others (a running rebuild) are
/// written too, and skipped when they turn out not to exist.
///
/// `contended_from`: the first target that another applier may be writing at the same time (a
/// rebuild's index, which both the rebuild job and the indexer write). The live alias has one
/// applier per plan (the event source mapping delivers a partition's batches one at a time, and a
/// plan's events share a partition); a rebuild's index has two. Two appliers that read what the
/// index held before either wrote can each miss the other's children: an applier of v3 that read
/// v1 does not know the service v2 added, so it cannot drop it. So after writing to a contended
/// target, every document of an applied plan below the version just written is deleted by query
/// (after a refresh, so that the query sees every document written before this applier's plan
/// document). A late write of the other applier lands only if its plan document is refused by
/// the newer one, and then its own cleanup below deletes its children.
pub(super) async fn apply(
    cluster: &Cluster,
    targets: &[&str],
    contended_from: usize,
    changes: &[IndexChange],
    refresh: bool,
) -> Result<Vec<ChangeOutcome>, IndexError> {
    let mut outcomes: Vec<Option<ChangeOutcome>> = vec![None; changes.len()];
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let (mut held, live_targets) = held_state(cluster, targets, changes).await?;

    // Play the batch in order, per target, against what is held.
    let mut items: Vec<Item> = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        let plan_id = change.plan_id().clone();
        let version = change.version();
        let docs = match change {
            IndexChange::Upsert { plan, version } => match document::documents(plan, *version) {
                Ok(docs) => Some(docs),
                Err(error) => {
                    outcomes[i] = Some(ChangeOutcome::Rejected(error.to_string()));
                    continue;
                }
            },
            IndexChange::Delete { .. } => None,
        };
        let mut segment = Vec::new();
        for &t in &live_targets {
            let current = held.get(&(t, plan_id.clone())).cloned().flatten();
            if current.as_ref().is_some_and(|h| h.version >= version) {
                if t == 0 {
                    outcomes[i] = Some(ChangeOutcome::AlreadyApplied);
                }
                continue;
            }
            let old_ids = current.map(|h| h.object_ids).unwrap_or_default();
            let mut push = |role: Role, doc_id: String, source: Option<&document::DocSource>| -> Result<(), IndexError> {
                let action = if source.is_some() { "index" } else { "delete" };
                let meta = json!({action: {"_index": targets[t], "_id": doc_id, "routing": plan_id, "version": version, "version_type": "external"}});
                serde_json::to_writer(&mut segment, &meta).map_err(IndexError::corrupt)?;
                segment.push(b'\n');
                if let Some(source) = source {
                    serde_json::to_writer(&mut segment, source).map_err(IndexError::corrupt)?;
                    segment.push(b'\n');
                }
                items.push(Item { change: i, target: t, role, doc_id, plan_id: plan_id.clone(), version });
                Ok(())
            };
            match &docs {
                Some(docs) => {
                    let new_ids: Vec<ObjectId> = docs.iter().map(|d| d.source.object_id.clone()).collect();
                    let (plan_doc, children) = docs.split_last().ok_or_else(|| IndexError::corrupt("a plan without documents"))?;
                    for doc in children {
                        push(Role::Child, doc.id.clone(), Some(&doc.source))?;
                    }
                    for dropped in old_ids.iter().filter(|id| **id != plan_id && !new_ids.contains(id)) {
                        push(Role::Drop, doc_id(&plan_id, dropped), None)?;
                    }
                    push(Role::Plan, plan_doc.id.clone(), Some(&plan_doc.source))?;
                    held.insert((t, plan_id.clone()), Some(Held { version, object_ids: new_ids }));
                }
                None => {
                    for gone in old_ids.iter().filter(|id| **id != plan_id) {
                        push(Role::Drop, doc_id(&plan_id, gone), None)?;
                    }
                    push(Role::Plan, plan_id.to_string(), None)?;
                    held.insert((t, plan_id.clone()), Some(Held { version, object_ids: Vec::new() }));
                }
            }
        }
        lines.push(segment);
    }

    let answers = send_bulks(cluster, &lines, refresh).await?;
    let cleanup = settle(&items, &answers, &mut outcomes)?;
    if !cleanup.is_empty() {
        // Children whose plan document was not written: delete them again. Above their version
        // when a newer delete refused the plan (its tombstone is newer anyway); at their own
        // version when the plan document was refused for what it is, so that the plan's next
        // version can write those documents again.
        let mut body = Vec::new();
        for (item, cleanup) in &cleanup {
            let (version, version_type) = match cleanup {
                Cleanup::Superseded => (item.version + 1, "external"),
                Cleanup::Refused => (item.version, "external_gte"),
            };
            let meta = json!({"delete": {"_index": targets[item.target], "_id": item.doc_id, "routing": item.plan_id, "version": version, "version_type": version_type}});
            serde_json::to_writer(&mut body, &meta).map_err(IndexError::corrupt)?;
            body.push(b'\n');
        }
        let answers = send_bulks(cluster, &[body], refresh).await?;
        if let Some(answer) = answers.iter().find(|answer| is_transient(answer.status)) {
            return Err(failure("bulk cleanup", answer.status, &answer.body));
        }
    }
    for (t, target) in targets.iter().enumerate().skip(contended_from) {
        scrub(cluster, target, &written_plans(&items, &answers, t), refresh).await?;
    }
    Ok(outcomes.into_iter().map(|o| o.unwrap_or(ChangeOutcome::Applied)).collect())
}

/// The plans whose plan document (or a delete's tombstone) was written to target `t`, each with
/// the highest version written.
fn written_plans(items: &[Item], answers: &[Answer], t: usize) -> BTreeMap<ObjectId, u64> {
    let mut plans: BTreeMap<ObjectId, u64> = BTreeMap::new();
    for (item, answer) in items.iter().zip(answers) {
        let not_found_delete = answer.status == 404 && answer.body.get("result").and_then(Value::as_str) == Some("not_found");
        if item.target == t && item.role == Role::Plan && ((200..300).contains(&answer.status) || not_found_delete) {
            let version = plans.entry(item.plan_id.clone()).or_default();
            *version = (*version).max(item.version);
        }
    }
    plans
}

/// Deletes, in `target`, every document of these plans below the version written: what another
/// applier wrote for an older version and this one could not know of (see [`apply`]).
async fn scrub(cluster: &Cluster, target: &str, plans: &BTreeMap<ObjectId, u64>, refresh: bool) -> Result<(), IndexError> {
    if plans.is_empty() {
        return Ok(());
    }
    let refreshed = cluster.send(Method::Post, &format!("/{target}/_refresh"), &[], None).await?;
    if refreshed.error_type() == "index_not_found_exception" {
        return Ok(()); // The rebuild finished or was dropped meanwhile.
    }
    refreshed.ok("refresh before the scrub")?;
    let plans: Vec<(&ObjectId, &u64)> = plans.iter().collect();
    for chunk in plans.chunks(SCRUB_PLANS_PER_REQUEST) {
        let stale: Vec<Value> = chunk
            .iter()
            .map(|(plan_id, version)| json!({"bool": {"filter": [{"term": {"planId": plan_id.as_str()}}, {"range": {"planVersion": {"lt": version}}}]}}))
            .collect();
        let routing = chunk.iter().map(|(plan_id, _)| plan_id.as_str()).collect::<Vec<_>>().join(",");
        let mut query = vec![("conflicts", "proceed"), ("routing", routing.as_str())];
        if refresh {
            query.push(("refresh", "true"));
        }
        let body = json!({"query": {"bool": {"should": stale, "minimum_should_match": 1}}});
        let reply = cluster.json(Method::Post, &format!("/{target}/_delete_by_query"), &query, &body).await?;
        if reply.error_type() == "index_not_found_exception" {
            return Ok(());
        }
        let answer = reply.ok("delete_by_query of stale documents")?;
        if let Some(deleted) = answer.get("deleted").and_then(Value::as_u64).filter(|n| *n > 0) {
            tracing::warn!(target, deleted, "removed documents another applier left at an older version");
        }
    }
    Ok(())
}

/// What each target holds for each plan of the batch: None for no plan document.
type HeldState = HashMap<(usize, ObjectId), Option<Held>>;

/// The realtime multi-get: for every target and plan, its plan document's version and objectIds.
/// Returns the state and the targets that exist (the first must).
async fn held_state(cluster: &Cluster, targets: &[&str], changes: &[IndexChange]) -> Result<(HeldState, Vec<usize>), IndexError> {
    let mut plan_ids: Vec<&ObjectId> = changes.iter().map(IndexChange::plan_id).collect();
    plan_ids.sort();
    plan_ids.dedup();
    let mut keys = Vec::new();
    let mut docs = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for id in &plan_ids {
            keys.push((t, (*id).clone()));
            docs.push(json!({"_index": target, "_id": id, "routing": id, "_source": ["objectIds"]}));
        }
    }
    let reply = cluster.json(opensearch::http::Method::Post, "/_mget", &[], &json!({"docs": docs})).await?;
    let body = reply.ok("multi-get of plan documents")?;
    let found = body.get("docs").and_then(Value::as_array).ok_or_else(|| IndexError::corrupt("multi-get answer without docs"))?;
    if found.len() != keys.len() {
        return Err(IndexError::corrupt("multi-get answered a different number of docs"));
    }
    let mut held = HashMap::new();
    let mut missing = vec![false; targets.len()];
    for (key, doc) in keys.into_iter().zip(found) {
        if doc.get("error").is_some() {
            if error_type(doc) == "index_not_found_exception" {
                missing[key.0] = true;
                continue;
            }
            return Err(IndexError::unavailable(format!("multi-get: {}", error_reason(doc))));
        }
        let state = if doc.get("found").and_then(Value::as_bool) == Some(true) {
            let version =
                doc.get("_version").and_then(Value::as_u64).ok_or_else(|| IndexError::corrupt("plan document without _version"))?;
            let object_ids = doc
                .pointer("/_source/objectIds")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_str).filter_map(|id| ObjectId::parse(id).ok()).collect())
                .unwrap_or_default();
            Some(Held { version, object_ids })
        } else {
            None
        };
        held.insert(key, state);
    }
    if missing[0] {
        return Err(IndexError::unavailable(format!("the index alias '{}' does not exist", targets[0])));
    }
    let live = (0..targets.len()).filter(|t| !missing[*t]).collect();
    Ok((held, live))
}

/// One bulk item's status and answer.
struct Answer {
    status: u16,
    body: Value,
}

/// Sends the segments in as few bulk requests as the size cap allows; returns each item's
/// answer, in order.
async fn send_bulks(cluster: &Cluster, segments: &[Vec<u8>], refresh: bool) -> Result<Vec<Answer>, IndexError> {
    let mut query = vec![("require_alias", "true")];
    if refresh {
        query.push(("refresh", "wait_for"));
    }
    let mut out = Vec::new();
    let mut body = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        body.extend_from_slice(segment);
        let last = i + 1 == segments.len();
        let next_too_big = segments.get(i + 1).is_some_and(|next| body.len() + next.len() > MAX_BULK_BYTES);
        if body.is_empty() || !(last || next_too_big) {
            continue;
        }
        let reply = cluster.ndjson("/_bulk", &query, std::mem::take(&mut body)).await?;
        let answer = reply.ok("bulk")?;
        let items = answer.get("items").and_then(Value::as_array).ok_or_else(|| IndexError::corrupt("bulk answer without items"))?;
        for item in items {
            let body = item.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null);
            let status = body.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
            out.push(Answer { status, body });
        }
    }
    Ok(out)
}

/// Why a written child is deleted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cleanup {
    /// A newer delete's tombstone refused the plan document.
    Superseded,
    /// The cluster refused the plan document itself (a mapping it cannot take): the change is
    /// rejected, and children left behind would be joined to the previous plan document and
    /// match searches.
    Refused,
}

/// Turns item results into outcomes; returns the children to delete again.
fn settle<'a>(
    items: &'a [Item],
    answers: &[Answer],
    outcomes: &mut [Option<ChangeOutcome>],
) -> Result<Vec<(&'a Item, Cleanup)>, IndexError> {
    if answers.len() != items.len() {
        return Err(IndexError::corrupt(format!("bulk answered {} items for {}", answers.len(), items.len())));
    }
    let mut groups: BTreeMap<(usize, usize), Vec<(&Item, &Answer)>> = BTreeMap::new();
    for (item, answer) in items.iter().zip(answers) {
        if is_transient(answer.status) {
            return Err(failure(&format!("bulk item {}", item.doc_id), answer.status, &answer.body));
        }
        groups.entry((item.change, item.target)).or_default().push((item, answer));
    }
    let mut cleanup = Vec::new();
    for ((change, target), group) in groups {
        let mut rejected = None;
        for (item, answer) in &group {
            let not_found_delete = answer.status == 404 && answer.body.get("result").and_then(Value::as_str) == Some("not_found");
            if target > 0 && error_type(&answer.body) == "index_not_found_exception" {
                continue; // The rebuild finished or was dropped meanwhile.
            }
            if !(200..300).contains(&answer.status) && answer.status != 409 && !not_found_delete {
                rejected = Some(format!("document {}: {}", item.doc_id, error_reason(&answer.body)));
            }
        }
        let plan_status = group.iter().find(|(item, _)| item.role == Role::Plan).map(|(_, answer)| answer.status);
        let written = || group.iter().filter(|(item, answer)| item.role == Role::Child && (200..300).contains(&answer.status));
        let outcome = match (rejected, plan_status) {
            (Some(reason), Some(status)) if !(200..300).contains(&status) && status != 409 => {
                cleanup.extend(written().map(|(item, _)| (*item, Cleanup::Refused)));
                ChangeOutcome::Rejected(reason)
            }
            (Some(reason), _) => ChangeOutcome::Rejected(reason),
            (None, Some(409)) => {
                cleanup.extend(written().map(|(item, _)| (*item, Cleanup::Superseded)));
                ChangeOutcome::AlreadyApplied
            }
            (None, _) => ChangeOutcome::Applied,
        };
        if target == 0 {
            outcomes[change] = Some(outcome);
        } else if let ChangeOutcome::Rejected(reason) = outcome {
            tracing::warn!(%reason, "the rebuild index refused a change");
        }
    }
    Ok(cleanup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(role: Role, doc_id: &str) -> Item {
        Item { change: 0, target: 0, role, doc_id: doc_id.to_owned(), plan_id: ObjectId::parse("p").unwrap(), version: 3 }
    }

    fn answer(status: u16) -> Answer {
        let body = if status == 400 {
            json!({"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [creationDate]"}})
        } else {
            json!({"status": status, "result": "created"})
        };
        Answer { status, body }
    }

    #[test]
    fn children_of_a_refused_plan_document_are_deleted_again() {
        let items = [item(Role::Child, "p:a"), item(Role::Child, "p:b"), item(Role::Drop, "p:old"), item(Role::Plan, "p")];
        let answers = [answer(201), answer(201), answer(200), answer(400)];
        let mut outcomes = vec![None];
        let cleanup = settle(&items, &answers, &mut outcomes).unwrap();
        assert!(matches!(&outcomes[0], Some(ChangeOutcome::Rejected(reason)) if reason.contains("document p:")), "{outcomes:?}");
        let cleaned: Vec<(&str, Cleanup)> = cleanup.iter().map(|(item, why)| (item.doc_id.as_str(), *why)).collect();
        assert_eq!(cleaned, [("p:a", Cleanup::Refused), ("p:b", Cleanup::Refused)]);
    }

    #[test]
    fn a_refused_child_alone_leaves_the_written_plan_document_in_place() {
        // The plan document was written: its children of this version stay (the change is
        // reported as rejected, the drift check shows the missing child).
        let items = [item(Role::Child, "p:a"), item(Role::Plan, "p")];
        let answers = [answer(400), answer(201)];
        let mut outcomes = vec![None];
        assert!(settle(&items, &answers, &mut outcomes).unwrap().is_empty());
        assert!(matches!(&outcomes[0], Some(ChangeOutcome::Rejected(_))));
    }

    #[test]
    fn children_of_a_plan_a_newer_delete_refused_are_deleted_above_their_version() {
        let items = [item(Role::Child, "p:a"), item(Role::Plan, "p")];
        let answers = [answer(201), answer(409)];
        let mut outcomes = vec![None];
        let cleanup = settle(&items, &answers, &mut outcomes).unwrap();
        assert_eq!(outcomes[0], Some(ChangeOutcome::AlreadyApplied));
        assert_eq!(cleanup.iter().map(|(i, why)| (i.doc_id.as_str(), *why)).collect::<Vec<_>>(), [("p:a", Cleanup::Superseded)]);
    }
}
