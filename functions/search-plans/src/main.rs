//! Lambda function for `POST /v1/search`: the search index, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::begin("search-plans").await?;
    let index = start.index_reads()?;
    start.serve(start.api()?.search_plans(index)).await
}
