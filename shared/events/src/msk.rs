//! Amazon MSK: brokers from the cluster ARN (GetBootstrapBrokers, once per cold start) and IAM
//! authentication (SASL OAUTHBEARER with a token signed by the function's role), for rskafka.
//!
//! The token is what AWS's own MSK IAM signers (aws-msk-iam-auth, aws-msk-iam-sasl-signer) send:
//! the URL `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect` presigned with
//! SigV4 for the service `kafka-cluster` (valid 15 minutes), plus a `User-Agent` parameter, encoded
//! as unpadded base64url.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use base64::Engine;
use rskafka::client::{OauthBearerCredentials, SaslConfig};
use tokio::sync::Mutex;

use crate::aws::{self, DynError};

/// How long a signed token is valid (the signers' default).
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// A token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("plan-api-rust/", env!("CARGO_PKG_VERSION"));

/// The SASL/IAM bootstrap brokers (port 9098) of an MSK cluster, provisioned or serverless.
pub async fn bootstrap_brokers(cluster_arn: &str) -> Result<Vec<String>, DynError> {
    let region = aws::arn_region(cluster_arn).ok_or_else(|| format!("not an MSK cluster ARN: {cluster_arn}"))?;
    let mut url = reqwest::Url::parse(&format!("https://kafka.{region}.amazonaws.com/"))?;
    url.path_segments_mut().map_err(|()| "MSK endpoint URL")?.extend(["v1", "clusters", cluster_arn, "bootstrap-brokers"]);
    let answer = aws::call("kafka", region, reqwest::Method::GET, url.as_str(), &[], Vec::new()).await?;
    // The REST API spells its members in lowerCamelCase; the SDKs' names are accepted as well.
    let list = ["bootstrapBrokerStringSaslIam", "BootstrapBrokerStringSaslIam"]
        .iter()
        .find_map(|name| answer.get(*name).and_then(|v| v.as_str()))
        .ok_or("the cluster has no IAM-authenticated listener")?;
    Ok(list.split(',').map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()).collect())
}

/// A token for `region`, signed at `time` with the environment's credentials, and when it expires
/// (milliseconds since the epoch).
pub fn auth_token(region: &str, time: SystemTime) -> Result<(String, i64), DynError> {
    let identity = aws::identity()?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = aws::signing_params(&identity, "kafka-cluster", region, time, settings)?;
    let endpoint = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let signable = SignableRequest::new("GET", &endpoint, std::iter::empty(), SignableBody::Bytes(&[]))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut url = reqwest::Url::parse(&endpoint)?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
        query.append_pair("User-Agent", USER_AGENT);
    }
    let signed_ms = time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
    Ok((base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str()), signed_ms + TOKEN_LIFETIME.as_millis() as i64))
}

/// SASL OAUTHBEARER credentials whose token is signed for `region` with the environment's
/// credentials (the Lambda role), cached until shortly before it expires.
pub fn iam_sasl(region: String) -> SaslConfig {
    let cache: Arc<Mutex<Option<(String, i64)>>> = Arc::new(Mutex::new(None));
    let callback = Arc::new(move || {
        let (cache, region) = (cache.clone(), region.clone());
        Box::pin(async move {
            let mut cached = cache.lock().await;
            let now = SystemTime::now();
            let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
            if let Some((token, expires_ms)) = cached.as_ref()
                && *expires_ms - now_ms > RENEW_BEFORE.as_millis() as i64
            {
                return Ok::<_, DynError>(token.clone());
            }
            let (token, expires_ms) = auth_token(&region, now)?;
            *cached = Some((token.clone(), expires_ms));
            Ok(token)
        }) as futures_util::future::BoxFuture<'static, Result<String, DynError>>
    });
    SaslConfig::Oauthbearer(OauthBearerCredentials { callback, authz_id: None, bearer_kvs: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is a presigned URL, made offline from the environment's credentials.
    #[tokio::test]
    async fn a_token_is_a_presigned_connect_url() {
        // SAFETY: set before any other thread of this test reads the environment.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            std::env::set_var("AWS_SESSION_TOKEN", "session-token");
        }
        let SaslConfig::Oauthbearer(credentials) = iam_sasl("eu-west-1".into()) else { panic!("OAUTHBEARER") };
        let token = (credentials.callback)().await.unwrap();
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'), "unpadded base64url: {token}");
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        assert!(url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"), "{url}");
        let url = reqwest::Url::parse(&url).unwrap();
        let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert!(
            query["X-Amz-Credential"].starts_with("AKIDEXAMPLE/")
                && query["X-Amz-Credential"].ends_with("/eu-west-1/kafka-cluster/aws4_request")
        );
        assert_eq!(query["X-Amz-Expires"], "900");
        assert_eq!(query["X-Amz-SignedHeaders"], "host");
        assert_eq!(query["X-Amz-Security-Token"], "session-token");
        assert_eq!(query["X-Amz-Signature"].len(), 64);
        assert!(query["User-Agent"].starts_with("plan-api-rust/"));
        assert_eq!((credentials.callback)().await.unwrap(), token, "cached until close to expiry");

        // SigV4 is deterministic: the same credentials, region and time give the same token.
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (a, expires) = auth_token("us-east-1", at).unwrap();
        assert_eq!(auth_token("us-east-1", at).unwrap().0, a);
        assert_eq!(expires, 1_700_000_900_000);
        assert_ne!(auth_token("us-east-1", at + Duration::from_secs(1)).unwrap().0, a);
    }
}
