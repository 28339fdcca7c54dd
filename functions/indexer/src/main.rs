//! Lambda function fed by the MSK event source mapping: change events into the search index.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[tokio::main]
async fn main() -> Result<(), plan_wiring::lambda::Error> {
    plan_wiring::lambda::run_indexer().await
}
