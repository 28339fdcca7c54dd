//! The clients a process needs, built once per cold start from the configuration.

use std::sync::Arc;

use plan::store::{PlanWriter, Probe, StoreError};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_store::{EmbeddedStore, RedisStore};

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    store: Arc<dyn PlanWriter>,
    probes: Vec<Arc<dyn Probe>>,
    policy: WritePolicy,
}

impl Backends {
    /// Redis when `REDIS_URL` is set, else the embedded store. Connects lazily: a cold start never
    /// waits for or fails on an unreachable backend; requests answer 503 until it is back.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        plan::validate::warm_up();
        Ok(match &config.redis {
            Some(redis) => {
                let store = Arc::new(RedisStore::new(redis)?);
                Self { store: store.clone(), probes: vec![store], policy: config.write_policy }
            }
            None => Self::embedded(config.write_policy),
        })
    }

    /// Everything in memory, for the local server and tests.
    pub fn embedded(policy: WritePolicy) -> Self {
        let store = Arc::new(EmbeddedStore::new());
        Self { store: store.clone(), probes: vec![store], policy }
    }

    /// Any store, for tests that bring their own.
    pub fn with_store<S: PlanWriter + Probe + 'static>(store: Arc<S>, policy: WritePolicy) -> Self {
        Self { store: store.clone(), probes: vec![store], policy }
    }

    pub fn reads(&self) -> PlanReads {
        PlanReads::new(self.store.clone())
    }

    pub fn writes(&self) -> PlanWrites {
        PlanWrites::new(self.store.clone(), self.policy)
    }

    pub fn probes(&self) -> Vec<Arc<dyn Probe>> {
        self.probes.clone()
    }
}
