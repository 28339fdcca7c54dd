//! The parent-child search index of plans.
//!
//! - [`document`]: every object of a plan as its own document, joined to its parent;
//! - [`port`]: the [`PlanIndex`] port the indexer, the reindex job and the search functions use;
//! - [`query`]: the typed search request, parsed and validated;
//! - [`EmbeddedIndex`] (in memory) and [`OpenSearchIndex`] (OpenSearch 2 / Elasticsearch 8 over
//!   HTTP, feature `opensearch`) implement the port and pass one contract suite (`tests/index_contract.rs`);
//! - [`reads`]: the read use cases the search endpoints call.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod analysis;
pub mod document;
pub mod embedded;
pub mod error;
pub mod metered;
pub mod opensearch;
pub mod port;
pub mod query;
pub mod reads;

pub use embedded::EmbeddedIndex;
pub use error::{IndexError, IndexErrorKind};
pub use metered::MeteredIndex;
pub use opensearch::OpenSearchConfig;
#[cfg(feature = "opensearch")]
pub use opensearch::OpenSearchIndex;
pub use port::{ChangeOutcome, IndexChange, IndexedDocument, IndexedPlan, ParentRelation, PlanIndex, RebuildTarget, SearchHit, SearchPage};
pub use query::SearchQuery;
pub use reads::{IndexReadError, IndexReads};
