//! The health probe port: what `GET /v1/health` pings, each backend saying whether it is
//! reachable. Its own error, not a store operation's: Kafka or the index being down is not a
//! failure of the store.

use std::error::Error;

use async_trait::async_trait;

use crate::store::StoreError;

/// A backend that can say whether it is reachable.
#[async_trait]
pub trait Probe: Send + Sync {
    /// The name health reports it under (`redis`, `kafka`, `opensearch`, `embedded-store`, ...).
    fn name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), ProbeError>;
}

/// Why a backend did not answer a ping.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ProbeError {
    source: Box<dyn Error + Send + Sync>,
    timed_out: bool,
}

impl ProbeError {
    pub fn new(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self { source: source.into(), timed_out: false }
    }

    /// The backend did not answer within its deadline.
    pub fn timed_out(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self { source: source.into(), timed_out: true }
    }

    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }
}

impl From<StoreError> for ProbeError {
    fn from(error: StoreError) -> Self {
        let timed_out = error.is_timeout();
        Self { source: Box::new(error), timed_out }
    }
}
