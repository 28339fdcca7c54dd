//! Lambda function for `GET /v1/plan/es_data`.

use plan_http::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run(Endpoint::GetIndexData).await
}
