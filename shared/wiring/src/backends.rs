//! The local server's and the tests' composition: every backend, each chosen by configuration
//! (Redis or embedded store, Kafka or the in-process bus, OpenSearch or the embedded index), built
//! once at start. Building them opens no connection: the server starts while a backend is down,
//! and requests answer 503 until it is back. (A Lambda function builds only what its endpoint
//! needs: `crate::lambda::ColdStart`.)

use std::sync::Arc;

use plan::events::ChangePublisher;
use plan::metered::{MeteredPublisher, MeteredStore};
use plan::probe::Probe;
use plan::store::{PlanWriter, StoreError, StoreWalk};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_events::indexer::{DeadLetters, Indexer, MemoryDeadLetters};
use plan_events::{InProcessBus, KafkaDeadLetters, KafkaPublisher};
use plan_index::{EmbeddedIndex, IndexReads, MeteredIndex, OpenSearchIndex, PlanIndex};
use plan_store::{EmbeddedStore, RedisStore};

use plan_http::auth::{AuthSetupError, Authenticator};
use plan_http::{Api, Endpoint};

use crate::config::Config;
use crate::reindex::ReindexParts;

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
    /// `KAFKA_BOOTSTRAP_SERVERS` is set, else through an in-process bus into the indexer.
    /// Callers are authenticated as configured.
    pub fn from_config(config: &Config) -> Result<Self, StartupError> {
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
        let dead_letters: Arc<dyn DeadLetters> = match &config.events.kafka {
            Some(kafka) => {
                let mut dead_letter_topic = kafka.clone();
                dead_letter_topic.topic = config.events.dead_letter_topic.clone();
                Arc::new(KafkaDeadLetters(KafkaPublisher::new(dead_letter_topic)))
            }
            None => Arc::new(MemoryDeadLetters::default()),
        };
        let indexer = Arc::new(Indexer::new(index.clone(), dead_letters));
        let mut probes: Vec<Arc<dyn Probe>> = vec![store.clone(), index.clone()];
        let publisher: Arc<dyn ChangePublisher> = match &config.events.kafka {
            Some(kafka) => {
                let kafka = Arc::new(KafkaPublisher::new(kafka.clone()));
                probes.push(kafka.clone());
                kafka
            }
            None => InProcessBus::start(&config.events.topic, indexer.clone()),
        };
        let publisher: Arc<dyn ChangePublisher> = Arc::new(MeteredPublisher::new(publisher));
        let auth = Authenticator::from_config(&config.auth, config.claims.clone())?;
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
        let store_probe = self.probes.first().cloned();
        self.probes = store_probe.into_iter().chain([index.clone() as Arc<dyn Probe>]).collect();
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

    /// What the reindex jobs walk and write.
    pub fn reindex_parts(&self) -> ReindexParts {
        ReindexParts { walk: self.walk(), store: self.store(), publisher: self.publisher(), index: self.index() }
    }

    /// `endpoints` over these backends (the documentation endpoints among them are 404s in a
    /// build without the `api-docs` feature).
    pub fn api(&self, endpoints: &[Endpoint]) -> Api {
        let mut docs = false;
        let api = endpoints.iter().fold(Api::new(self.auth.clone()), |api, endpoint| match endpoint {
            Endpoint::CreatePlan => api.create_plan(self.writes()),
            Endpoint::ListPlans => api.list_plans(self.reads()),
            Endpoint::GetPlan => api.get_plan(self.reads()),
            Endpoint::PutPlan => api.put_plan(self.writes()),
            Endpoint::PatchPlan => api.patch_plan(self.writes()),
            Endpoint::DeletePlan => api.delete_plan(self.writes()),
            Endpoint::Health => api.health(self.probes()),
            Endpoint::GetSchema => api.schema(),
            Endpoint::SearchPlans => api.search_plans(self.index_reads()),
            Endpoint::SearchPlansByQuery => api.search_plans_by_query(self.index_reads()),
            Endpoint::GetIndexedPlan => api.indexed_plan(self.index_reads()),
            Endpoint::GetIndexData => api.index_data(self.index_reads()),
            Endpoint::GetOpenApi | Endpoint::DocsPage | Endpoint::DocsAsset => {
                docs = true;
                api
            }
        });
        if docs { api.docs() } else { api }
    }
}

/// A router serving `endpoints` over `backends`, with the edge's layers (tests).
pub fn router(endpoints: &[Endpoint], backends: &Backends) -> axum::Router {
    backends.api(endpoints).into_router()
}

/// Every endpoint in one router: the local server. When it is its own issuer, it also serves the
/// issuer's JWKS, so other processes (a function under `cargo lambda watch`) can verify its tokens.
pub fn app(backends: &Backends) -> axum::Router {
    backends.api(&Endpoint::ALL).jwks().into_router()
}
