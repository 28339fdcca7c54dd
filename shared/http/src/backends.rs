//! The clients a process needs, built once per cold start from the configuration. Building them
//! opens no connection: a cold start never waits for, or fails on, an unreachable backend or
//! issuer, and requests answer 503 until it is back.

use std::sync::Arc;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use plan::metered::{MeteredPublisher, MeteredStore};
use plan::store::{PlanWriter, Probe, StoreError, StoreWalk};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_events::indexer::{DeadLetters, Indexer, KafkaDeadLetters, MemoryDeadLetters};
use plan_events::{InProcessBus, KafkaPublisher};
use plan_index::{EmbeddedIndex, IndexReads, MeteredIndex, OpenSearchIndex, PlanIndex};
use plan_store::{EmbeddedStore, RedisStore};

use crate::auth::{AuthSetupError, Authenticator, ClaimRules};
use crate::config::{Config, Deployment};

#[derive(Clone)]
pub struct Backends {
    store: Arc<dyn PlanWriter>,
    walk: Arc<dyn StoreWalk>,
    publisher: Arc<dyn ChangePublisher>,
    index: Arc<dyn PlanIndex>,
    indexer: Arc<Indexer>,
    probes: Vec<Arc<dyn Probe>>,
    policy: WritePolicy,
    auth: Authenticator,
}

/// A store as the backends need it: reads, writes, the reindex walk and a health probe.
pub trait Store: PlanWriter + StoreWalk + Probe {}
impl<T: PlanWriter + StoreWalk + Probe> Store for T {}

/// Why a cold start could not build its clients.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error(transparent)]
    Index(#[from] plan_index::IndexError),
}

impl Backends {
    /// The store is Redis when `REDIS_URL` is set, else embedded; the index OpenSearch when
    /// `OPENSEARCH_URL` is set, else embedded. Change events go to Kafka when
    /// `KAFKA_BOOTSTRAP_SERVERS` (or `MSK_CLUSTER_ARN`) is set; otherwise, locally, through an
    /// in-process bus into the indexer, and on Lambda nowhere (only writing functions publish,
    /// and they refuse to start without Kafka). Callers are authenticated as configured.
    pub fn from_config(config: &Config, deployment: Deployment) -> Result<Self, StartupError> {
        plan::validate::warm_up();
        let store: Arc<dyn Store> = match &config.redis {
            Some(redis) => Arc::new(RedisStore::new(redis)?),
            None => Arc::new(EmbeddedStore::new()),
        };
        let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store));
        let index: Arc<dyn PlanIndex> = match &config.opensearch {
            Some(opensearch) => Arc::new(OpenSearchIndex::new(opensearch)?),
            None => Arc::new(EmbeddedIndex::new()),
        };
        let index: Arc<dyn PlanIndex> = Arc::new(MeteredIndex::new(index));
        let dead_letters: Arc<dyn DeadLetters> = match &config.kafka {
            Some(kafka) => {
                let mut dead_letter_topic = kafka.clone();
                dead_letter_topic.topic = config.dead_letter_topic.clone();
                Arc::new(KafkaDeadLetters(KafkaPublisher::new(dead_letter_topic)))
            }
            None => Arc::new(MemoryDeadLetters::default()),
        };
        let indexer = Arc::new(Indexer::new(index.clone(), dead_letters));
        let mut probes: Vec<Arc<dyn Probe>> = vec![store.clone(), index.clone()];
        let publisher: Arc<dyn ChangePublisher> = match (&config.kafka, deployment) {
            (Some(kafka), _) => {
                let kafka = Arc::new(KafkaPublisher::new(kafka.clone()));
                probes.push(kafka.clone());
                kafka
            }
            (None, Deployment::Local) => InProcessBus::start(&config.topic, indexer.clone()),
            (None, Deployment::Lambda) => Arc::new(NoPublisher),
        };
        let publisher: Arc<dyn ChangePublisher> = Arc::new(MeteredPublisher::new(publisher));
        let claims = ClaimRules {
            org_claim: config.org_claim.clone(),
            default_scopes: config.default_scopes.clone(),
            scope_names: config.scope_names.clone(),
        };
        let auth = Authenticator::from_config(&config.auth, claims)?;
        Ok(Self { store: store.clone(), walk: store, publisher, index, indexer, probes, policy: config.write_policy, auth })
    }

    /// Everything in memory, wired as the local server wires it (an in-process bus into an
    /// embedded index), for tests. Protected routes refuse every request until
    /// [`Self::with_auth`] says how to authenticate (fail closed). Needs a Tokio runtime.
    pub fn embedded(policy: WritePolicy) -> Self {
        Self::with_store(Arc::new(EmbeddedStore::new()), policy)
    }

    /// Any store, with the local wiring of [`Self::embedded`]. Fails closed like it.
    pub fn with_store<S: Store + 'static>(store: Arc<S>, policy: WritePolicy) -> Self {
        let index: Arc<dyn PlanIndex> = Arc::new(MeteredIndex::new(Arc::new(EmbeddedIndex::new())));
        let indexer = Arc::new(Indexer::new(index.clone(), Arc::new(MemoryDeadLetters::default())));
        let publisher = InProcessBus::start("plan_operations", indexer.clone());
        Self::assemble(store, publisher, index, indexer, policy)
    }

    /// Any store and publisher over an embedded index, for tests. Fails closed like
    /// [`Self::embedded`].
    pub fn with_parts<S: Store + 'static>(store: Arc<S>, publisher: Arc<dyn ChangePublisher>, policy: WritePolicy) -> Self {
        let index: Arc<dyn PlanIndex> = Arc::new(MeteredIndex::new(Arc::new(EmbeddedIndex::new())));
        let indexer = Arc::new(Indexer::new(index.clone(), Arc::new(MemoryDeadLetters::default())));
        Self::assemble(store, publisher, index, indexer, policy)
    }

    fn assemble<S: Store + 'static>(
        store: Arc<S>,
        publisher: Arc<dyn ChangePublisher>,
        index: Arc<dyn PlanIndex>,
        indexer: Arc<Indexer>,
        policy: WritePolicy,
    ) -> Self {
        let store = Arc::new(MeteredStore::new(store));
        let publisher: Arc<dyn ChangePublisher> = Arc::new(MeteredPublisher::new(publisher));
        let probes: Vec<Arc<dyn Probe>> = vec![store.clone(), index.clone()];
        Self { store: store.clone(), walk: store, publisher, index, indexer, probes, policy, auth: Authenticator::refuse_all() }
    }

    /// These backends over another search index (tests bring a filled one); the in-process bus
    /// and the indexer are rewired onto it.
    pub fn with_index(mut self, index: Arc<dyn PlanIndex>) -> Self {
        let index: Arc<dyn PlanIndex> = Arc::new(MeteredIndex::new(index));
        self.indexer = Arc::new(Indexer::new(index.clone(), Arc::new(MemoryDeadLetters::default())));
        self.publisher = Arc::new(MeteredPublisher::new(InProcessBus::start("plan_operations", self.indexer.clone())));
        self.probes = vec![self.probes[0].clone(), index.clone()];
        self.index = index;
        self
    }

    /// The same backends, authenticating callers with `auth`.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = auth;
        self
    }

    pub fn auth(&self) -> &Authenticator {
        &self.auth
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

    pub fn index(&self) -> Arc<dyn PlanIndex> {
        self.index.clone()
    }

    pub fn index_reads(&self) -> IndexReads {
        IndexReads::new(self.index.clone())
    }

    /// The indexer over this process's index: what the Lambda indexer, the local poller and the
    /// in-process bus all run.
    pub fn indexer(&self) -> Arc<Indexer> {
        self.indexer.clone()
    }
}

/// The publisher of functions that never write (reads, health, schema, search): should one ever
/// publish, it fails loudly instead of dropping the event.
struct NoPublisher;

#[async_trait]
impl ChangePublisher for NoPublisher {
    async fn publish(&self, _event: &ChangeEvent) -> Result<(), PublishError> {
        Err(PublishError::new("KAFKA_BOOTSTRAP_SERVERS is not configured for this function"))
    }
}
