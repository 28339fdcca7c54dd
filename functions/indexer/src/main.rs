//! Lambda function fed by the MSK event source mapping: change events into the search index.

#[tokio::main]
async fn main() -> Result<(), plan_wiring::lambda::Error> {
    plan_wiring::lambda::run_indexer().await
}
