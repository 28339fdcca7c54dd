//! Lambda function fed by the MSK event source mapping: change events into the search index.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run_indexer().await
}
