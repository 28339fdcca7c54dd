//! The clients a process needs, built once per cold start from the configuration. Building them
//! opens no connection: a cold start never waits for, or fails on, an unreachable backend, and
//! requests answer 503 until it is back.

use std::sync::Arc;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use plan::store::{PlanWriter, Probe, StoreError, StoreWalk};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_events::KafkaPublisher;
use plan_store::{EmbeddedStore, RedisStore};

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    store: Arc<dyn PlanWriter>,
    walk: Arc<dyn StoreWalk>,
    publisher: Arc<dyn ChangePublisher>,
    probes: Vec<Arc<dyn Probe>>,
    policy: WritePolicy,
}

/// A store as the backends need it: reads, writes, the reindex walk and a health probe.
pub trait Store: PlanWriter + StoreWalk + Probe {}
impl<T: PlanWriter + StoreWalk + Probe> Store for T {}

impl Backends {
    /// Redis when `REDIS_URL` is set, else the embedded store; Kafka when
    /// `KAFKA_BOOTSTRAP_SERVERS` is set, else `local_events` (the local server's in-process bus).
    pub fn from_config(config: &Config, local_events: Option<Arc<dyn ChangePublisher>>) -> Result<Self, StoreError> {
        plan::validate::warm_up();
        let store: Arc<dyn Store> = match &config.redis {
            Some(redis) => Arc::new(RedisStore::new(redis)?),
            None => Arc::new(EmbeddedStore::new()),
        };
        let mut probes: Vec<Arc<dyn Probe>> = vec![store.clone()];
        let publisher: Arc<dyn ChangePublisher> = match (&config.kafka, local_events) {
            (Some(kafka), _) => {
                let kafka = Arc::new(KafkaPublisher::new(kafka.clone()));
                probes.push(kafka.clone());
                kafka
            }
            (None, Some(local)) => local,
            // A function that never writes (reads, health, schema) needs no Kafka; should one
            // ever publish, it fails loudly instead of dropping the event.
            (None, None) => Arc::new(NoPublisher),
        };
        Ok(Self::assemble(store, publisher, probes, config.write_policy))
    }

    /// Any store and publisher, for tests and the local server.
    pub fn with_parts<S: Store + 'static>(store: Arc<S>, publisher: Arc<dyn ChangePublisher>, policy: WritePolicy) -> Self {
        Self::assemble(store.clone(), publisher, vec![store], policy)
    }

    fn assemble(store: Arc<dyn Store>, publisher: Arc<dyn ChangePublisher>, probes: Vec<Arc<dyn Probe>>, policy: WritePolicy) -> Self {
        Self { store: store.clone(), walk: store, publisher, probes, policy }
    }

    pub fn reads(&self) -> PlanReads {
        PlanReads::new(self.store.clone())
    }

    pub fn writes(&self) -> PlanWrites {
        PlanWrites::new(self.store.clone(), self.publisher.clone(), self.policy)
    }

    pub fn probes(&self) -> Vec<Arc<dyn Probe>> {
        self.probes.clone()
    }

    pub fn store(&self) -> Arc<dyn PlanWriter> {
        self.store.clone()
    }

    pub fn walk(&self) -> Arc<dyn StoreWalk> {
        self.walk.clone()
    }

    pub fn publisher(&self) -> Arc<dyn ChangePublisher> {
        self.publisher.clone()
    }
}

struct NoPublisher;

#[async_trait]
impl ChangePublisher for NoPublisher {
    async fn publish(&self, _event: &ChangeEvent) -> Result<(), PublishError> {
        Err(PublishError::new("KAFKA_BOOTSTRAP_SERVERS is not configured for this function"))
    }
}
