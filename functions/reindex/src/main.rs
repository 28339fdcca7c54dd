//! Lambda function for the reindex jobs: the scheduled sweep, and rebuild, drift check or topic setup on demand.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[tokio::main]
async fn main() -> Result<(), plan_wiring::lambda::Error> {
    plan_wiring::lambda::run_reindex().await
}
