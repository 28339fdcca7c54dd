//! The few AWS API calls the deployed functions make, signed with SigV4 from the credentials Lambda
//! puts into the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`:
//! the execution role's) and sent with reqwest: Secrets Manager's GetSecretValue here, MSK's
//! GetBootstrapBrokers and IAM tokens in [`crate::msk`]. Each runs once per cold start (tokens once
//! per connection and quarter hour), so no SDK, credential chain or retry machinery is needed: a
//! failure fails the cold start, and Lambda starts a new instance.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value;

pub type DynError = Box<dyn std::error::Error + Send + Sync>;

/// Upper bound of one AWS API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment's credentials (on Lambda: the execution role's, rotated with the instance).
pub(crate) fn identity() -> Result<Identity, DynError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".into());
    };
    Ok(Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment").into())
}

/// The region of an ARN (`arn:aws:kafka:eu-west-1:...` -> `eu-west-1`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|region| !region.is_empty())
}

/// The SigV4 parameters for `service` in `region`, signed at `time`.
pub(crate) fn signing_params<'a>(
    identity: &'a Identity,
    service: &'a str,
    region: &'a str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<aws_sigv4::http_request::SigningParams<'a>, DynError> {
    Ok(v4::SigningParams::builder().identity(identity).region(region).name(service).time(time).settings(settings).build()?.into())
}

/// An HTTP request to an AWS API, signed in its headers; answers the response's JSON body.
pub(crate) async fn call(
    service: &str,
    region: &str,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Value, DynError> {
    let identity = identity()?;
    let params = signing_params(&identity, service, region, SystemTime::now(), SigningSettings::default())?;
    let signable = SignableRequest::new(method.as_str(), url, headers.iter().copied(), SignableBody::Bytes(&body))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();

    let client = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
    let mut request = client.request(method, url).body(body);
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        // AWS error bodies name the error type and message, never the credentials or the secret.
        let clipped: String = text.chars().take(300).collect();
        return Err(format!("{service} answered {status}: {clipped}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// The `SecretString` of a Secrets Manager secret (its ARN names the region), fetched once per cold
/// start. Needs `secretsmanager:GetSecretValue` on it and a route to the service from the VPC
/// (an interface endpoint or NAT).
pub async fn secret_string(secret_arn: &str) -> Result<String, DynError> {
    let region = arn_region(secret_arn).ok_or_else(|| format!("not a Secrets Manager ARN: {secret_arn}"))?;
    let url = format!("https://secretsmanager.{region}.amazonaws.com/");
    let body = serde_json::to_vec(&serde_json::json!({ "SecretId": secret_arn }))?;
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "secretsmanager.GetSecretValue")];
    let answer = call("secretsmanager", region, reqwest::Method::POST, &url, &headers, body).await?;
    answer
        .get("SecretString")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("secret {secret_arn} has no SecretString").into())
}

/// A username and password out of a secret: MSK's SCRAM secrets and ElastiCache user secrets are
/// JSON `{"username": ..., "password": ...}`; a plain string is a password alone (an AUTH token).
pub fn credentials_from_secret(secret: &str) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(secret) {
        Ok(Value::Object(fields)) => (
            fields.get("username").and_then(Value::as_str).map(str::to_owned),
            fields.get("password").and_then(Value::as_str).unwrap_or_default().to_owned(),
        ),
        _ => (None, secret.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_arns() {
        assert_eq!(arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:redis-AbCdEf"), Some("eu-west-1"));
        assert_eq!(arn_region("arn:aws:kafka:us-east-1:123456789012:cluster/plans/1a2b"), Some("us-east-1"));
        assert_eq!(arn_region("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(arn_region("secret-name"), None);
    }

    #[test]
    fn secrets_are_json_credentials_or_a_plain_password() {
        assert_eq!(credentials_from_secret(r#"{"username":"plans","password":"p@ss"}"#), (Some("plans".into()), "p@ss".into()));
        assert_eq!(credentials_from_secret(r#"{"password":"only"}"#), (None, "only".into()));
        assert_eq!(credentials_from_secret("auth-token-123"), (None, "auth-token-123".into()));
    }
}
