//! The errors of the plan API, named by meaning. The HTTP edge maps each to one status and one
//! problem type; nothing else decides a status code.

use crate::id::ObjectId;
use crate::model::ObjectType;
use crate::store::{StoreError, StoreErrorKind};
use crate::validate::Violations;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the document is not a valid plan")]
    Invalid(Violations),
    #[error("the body's objectId '{body}' differs from the plan id '{path}' in the path")]
    IdMismatch { path: ObjectId, body: ObjectId },
    #[error("a plan's objectId cannot change (from '{from}' to '{to}')")]
    PlanIdChanged { from: ObjectId, to: ObjectId },
    #[error("invalid query parameters")]
    InvalidQuery(Violations),
    #[error("{0}")]
    InvalidPatch(String),
    /// The plan a write would store is over [`crate::MAX_PLAN_BYTES`] (or a JSON Patch would
    /// grow the document past it on the way).
    #[error("the plan would take {size} bytes or more; a stored plan is at most {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("no plan or object has the id '{0}'")]
    NotFound(ObjectId),
    #[error("'{id}' is a {} inside plan '{plan_id}'", object_type.as_str())]
    NestedObject { id: ObjectId, object_type: ObjectType, plan_id: ObjectId },
    #[error("the document's _org '{0}' is not the caller's organisation")]
    ForeignOrg(String),
    #[error("a plan with the id '{0}' already exists")]
    PlanExists(ObjectId),
    #[error("the objectId '{0}' is already used by another plan")]
    IdTaken(ObjectId),
    #[error("the patch cannot be applied to the current plan: {0}")]
    PatchConflict(String),
    #[error("the plan does not match the request's preconditions")]
    PreconditionFailed,
    #[error("this request must be conditional: send If-Match with the plan's current ETag")]
    PreconditionRequired,
    #[error("the plan is being changed by many writers at once; retry")]
    Contended,
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for PlanError {
    fn from(error: StoreError) -> Self {
        match error.kind {
            StoreErrorKind::Unavailable => Self::Unavailable(error),
            StoreErrorKind::Corrupt => Self::Internal(error),
        }
    }
}
