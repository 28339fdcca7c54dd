//! Every end-to-end test in one binary: each file of `tests/` is a module here, so a change
//! links one test binary instead of twenty. Run one file's tests with its module name as the
//! filter: `cargo test -p plan-e2e --test e2e store_contract::`.

#[path = "api_docs.rs"]
mod api_docs;
#[path = "auth.rs"]
mod auth;
#[path = "concurrency.rs"]
mod concurrency;
#[path = "event_samples.rs"]
mod event_samples;
#[path = "events.rs"]
mod events;
#[path = "faults.rs"]
mod faults;
#[path = "http_api.rs"]
mod http_api;
#[path = "index_contract.rs"]
mod index_contract;
#[path = "kafka.rs"]
mod kafka;
#[path = "lambda_rie.rs"]
mod lambda_rie;
#[path = "listings.rs"]
mod listings;
#[path = "metrics.rs"]
mod metrics;
#[path = "monitoring.rs"]
mod monitoring;
#[path = "ownership.rs"]
mod ownership;
#[path = "pipeline.rs"]
mod pipeline;
#[path = "redis_tls.rs"]
mod redis_tls;
#[path = "sam_resolved.rs"]
mod sam_resolved;
#[path = "search_api.rs"]
mod search_api;
#[path = "store_contract.rs"]
mod store_contract;
#[path = "template.rs"]
mod template;
