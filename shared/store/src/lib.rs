//! Plan store adapters behind the `plan` crate's store port:
//! [`EmbeddedStore`] (in memory, one process) and [`RedisStore`] (standalone, TLS or cluster).
//! Both pass the contract suite in `tests/store_contract.rs`.

mod embedded;
mod redis_store;

pub use embedded::EmbeddedStore;
pub use redis_store::{RedisConfig, RedisStore};
