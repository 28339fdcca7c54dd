//! The signing keys tokens are checked against: a JWKS fetched once and cached, so a request with
//! a known `kid` never waits on the network. An unknown `kid` (the issuer rotated its keys) loads
//! the set again, at most once per [`JwksTiming::min_refresh`]; a set older than
//! [`JwksTiming::max_age`] is refreshed in the background, so a key the issuer withdrew stops
//! verifying even when no new key shows up.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
// Tokio's clock (std's outside tests): the reload intervals are tested on its paused clock.
use tokio::time::Instant;

use super::{AuthError, AuthSetupError, TokenRejection};

/// The largest JWKS document read (Google's is about 2 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// RSA keys shorter than this are not trusted (NIST SP 800-131A).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// When the key set is loaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// An unknown `kid` reloads the set at most this often, so junk tokens cannot make the
    /// function hammer the issuer.
    pub min_refresh: Duration,
    /// While no set was ever loaded (the issuer was unreachable at the first request), the next
    /// attempt may come this soon; requests meanwhile answer 503.
    pub retry_unloaded: Duration,
    /// A set this old is reloaded in the background on its next use.
    pub max_age: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self { min_refresh: Duration::from_secs(60), retry_unloaded: Duration::from_secs(5), max_age: Duration::from_secs(3600) }
    }
}

/// Where the key set comes from.
pub enum JwksSource {
    /// An `https://` URL (or `http://` on loopback, for local issuers and tests).
    Url { url: String, client: reqwest::Client },
    /// A JWKS file, read again on every refresh.
    File(PathBuf),
    /// A set known in advance (the local development issuer).
    Fixed(JwkSet),
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, .. } => write!(f, "JwksSource::Url({url})"),
            Self::File(path) => write!(f, "JwksSource::File({})", path.display()),
            Self::Fixed(set) => write!(f, "JwksSource::Fixed({} keys)", set.keys.len()),
        }
    }
}

impl JwksSource {
    /// A URL source with its own small HTTP client, built once per cold start.
    pub fn url(url: &str) -> Result<Self, AuthSetupError> {
        let client = client_builder().build().map_err(AuthSetupError::Client)?;
        Ok(Self::Url { url: url.to_owned(), client })
    }

    /// Loads the key set; every fetch from a URL or file is counted by outcome
    /// (`auth_jwks_fetches_total`).
    #[tracing::instrument(name = "jwks.load", skip_all)]
    async fn load(&self) -> Result<KeyMap, String> {
        if let Self::Fixed(set) = self {
            return Ok(KeyMap::from_set(set));
        }
        let result = self.fetch_and_parse().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(plan::metrics::AUTH_JWKS_FETCHES.name, "outcome" => outcome).increment(1);
        result
    }

    async fn fetch_and_parse(&self) -> Result<KeyMap, String> {
        let bytes = match self {
            Self::Url { url, client } => fetch(client, url).await.map_err(|e| format!("GET {url}: {e}"))?,
            Self::File(path) => tokio::fs::read(path).await.map_err(|e| format!("reading {}: {e}", path.display()))?,
            Self::Fixed(set) => return Ok(KeyMap::from_set(set)),
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        KeyMap::parse(&bytes)
    }
}

/// The settings of every JWKS client (the tests add their own CA to these).
fn client_builder() -> reqwest::ClientBuilder {
    let redirects = reqwest::redirect::Policy::custom(|attempt| match redirect_verdict(attempt.previous(), attempt.url()) {
        Redirect::Follow => attempt.follow(),
        Redirect::TooMany => attempt.error(format!("more than {MAX_REDIRECTS} redirects")),
        Redirect::Downgrade => attempt.error("refusing a redirect from https to http"),
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .redirect(redirects)
        .user_agent(concat!("healthplan-api/", env!("CARGO_PKG_VERSION")))
}

/// Redirects followed for one JWKS fetch at most.
const MAX_REDIRECTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redirect {
    Follow,
    TooMany,
    /// From https to anything else: the keys would arrive over a hop nobody authenticated.
    Downgrade,
}

/// Whether a fetch that has requested `previous` (the URL asked for first, then every redirect
/// target) goes on to `next`. Once on https, a chain stays on https; plain http to http (a local
/// issuer on loopback) is followed.
fn redirect_verdict(previous: &[reqwest::Url], next: &reqwest::Url) -> Redirect {
    if previous.len() > MAX_REDIRECTS {
        Redirect::TooMany
    } else if next.scheme() != "https" && previous.iter().any(|url| url.scheme() == "https") {
        Redirect::Downgrade
    } else {
        Redirect::Follow
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
    }
    Ok(body)
}

/// One public key, with what it may verify.
pub struct VerifyingKey {
    pub(crate) decoding: DecodingKey,
    kind: KeyKind,
    /// The JWK's own `alg`, when it pins one.
    pinned: Option<Algorithm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl VerifyingKey {
    /// Whether a token header's `alg` fits this key: its family and curve, and the JWK's `alg` if
    /// it pins one. (The caller has already checked `alg` against the configured list.)
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        let fits = match self.kind {
            KeyKind::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
        };
        fits && self.pinned.is_none_or(|pinned| pinned == alg)
    }

    /// A signature key from a JWK, or `None` for what this API never verifies with: keys without
    /// a `kid`, encryption keys, symmetric and unknown key types, short RSA keys.
    fn from_jwk(jwk: &Jwk) -> Option<(String, Self)> {
        let kid = jwk.common.key_id.clone()?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let modulus = base64_len(&rsa.n);
                (modulus >= MIN_RSA_MODULUS_BYTES).then_some(KeyKind::Rsa)?
            }
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => return None,
            },
            _ => return None,
        };
        let pinned = match jwk.common.key_algorithm {
            Some(alg) => Some(Algorithm::try_from(alg).ok()?),
            None => None,
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        let key = Self { decoding, kind, pinned: None };
        // A key pinned to an algorithm that does not fit it (an RSA key marked HS256) is suspect.
        if pinned.is_some_and(|alg| !key.accepts(alg)) {
            return None;
        }
        Some((kid, Self { pinned, ..key }))
    }
}

/// Decoded length of unpadded base64url text (leading zero bytes included, which is close enough
/// for a minimum-size check).
fn base64_len(text: &str) -> usize {
    text.trim_end_matches('=').len() * 3 / 4
}

/// The usable keys of one load, by `kid`.
struct KeyMap {
    keys: HashMap<String, Arc<VerifyingKey>>,
    loaded_at: Option<Instant>,
}

impl KeyMap {
    fn empty() -> Self {
        Self { keys: HashMap::new(), loaded_at: None }
    }

    fn from_jwks<'a>(jwks: impl Iterator<Item = &'a Jwk>) -> Self {
        let mut keys = HashMap::new();
        for jwk in jwks {
            if let Some((kid, key)) = VerifyingKey::from_jwk(jwk) {
                // The first key with a kid wins; a duplicate kid cannot shadow it.
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
        }
        Self { keys, loaded_at: Some(Instant::now()) }
    }

    fn from_set(set: &JwkSet) -> Self {
        Self::from_jwks(set.keys.iter())
    }

    /// Each key parsed on its own, so one key of a type this crate does not know (an encryption
    /// key with `"alg": "RSA-OAEP"`, say) does not make the whole set unreadable.
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        let jwks: Vec<Jwk> = document.keys.into_iter().filter_map(|key| serde_json::from_value(key).ok()).collect();
        Ok(Self::from_jwks(jwks.iter()))
    }
}

/// The cached key set of one issuer, shared by every request of the process.
pub struct JwksCache {
    source: JwksSource,
    timing: JwksTiming,
    current: RwLock<Arc<KeyMap>>,
    /// When the last load was attempted; held while a load runs, so only one runs at a time.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache").field("source", &self.source).field("timing", &self.timing).finish_non_exhaustive()
    }
}

impl JwksCache {
    /// Empty until the first request needs a key: a cold start never waits on the issuer.
    pub fn new(source: JwksSource, timing: JwksTiming) -> Self {
        Self { source, timing, current: RwLock::new(Arc::new(KeyMap::empty())), last_attempt: tokio::sync::Mutex::new(None) }
    }

    /// A fixed set, loaded now.
    pub fn preloaded(set: &JwkSet) -> Self {
        let cache = Self::new(JwksSource::Fixed(set.clone()), JwksTiming::default());
        *cache.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(KeyMap::from_set(set));
        cache
    }

    fn snapshot(&self) -> Arc<KeyMap> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn store(&self, keys: KeyMap) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
    }

    /// The key with this `kid`. A cached key answers at once (no I/O); an unknown one reloads the
    /// set if the last load is old enough.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        let keys = self.snapshot();
        if let Some(key) = keys.keys.get(kid) {
            if keys.loaded_at.is_some_and(|at| at.elapsed() >= self.timing.max_age) {
                self.refresh_in_background();
            }
            return Ok(key.clone());
        }
        self.reload_for_unknown(kid).await
    }

    async fn reload_for_unknown(&self, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        let mut last_attempt = self.last_attempt.lock().await;
        // Another request may have loaded the set while this one waited.
        let keys = self.snapshot();
        if let Some(key) = keys.keys.get(kid) {
            return Ok(key.clone());
        }
        let loaded = keys.loaded_at.is_some();
        let not_found = if loaded { AuthError::InvalidToken(TokenRejection::UnknownKey) } else { AuthError::KeysUnavailable };
        let interval = if loaded { self.timing.min_refresh } else { self.timing.retry_unloaded };
        if last_attempt.is_some_and(|at| at.elapsed() < interval) {
            return Err(not_found);
        }
        *last_attempt = Some(Instant::now());
        match self.source.load().await {
            Ok(fresh) => {
                tracing::info!(source = ?self.source, keys = fresh.keys.len(), "signing keys loaded");
                let key = fresh.keys.get(kid).cloned();
                self.store(fresh);
                key.ok_or(AuthError::InvalidToken(TokenRejection::UnknownKey))
            }
            Err(error) => {
                // The keys already cached stay in use; a set that was never loaded means 503s
                // until the next attempt succeeds.
                tracing::warn!(source = ?self.source, %error, "signing keys could not be loaded");
                Err(not_found)
            }
        }
    }

    /// Reloads a set past its max age without holding up the request that noticed. One load at a
    /// time, and no more often than `min_refresh` even when loads fail.
    fn refresh_in_background(self: &Arc<Self>) {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let Ok(mut last_attempt) = cache.last_attempt.try_lock() else { return };
            if last_attempt.is_some_and(|at| at.elapsed() < cache.timing.min_refresh) {
                return;
            }
            *last_attempt = Some(Instant::now());
            match cache.source.load().await {
                Ok(fresh) => {
                    tracing::info!(source = ?cache.source, keys = fresh.keys.len(), "signing keys refreshed");
                    cache.store(fresh);
                }
                Err(error) => tracing::warn!(source = ?cache.source, %error, "signing keys could not be refreshed; keeping the cached set"),
            }
        });
    }

    /// How many keys are cached (for the startup log and tests).
    pub fn cached_keys(&self) -> usize {
        self.snapshot().keys.len()
    }
}

#[cfg(all(test, feature = "local-issuer"))]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::LocalIssuer;

    /// Only signature keys this API can verify with are kept; one odd key spoils nothing.
    #[test]
    fn unusable_keys_are_skipped_one_by_one() {
        let issuer = LocalIssuer::generate("iss", "aud", Algorithm::RS256).unwrap();
        let good = serde_json::to_value(&issuer.jwks().keys[0]).unwrap();
        let mut encryption = good.clone();
        encryption["kid"] = json!("enc");
        encryption["use"] = json!("enc");
        let mut oaep = good.clone();
        oaep["kid"] = json!("oaep");
        oaep["alg"] = json!("RSA-OAEP");
        let mut pinned_hmac = good.clone();
        pinned_hmac["kid"] = json!("pinned-hmac");
        pinned_hmac["alg"] = json!("HS256");
        let mut no_kid = good.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let short_rsa = json!({"kty": "RSA", "kid": "short", "n": "AQAB".repeat(40), "e": "AQAB"});
        let document = json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB"},
            {"kty": "made-up", "kid": "odd"},
            encryption, oaep, pinned_hmac, no_kid, short_rsa, good
        ]});
        let keys = KeyMap::parse(document.to_string().as_bytes()).unwrap();
        let kids: Vec<&str> = keys.keys.keys().map(String::as_str).collect();
        assert_eq!(kids, vec![issuer.kid()]);
        assert!(KeyMap::parse(b"{\"not\": \"a jwks\"}").is_err());
        assert!(KeyMap::parse(b"{\"keys\": []}").unwrap().keys.is_empty(), "an empty set is a set");
    }

    #[test]
    fn a_redirect_chain_that_reached_https_never_continues_on_http() {
        let urls = |list: &[&str]| list.iter().map(|url| reqwest::Url::parse(url).unwrap()).collect::<Vec<_>>();
        let cases = [
            (&["https://idp.example/jwks"][..], "https://keys.idp.example/jwks", Redirect::Follow),
            (&["https://idp.example/jwks"], "http://idp.example/jwks", Redirect::Downgrade),
            (&["https://idp.example/jwks"], "http://127.0.0.1/jwks", Redirect::Downgrade),
            (&["https://idp.example/jwks"], "ftp://idp.example/jwks", Redirect::Downgrade),
            (&["http://127.0.0.1/jwks", "https://idp.example/jwks"], "http://127.0.0.1/jwks", Redirect::Downgrade),
            (&["http://127.0.0.1/jwks"], "http://127.0.0.1/keys", Redirect::Follow),
            (&["http://127.0.0.1/jwks"], "https://idp.example/jwks", Redirect::Follow),
            (&["https://a.example/1", "https://a.example/2", "https://a.example/3"], "https://a.example/4", Redirect::Follow),
            (
                &["https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4"],
                "https://a.example/5",
                Redirect::TooMany,
            ),
        ];
        for (previous, next, verdict) in cases {
            assert_eq!(redirect_verdict(&urls(previous), &urls(&[next])[0]), verdict, "{previous:?} -> {next}");
        }
    }

    #[test]
    fn keys_accept_only_algorithms_of_their_kind() {
        let rsa = LocalIssuer::generate("iss", "aud", Algorithm::RS256).unwrap();
        let (_, key) = VerifyingKey::from_jwk(&rsa.jwks().keys[0]).unwrap();
        assert!(key.accepts(Algorithm::RS256));
        assert!(!key.accepts(Algorithm::PS256), "the JWK pins RS256");
        assert!(!key.accepts(Algorithm::ES256) && !key.accepts(Algorithm::HS256));
        let ec = LocalIssuer::generate("iss", "aud", Algorithm::ES256).unwrap();
        let mut jwk = ec.jwks().keys[0].clone();
        jwk.common.key_algorithm = None;
        let (_, key) = VerifyingKey::from_jwk(&jwk).unwrap();
        assert!(key.accepts(Algorithm::ES256) && !key.accepts(Algorithm::ES384) && !key.accepts(Algorithm::RS256));
    }
}

#[cfg(all(test, feature = "local-issuer"))]
mod redirect_tests;
#[cfg(all(test, feature = "local-issuer"))]
mod timing_tests;
