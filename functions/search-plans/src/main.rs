//! Lambda function for `POST /v1/search`: the search index, and this endpoint alone.

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::begin("search-plans").await?;
    let index = start.index_reads()?;
    start.serve(start.api()?.search_plans(index)).await
}
