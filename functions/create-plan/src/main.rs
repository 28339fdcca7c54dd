//! Lambda function for `POST /v1/plan`.

use plan_http::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run(Endpoint::CreatePlan).await
}
