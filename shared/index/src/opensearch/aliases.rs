//! The indices behind the alias: the first one, rebuilds into a fresh index under
//! `<alias>-rebuild`, and the atomic swap.

use std::time::{SystemTime, UNIX_EPOCH};

use opensearch::http::Method;
use serde_json::{Value, json};

use super::client::Cluster;
use super::mapping::index_definition;
use crate::error::IndexError;

pub(super) fn rebuild_alias(alias: &str) -> String {
    format!("{alias}-rebuild")
}

/// The concrete indices an alias points to (none when it does not exist).
pub(super) async fn indices_of(cluster: &Cluster, alias: &str) -> Result<Vec<String>, IndexError> {
    let reply = cluster.send(Method::Get, &format!("/_alias/{alias}"), &[], None).await?;
    if reply.status == 404 {
        return Ok(Vec::new());
    }
    let body = reply.ok("alias lookup")?;
    let mut indices: Vec<String> = body.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    indices.sort();
    Ok(indices)
}

async fn create_index(cluster: &Cluster, name: &str) -> Result<(), IndexError> {
    let reply = cluster.json(Method::Put, &format!("/{name}"), &[], &index_definition()).await?;
    if reply.is_success() || reply.error_type() == "resource_already_exists_exception" {
        Ok(())
    } else {
        reply.ok(&format!("create index {name}")).map(drop)
    }
}

async fn alias_actions(cluster: &Cluster, actions: Vec<Value>) -> Result<(), IndexError> {
    cluster.json(Method::Post, "/_aliases", &[], &json!({"actions": actions})).await?.ok("alias update").map(drop)
}

async fn delete_indices(cluster: &Cluster, names: &[String]) -> Result<(), IndexError> {
    for name in names {
        let reply = cluster.send(Method::Delete, &format!("/{name}"), &[], None).await?;
        if !reply.is_success() && reply.status != 404 {
            reply.ok(&format!("delete index {name}"))?;
        }
    }
    Ok(())
}

/// Creates the first index and points the alias to it, unless the alias exists. Its name is
/// fixed so that processes starting together create one index, not one each.
pub(super) async fn ensure_live(cluster: &Cluster, alias: &str) -> Result<(), IndexError> {
    if !indices_of(cluster, alias).await?.is_empty() {
        return Ok(());
    }
    let first = format!("{alias}-initial");
    create_index(cluster, &first).await?;
    alias_actions(cluster, vec![json!({"add": {"index": first, "alias": alias}})]).await
}

/// A fresh index under the rebuild alias; an unfinished earlier rebuild is deleted.
pub(super) async fn begin(cluster: &Cluster, alias: &str) -> Result<String, IndexError> {
    let rebuild = rebuild_alias(alias);
    let abandoned = indices_of(cluster, &rebuild).await?;
    if !abandoned.is_empty() {
        tracing::warn!(?abandoned, "deleting the index of an unfinished rebuild");
        delete_indices(cluster, &abandoned).await?;
    }
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let name = format!("{alias}-{seconds}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    create_index(cluster, &name).await?;
    alias_actions(cluster, vec![json!({"add": {"index": name, "alias": rebuild}})]).await?;
    Ok(name)
}

/// Whether `name` is still the index of the running rebuild.
pub(super) async fn is_running(cluster: &Cluster, alias: &str, name: &str) -> Result<bool, IndexError> {
    Ok(indices_of(cluster, &rebuild_alias(alias)).await? == [name.to_owned()])
}

/// Points the alias to the rebuilt index and drops the rebuild alias in one atomic update, then
/// deletes the indices the alias left.
pub(super) async fn finish(cluster: &Cluster, alias: &str, name: &str) -> Result<(), IndexError> {
    let old = indices_of(cluster, alias).await?;
    let mut actions: Vec<Value> = old.iter().map(|index| json!({"remove": {"index": index, "alias": alias}})).collect();
    actions.push(json!({"add": {"index": name, "alias": alias}}));
    actions.push(json!({"remove": {"index": name, "alias": rebuild_alias(alias)}}));
    alias_actions(cluster, actions).await?;
    let stale: Vec<String> = old.into_iter().filter(|index| index != name).collect();
    if let Err(error) = delete_indices(cluster, &stale).await {
        // Searches already read the new index; a left-over old one only costs space.
        tracing::warn!(%error, ?stale, "could not delete the indices replaced by a rebuild");
    }
    Ok(())
}

pub(super) async fn abort(cluster: &Cluster, name: &str) -> Result<(), IndexError> {
    delete_indices(cluster, &[name.to_owned()]).await
}

/// Deletes every index behind the alias and the rebuild alias.
pub(super) async fn delete_all(cluster: &Cluster, alias: &str) -> Result<(), IndexError> {
    let mut names = indices_of(cluster, alias).await?;
    names.extend(indices_of(cluster, &rebuild_alias(alias)).await?);
    delete_indices(cluster, &names).await
}
