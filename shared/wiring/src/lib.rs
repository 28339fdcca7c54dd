//! The composition root: configuration composed from each part's own settings, the clients each
//! process builds, and the Lambda runtimes. Nothing else depends on it: the HTTP edge
//! (`plan-http`) knows no adapter, the adapters know no edge.
//!
//! - [`config`]: every variable, every problem named at once;
//! - [`lambda`]: the cold start of a function and the builders its `main` picks from, the
//!   indexer's and the reindex function's runtimes;
//! - [`backends`] (feature `local`): every backend chosen by configuration, for the local server
//!   and the tests;
//! - [`reindex`]: the reindex jobs and their typed report;
//! - [`emf`]: the Lambda functions' metrics exporter (CloudWatch embedded metric format).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "local")]
pub mod backends;
pub mod config;
pub mod emf;
pub mod lambda;
pub mod reindex;

#[cfg(feature = "local")]
pub use backends::{Backends, StartupError, app, router};
pub use config::{Config, ConfigError, Deployment};
