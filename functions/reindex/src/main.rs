//! Lambda function for the reindex job: the scheduled sweep of unpublished changes, and a full
//! rebuild or a drift check on demand (`{"action": "rebuild"}`, `{"action": "drift"}`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run_reindex().await
}
