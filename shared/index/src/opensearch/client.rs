//! Requests to the cluster over the `opensearch` crate's transport, with the REST paths spelled
//! out: only endpoints and parameters that OpenSearch 2 and Elasticsearch 8 both accept.
//! Every failure is classified here into an [`IndexError`] kind.

use opensearch::OpenSearch;
use opensearch::http::Method;
use opensearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use serde_json::Value;

use super::config::{Auth, OpenSearchConfig};
use crate::error::IndexError;

/// An HTTP answer of the cluster: its status and its JSON body (`Null` when empty).
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl Reply {
    pub(super) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error.type` of an error body, at the top level or in a bulk/mget item.
    pub(super) fn error_type(&self) -> &str {
        error_type(&self.body)
    }

    /// This reply if it succeeded, else the error it stands for.
    pub(super) fn ok(self, what: &str) -> Result<Value, IndexError> {
        if self.is_success() { Ok(self.body) } else { Err(failure(what, self.status, &self.body)) }
    }
}

pub(super) fn error_type(body: &Value) -> &str {
    body.pointer("/error/type").and_then(Value::as_str).unwrap_or("")
}

pub(super) fn error_reason(body: &Value) -> String {
    let error = body.get("error").unwrap_or(body);
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
    let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
    let cause = error.pointer("/caused_by/reason").and_then(Value::as_str).map(|c| format!(" ({c})")).unwrap_or_default();
    format!("{kind}: {reason}{cause}")
}

/// Whether a status means "try again later": throttled, timed out, not (yet) allowed, or broken.
pub(super) fn is_transient(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 429) || status >= 500
}

/// The error for a failed request: transient statuses are `Unavailable`, the rest `Rejected`.
pub(super) fn failure(what: &str, status: u16, body: &Value) -> IndexError {
    let message = format!("{what}: HTTP {status}: {}", error_reason(body));
    if is_transient(status) { IndexError::unavailable(message) } else { IndexError::rejected(message) }
}

#[derive(Clone, Debug)]
pub(super) struct Cluster {
    client: OpenSearch,
}

impl Cluster {
    pub(super) fn new(config: &OpenSearchConfig) -> Result<Self, IndexError> {
        let url = opensearch::http::Url::parse(&config.url).map_err(|e| IndexError::rejected(format!("OPENSEARCH_URL: {e}")))?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(config.timeout).disable_proxy();
        match &config.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                builder = builder.auth(opensearch::auth::Credentials::Basic(username.clone(), password.clone()));
            }
            Auth::AwsSigV4 { region } => builder = sigv4(builder, region)?,
        }
        let transport = builder.build().map_err(|e| IndexError::rejected(format!("OpenSearch client: {e}")))?;
        Ok(Self { client: OpenSearch::new(transport) })
    }

    /// Sends one request. `Err` only when no HTTP answer came back (unreachable, timed out).
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, IndexError> {
        self.send_typed(method, path, query, body, "application/json").await
    }

    pub(super) async fn json(&self, method: Method, path: &str, query: &[(&str, &str)], body: &Value) -> Result<Reply, IndexError> {
        self.send(method, path, query, Some(serde_json::to_vec(body).map_err(IndexError::corrupt)?)).await
    }

    pub(super) async fn ndjson(&self, path: &str, query: &[(&str, &str)], body: Vec<u8>) -> Result<Reply, IndexError> {
        self.send_typed(Method::Post, path, query, Some(body), "application/x-ndjson").await
    }

    #[tracing::instrument(name = "opensearch.request", skip_all, fields(method = ?method, path = %path))]
    async fn send_typed(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Reply, IndexError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let query = (!query.is_empty()).then_some(query);
        let response = self
            .client
            .send(method, path, headers, query, body, None)
            .await
            .map_err(|e| IndexError::unavailable(format!("{method:?} {path}: {e}")))?;
        let status = response.status_code().as_u16();
        let bytes = response.bytes().await.map_err(|e| IndexError::unavailable(format!("{method:?} {path}: reading the answer: {e}")))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                // A proxy's HTML error page, for instance: say which status it came with.
                let error = format!("{method:?} {path}: HTTP {status}: the answer is not JSON: {e}");
                if is_transient(status) { IndexError::unavailable(error) } else { IndexError::corrupt(error) }
            })?
        };
        Ok(Reply { status, body })
    }
}

#[cfg(feature = "aws-auth")]
fn sigv4(builder: TransportBuilder, region: &str) -> Result<TransportBuilder, IndexError> {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err(IndexError::unavailable("SigV4: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"));
    };
    let credentials = Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
    let auth = opensearch::auth::Credentials::AwsSigV4(
        SharedCredentialsProvider::new(credentials),
        aws_types::region::Region::new(region.to_owned()),
    );
    Ok(builder.auth(auth).service_name("es"))
}

#[cfg(not(feature = "aws-auth"))]
fn sigv4(_builder: TransportBuilder, _region: &str) -> Result<TransportBuilder, IndexError> {
    Err(IndexError::rejected("SigV4 signing needs the plan-index feature aws-auth"))
}
