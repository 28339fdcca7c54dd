//! The healthcare-plan domain. No HTTP, AWS, Redis or Kafka types: adapters implement the ports
//! in [`store`], the HTTP edge calls the use cases in [`service`].

// Panics outside tests only where an invariant is named (README, "Tests": lints).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod env;
pub mod error;
pub mod etag;
pub mod events;
pub mod id;
pub mod jobs;
pub mod metered;
pub mod metrics;
pub mod model;
pub mod patch;
pub mod probe;
pub mod service;
pub mod store;
pub mod tenant;
pub mod validate;

pub use error::PlanError;
pub use etag::{ETag, Preconditions, TagCondition};
pub use id::ObjectId;
pub use model::{ObjectType, Plan};
pub use patch::PlanPatch;
pub use service::{ListPage, ListQuery, PlanReads, PlanWrites, Read, Representation, WritePolicy, Written};
pub use tenant::{Caller, Tenant};
pub use validate::{MAX_PLAN_BYTES, PLAN_SCHEMA, Violation, Violations};
