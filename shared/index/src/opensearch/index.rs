//! The OpenSearch / Elasticsearch adapter of the index port.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use opensearch::http::Method;
use plan::probe::{Probe, ProbeError};
use plan::{ObjectId, Tenant};

use super::client::Cluster;
use super::config::OpenSearchConfig;
use super::{aliases, client, read, write};
use crate::document::RebuiltPlan;
use crate::error::IndexError;
use crate::port::{ChangeOutcome, IndexChange, IndexedDocument, IndexedPlan, ParentRelation, PlanIndex, RebuildTarget, SearchPage};
use crate::query::SearchQuery;

pub struct OpenSearchIndex {
    cluster: Cluster,
    alias: String,
    refresh_on_write: bool,
    /// Set once the alias is known to exist, so a warm process does not ask again.
    live_ready: AtomicBool,
}

impl OpenSearchIndex {
    /// Builds the client; connects lazily, so a cold start never waits for the cluster.
    pub fn new(config: &OpenSearchConfig) -> Result<Self, IndexError> {
        Ok(Self {
            cluster: Cluster::new(config)?,
            alias: config.alias.clone(),
            refresh_on_write: config.refresh_on_write,
            live_ready: AtomicBool::new(false),
        })
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Creates the first index behind the alias unless it exists (writes do this on first use).
    pub async fn ensure_index(&self) -> Result<(), IndexError> {
        if !self.live_ready.load(Ordering::Relaxed) {
            aliases::ensure_live(&self.cluster, &self.alias).await?;
            self.live_ready.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The concrete indices behind the alias.
    pub async fn indices(&self) -> Result<Vec<String>, IndexError> {
        aliases::indices_of(&self.cluster, &self.alias).await
    }

    /// The mapping of the index behind the alias, as the cluster reports it.
    pub async fn mapping(&self) -> Result<serde_json::Value, IndexError> {
        self.cluster.send(Method::Get, &format!("/{}/_mapping", self.alias), &[], None).await?.ok("mapping")
    }

    /// The words the cluster's `standard` analyzer makes of a text (to check [`crate::analysis`]).
    pub async fn analyze(&self, text: &str) -> Result<Vec<String>, IndexError> {
        let body = serde_json::json!({"analyzer": "standard", "text": text});
        let answer = self.cluster.json(Method::Post, "/_analyze", &[], &body).await?.ok("analyze")?;
        Ok(answer
            .get("tokens")
            .and_then(serde_json::Value::as_array)
            .map(|tokens| tokens.iter().filter_map(|t| t.get("token").and_then(serde_json::Value::as_str).map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Deletes every index behind the alias and a rebuild's (tests and tear-down).
    pub async fn delete_all(&self) -> Result<(), IndexError> {
        self.live_ready.store(false, Ordering::Relaxed);
        aliases::delete_all(&self.cluster, &self.alias).await
    }

    async fn apply_to_targets(&self, targets: &[&str], changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        // The live alias has one applier; a running rebuild's index two (see write::apply).
        let result = write::apply(&self.cluster, targets, 1, changes, self.refresh_on_write).await;
        if result.is_err() {
            // Perhaps the alias went away; look again before the retry.
            self.live_ready.store(false, Ordering::Relaxed);
        }
        result
    }

    async fn running_rebuild(&self, target: &RebuildTarget) -> Result<(), IndexError> {
        if aliases::is_running(&self.cluster, &self.alias, target.name()).await? {
            Ok(())
        } else {
            Err(IndexError::rejected(format!("'{}' is not the running rebuild (superseded or finished)", target.name())))
        }
    }
}

#[async_trait]
impl PlanIndex for OpenSearchIndex {
    async fn apply(&self, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        self.ensure_index().await?;
        let rebuild = aliases::rebuild_alias(&self.alias);
        self.apply_to_targets(&[&self.alias, &rebuild], changes).await
    }

    async fn indexed(&self, plan_id: &ObjectId) -> Result<Option<IndexedPlan>, IndexError> {
        read::indexed(&self.cluster, &self.alias, plan_id).await
    }

    async fn begin_rebuild(&self) -> Result<RebuildTarget, IndexError> {
        self.ensure_index().await?;
        Ok(RebuildTarget { name: aliases::begin(&self.cluster, &self.alias).await? })
    }

    async fn apply_to(&self, target: &RebuildTarget, changes: &[IndexChange]) -> Result<Vec<ChangeOutcome>, IndexError> {
        self.running_rebuild(target).await?;
        let rebuild = aliases::rebuild_alias(&self.alias);
        write::apply(&self.cluster, &[&rebuild], 0, changes, self.refresh_on_write).await
    }

    async fn finish_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        self.running_rebuild(&target).await?;
        aliases::finish(&self.cluster, &self.alias, target.name()).await
    }

    async fn abort_rebuild(&self, target: RebuildTarget) -> Result<(), IndexError> {
        self.running_rebuild(&target).await?;
        aliases::abort(&self.cluster, target.name()).await
    }

    async fn search(&self, query: &SearchQuery, tenant: &Tenant) -> Result<SearchPage, IndexError> {
        read::search(&self.cluster, &self.alias, query, tenant).await
    }

    async fn plan_from_index(&self, plan_id: &ObjectId, tenant: &Tenant) -> Result<Option<RebuiltPlan>, IndexError> {
        read::plan_from_index(&self.cluster, &self.alias, plan_id, tenant).await
    }

    async fn document(&self, object_id: &ObjectId, tenant: &Tenant) -> Result<Option<IndexedDocument>, IndexError> {
        read::document(&self.cluster, &self.alias, object_id, tenant).await
    }

    async fn children(
        &self,
        parent: ParentRelation,
        parent_id: &ObjectId,
        tenant: &Tenant,
    ) -> Result<Option<Vec<IndexedDocument>>, IndexError> {
        read::children(&self.cluster, &self.alias, parent, parent_id, tenant).await
    }
}

#[async_trait]
impl Probe for OpenSearchIndex {
    fn name(&self) -> &'static str {
        "opensearch"
    }

    /// Reachable and authorised: `HEAD /<alias>` answers 200, or 404 before the first write.
    async fn ping(&self) -> Result<(), ProbeError> {
        let reply = self.cluster.send(Method::Head, &format!("/{}", self.alias), &[], None).await.map_err(probe_error)?;
        if reply.is_success() || reply.status == 404 {
            Ok(())
        } else {
            Err(probe_error(client::failure("ping", reply.status, &reply.body)))
        }
    }
}

/// An index failure as a probe's: a timeout stays one.
fn probe_error(error: IndexError) -> ProbeError {
    let store: plan::store::StoreError = error.into();
    store.into()
}
