//! Lambda function for `DELETE /v1/plan/{id}`: the store and the change publisher, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut start = ColdStart::begin("delete-plan").await?;
    let writes = start.writes().await?;
    start.serve(start.api()?.delete_plan(writes)).await
}
