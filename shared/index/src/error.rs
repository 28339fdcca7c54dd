//! The index's error: a kind callers branch on, and the source for the logs. No client library
//! type leaks out of the adapters.

use std::fmt;

#[derive(Debug, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct IndexError {
    pub kind: IndexErrorKind,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexErrorKind {
    /// Unreachable, timed out, overloaded or not authorised yet: the same request may succeed
    /// later (503 at the HTTP edge; the indexer retries the batch).
    Unavailable,
    /// The cluster refused the request itself: retrying it unchanged cannot succeed (500).
    Rejected,
    /// The index holds or returned data that breaks its own invariants (500).
    Corrupt,
}

impl fmt::Display for IndexErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "search index unavailable",
            Self::Rejected => "search index rejected the request",
            Self::Corrupt => "search index data corrupt",
        })
    }
}

impl IndexError {
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: IndexErrorKind::Unavailable, source: source.into() }
    }

    pub fn rejected(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: IndexErrorKind::Rejected, source: source.into() }
    }

    pub fn corrupt(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind: IndexErrorKind::Corrupt, source: source.into() }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == IndexErrorKind::Unavailable
    }
}

impl From<IndexError> for plan::store::StoreError {
    /// For the health probe, which speaks the store's error type.
    fn from(error: IndexError) -> Self {
        match error.kind {
            IndexErrorKind::Unavailable => Self::unavailable(error),
            IndexErrorKind::Rejected | IndexErrorKind::Corrupt => Self::corrupt(error),
        }
    }
}
