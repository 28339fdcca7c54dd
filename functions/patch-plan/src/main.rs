//! Lambda function for `PATCH /v1/plan/{id}`.

use plan_http::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run(Endpoint::PatchPlan).await
}
