//! The clients a process needs, built once per cold start from the configuration.

use std::sync::Arc;

use plan::store::{PlanWriter, Probe, StoreError};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_index::{EmbeddedIndex, IndexReads, OpenSearchIndex, PlanIndex};
use plan_store::{EmbeddedStore, RedisStore};

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    store: Arc<dyn PlanWriter>,
    store_probe: Arc<dyn Probe>,
    index: Arc<dyn PlanIndex>,
    policy: WritePolicy,
}

impl Backends {
    /// Redis when `REDIS_URL` is set, else the embedded store; OpenSearch when `OPENSEARCH_URL`
    /// is set, else the embedded index. Connects lazily: a cold start never waits for or fails on
    /// an unreachable backend; requests answer 503 until it is back.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        plan::validate::warm_up();
        let (store, store_probe): (Arc<dyn PlanWriter>, Arc<dyn Probe>) = match &config.redis {
            Some(redis) => {
                let store = Arc::new(RedisStore::new(redis)?);
                (store.clone(), store)
            }
            None => {
                let store = Arc::new(EmbeddedStore::new());
                (store.clone(), store)
            }
        };
        let index: Arc<dyn PlanIndex> = match &config.opensearch {
            Some(opensearch) => Arc::new(OpenSearchIndex::new(opensearch)?),
            None => Arc::new(EmbeddedIndex::new()),
        };
        Ok(Self { store, store_probe, index, policy: config.write_policy })
    }

    /// Everything in memory, for the local server and tests.
    pub fn embedded(policy: WritePolicy) -> Self {
        Self::with_store(Arc::new(EmbeddedStore::new()), policy)
    }

    /// Any store (and the embedded index), for tests that bring their own.
    pub fn with_store<S: PlanWriter + Probe + 'static>(store: Arc<S>, policy: WritePolicy) -> Self {
        Self { store: store.clone(), store_probe: store, index: Arc::new(EmbeddedIndex::new()), policy }
    }

    /// These backends with another search index (tests bring a filled one).
    pub fn with_index(mut self, index: Arc<dyn PlanIndex>) -> Self {
        self.index = index;
        self
    }

    pub fn reads(&self) -> PlanReads {
        PlanReads::new(self.store.clone())
    }

    pub fn writes(&self) -> PlanWrites {
        PlanWrites::new(self.store.clone(), self.policy)
    }

    /// The search index, for the indexer that keeps it up to date.
    pub fn index(&self) -> Arc<dyn PlanIndex> {
        self.index.clone()
    }

    pub fn index_reads(&self) -> IndexReads {
        IndexReads::new(self.index.clone())
    }

    /// The store and the search index, for `GET /v1/health`.
    pub fn probes(&self) -> Vec<Arc<dyn Probe>> {
        vec![self.store_probe.clone(), self.index.clone()]
    }
}
