//! The read use cases of the search endpoints: one call each, errors named by meaning for the
//! HTTP edge to map (invalid request, not found, index unavailable, internal).

use std::sync::Arc;

use plan::{Caller, ObjectId, Violations};

use crate::document::RebuiltPlan;
use crate::error::{IndexError, IndexErrorKind};
use crate::port::{IndexedDocument, ParentRelation, PlanIndex, SearchPage};
use crate::query::SearchQuery;

#[derive(Debug, thiserror::Error)]
pub enum IndexReadError {
    #[error("invalid search")]
    InvalidSearch(Violations),
    #[error("the search index holds no {what} with the id '{id}'")]
    NotFound { what: &'static str, id: ObjectId },
    #[error("the search index is unavailable")]
    Unavailable(#[source] IndexError),
    #[error("internal error")]
    Internal(#[source] IndexError),
}

impl From<IndexError> for IndexReadError {
    fn from(error: IndexError) -> Self {
        match error.kind {
            IndexErrorKind::Unavailable => Self::Unavailable(error),
            IndexErrorKind::Rejected | IndexErrorKind::Corrupt => Self::Internal(error),
        }
    }
}

/// What the search functions may do with the index: read it, as the caller.
#[derive(Clone)]
pub struct IndexReads {
    index: Arc<dyn PlanIndex>,
}

impl IndexReads {
    pub fn new(index: Arc<dyn PlanIndex>) -> Self {
        Self { index }
    }

    /// One page of the plans the caller may see that match the search.
    pub async fn search(&self, query: &SearchQuery, caller: &Caller) -> Result<SearchPage, IndexReadError> {
        Ok(self.index.search(query, &caller.tenant).await?)
    }

    /// The plan as its index documents rebuild it.
    pub async fn plan(&self, plan_id: &ObjectId, caller: &Caller) -> Result<RebuiltPlan, IndexReadError> {
        let rebuilt = self.index.plan_from_index(plan_id, &caller.tenant).await?;
        rebuilt.ok_or_else(|| IndexReadError::NotFound { what: "plan", id: plan_id.clone() })
    }

    /// The indexed document of one object.
    pub async fn document(&self, object_id: &ObjectId, caller: &Caller) -> Result<IndexedDocument, IndexReadError> {
        let document = self.index.document(object_id, &caller.tenant).await?;
        document.ok_or_else(|| IndexReadError::NotFound { what: "document", id: object_id.clone() })
    }

    /// The indexed children of a parent document.
    pub async fn children(
        &self,
        parent: ParentRelation,
        parent_id: &ObjectId,
        caller: &Caller,
    ) -> Result<Vec<IndexedDocument>, IndexReadError> {
        let children = self.index.children(parent, parent_id, &caller.tenant).await?;
        children.ok_or_else(|| IndexReadError::NotFound { what: parent.relation().as_str(), id: parent_id.clone() })
    }
}
