//! Amazon MSK: brokers from the cluster ARN (GetBootstrapBrokers, once per cold start) and IAM
//! authentication (SASL OAUTHBEARER with a token signed by the function's role), for rskafka.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::Region;
use rskafka::client::{OauthBearerCredentials, SaslConfig};
use tokio::sync::Mutex;

type DynError = Box<dyn std::error::Error + Send + Sync>;

/// A token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The SASL/IAM bootstrap brokers of an MSK cluster.
pub async fn bootstrap_brokers(cluster_arn: &str) -> Result<Vec<String>, DynError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_kafka::Client::new(&config);
    let brokers = client.get_bootstrap_brokers().cluster_arn(cluster_arn).send().await?;
    let list = brokers.bootstrap_broker_string_sasl_iam().ok_or("the cluster has no IAM-authenticated listener")?;
    Ok(list.split(',').map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()).collect())
}

/// SASL OAUTHBEARER credentials whose token is signed for `region` with the default credential
/// chain (the Lambda role), cached until shortly before it expires.
pub fn iam_sasl(region: String) -> SaslConfig {
    let cache: Arc<Mutex<Option<(String, i64)>>> = Arc::new(Mutex::new(None));
    let callback = Arc::new(move || {
        let (cache, region) = (cache.clone(), region.clone());
        Box::pin(async move {
            let mut cached = cache.lock().await;
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
            if let Some((token, expires_ms)) = cached.as_ref()
                && *expires_ms - now_ms > RENEW_BEFORE.as_millis() as i64
            {
                return Ok::<_, DynError>(token.clone());
            }
            let (token, expires_ms) = aws_msk_iam_sasl_signer::generate_auth_token(Region::new(region)).await?;
            *cached = Some((token.clone(), expires_ms));
            Ok(token)
        }) as futures_util::future::BoxFuture<'static, Result<String, DynError>>
    });
    SaslConfig::Oauthbearer(OauthBearerCredentials { callback, authz_id: None, bearer_kvs: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is a presigned URL, made offline from whatever credentials the chain finds.
    #[tokio::test]
    async fn a_token_is_signed_offline() {
        // SAFETY: set before any other thread of this test reads the environment.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
        let SaslConfig::Oauthbearer(credentials) = iam_sasl("eu-west-1".into()) else { panic!("OAUTHBEARER") };
        let token = (credentials.callback)().await.unwrap();
        use base64::Engine;
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        assert!(url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect"), "{url}");
        assert!(url.contains("X-Amz-Signature="));
        assert_eq!((credentials.callback)().await.unwrap(), token, "cached until close to expiry");
    }
}
