//! Lambda function for `GET /v1/openapi.json`, `GET /docs` and `GET /docs/{asset}` (public): the
//! OpenAPI document and the Swagger UI page, embedded in this one binary.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plan_http::lambda::run_function("api-docs").await
}
