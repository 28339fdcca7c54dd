//! The OpenSearch / Elasticsearch adapter over HTTP (the `opensearch` crate; rustls; SigV4,
//! basic auth or none). It keeps to the REST subset OpenSearch 2 and Elasticsearch 8 share:
//! `_bulk` with external versions and `require_alias`, `_mget`, `_search` with `bool`, `term`,
//! `range`, `has_child`, `has_parent`, `search_after`, and `_aliases`. No `inner_hits`, no
//! scripts, no `_update`.

mod config;

pub use self::config::{Auth, OpenSearchConfig, SIGV4_BUILT_IN};

// The client itself (feature `opensearch`): the settings above are read in every build.
#[cfg(feature = "opensearch")]
mod aliases;
#[cfg(feature = "opensearch")]
mod client;
#[cfg(feature = "opensearch")]
mod dsl;
#[cfg(feature = "opensearch")]
mod index;
#[cfg(feature = "opensearch")]
mod mapping;
#[cfg(feature = "opensearch")]
mod read;
#[cfg(feature = "opensearch")]
mod write;

#[cfg(feature = "opensearch")]
pub use self::index::OpenSearchIndex;
#[cfg(feature = "opensearch")]
pub use self::mapping::GC_DELETES;
