//! The clients a process needs, built once per cold start from the configuration.

use std::sync::Arc;

use plan::store::{PlanWriter, Probe, StoreError};
use plan::{PlanReads, PlanWrites, WritePolicy};
use plan_store::{EmbeddedStore, RedisStore};

use crate::auth::{AuthSetupError, Authenticator, ClaimRules};
use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    store: Arc<dyn PlanWriter>,
    probes: Vec<Arc<dyn Probe>>,
    policy: WritePolicy,
    auth: Authenticator,
}

/// Why a cold start could not build its clients.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
}

impl Backends {
    /// Redis when `REDIS_URL` is set, else the embedded store; the authenticator the configuration
    /// asks for. Connects lazily: a cold start never waits for or fails on an unreachable backend
    /// or issuer; requests answer 503 until it is back.
    pub fn from_config(config: &Config) -> Result<Self, StartupError> {
        plan::validate::warm_up();
        let backends = match &config.redis {
            Some(redis) => {
                let store = Arc::new(RedisStore::new(redis)?);
                Self::with_store(store, config.write_policy)
            }
            None => Self::embedded(config.write_policy),
        };
        let claims = ClaimRules { org_claim: config.org_claim.clone(), default_scopes: config.default_scopes.clone() };
        Ok(backends.with_auth(Authenticator::from_config(&config.auth, claims)?))
    }

    /// Everything in memory, for the local server and tests. Protected routes refuse every
    /// request until [`Self::with_auth`] says how to authenticate (fail closed).
    pub fn embedded(policy: WritePolicy) -> Self {
        Self::with_store(Arc::new(EmbeddedStore::new()), policy)
    }

    /// Any store, for tests that bring their own. Fails closed like [`Self::embedded`].
    pub fn with_store<S: PlanWriter + Probe + 'static>(store: Arc<S>, policy: WritePolicy) -> Self {
        Self { store: store.clone(), probes: vec![store], policy, auth: Authenticator::refuse_all() }
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
        PlanWrites::new(self.store.clone(), self.policy)
    }

    pub fn probes(&self) -> Vec<Arc<dyn Probe>> {
        self.probes.clone()
    }
}
