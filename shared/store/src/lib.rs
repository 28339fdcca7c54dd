//! Plan store adapters behind the `plan` crate's store port:
//! [`EmbeddedStore`] (in memory, one process) and [`RedisStore`] (standalone, TLS or cluster;
//! feature `redis`). Both pass the contract suite in `tests/store_contract.rs`. The Redis
//! settings ([`RedisConfig`]) are read in every build, so that a process without the client still
//! names a bad variable.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod config;
mod embedded;
#[cfg(feature = "redis")]
mod redis_store;

pub use config::RedisConfig;
pub use embedded::EmbeddedStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
