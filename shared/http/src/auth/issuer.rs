//! The local development issuer: a signing key created on first use in a local directory (never
//! committed; `.local/` is git-ignored), its public JWKS, and token minting. The local server
//! verifies these tokens with the same rules as any other issuer's, and the tests mint theirs here.
//!
//! The key is RSA-2048 for RS256 (the default algorithm, and what Google and most identity
//! providers sign with), or P-256 when the configuration accepts only ES256. `rsa` 0.9 signs in
//! variable time (RUSTSEC-2023-0071); that only concerns this private key, which signs local
//! development tokens on the developer's own machine. Deployed functions only verify.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the development key {path} is unreadable ({reason}); delete it to create a new one")]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot create a key: {0}")]
    Generate(String),
    #[error("the local issuer signs with RS256 or ES256, not {0:?}")]
    Unsupported(Algorithm),
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Whether [`LocalIssuer::load_or_create`] found the key or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    Created,
    Loaded,
}

/// What a minted token grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: String,
    pub scopes: Vec<String>,
    /// The organisation, and the claim that carries it (`ORG_CLAIM`, e.g. `hd`).
    pub org: Option<(String, String)>,
    pub ttl: Duration,
}

/// A signing key with its issuer and audience names. Debug shows the key id, never the key.
pub struct LocalIssuer {
    issuer: String,
    audience: String,
    algorithm: Algorithm,
    kid: String,
    signing: EncodingKey,
    public: Jwk,
}

impl fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// A fresh key that lives only in memory (tests).
    pub fn generate(issuer: &str, audience: &str, algorithm: Algorithm) -> Result<Self, IssuerError> {
        let pem = generate_pem(algorithm)?;
        Self::from_pem(issuer, audience, algorithm, &pem).map_err(IssuerError::Generate)
    }

    /// The key file in `dir` (`dev-signing-key-rs256.pem` or `-es256.pem`), created with mode 0600
    /// when missing, plus `jwks.json` beside it for functions that read a JWKS file. Safe when
    /// two processes start at once: the first key written wins and the other process loads it.
    pub fn load_or_create(dir: &Path, issuer: &str, audience: &str, algorithm: Algorithm) -> Result<(Self, KeyOrigin), IssuerError> {
        let path = key_file(dir, algorithm)?;
        let origin = if path.exists() { KeyOrigin::Loaded } else { create_key_file(dir, &path, algorithm)? };
        let pem = std::fs::read_to_string(&path).map_err(|source| IssuerError::Io { action: "reading", path: path.clone(), source })?;
        let pem = Zeroizing::new(pem);
        let issuer = Self::from_pem(issuer, audience, algorithm, &pem).map_err(|reason| IssuerError::BadKey { path, reason })?;
        issuer.write_jwks(dir)?;
        Ok((issuer, origin))
    }

    fn from_pem(issuer: &str, audience: &str, algorithm: Algorithm, pem: &str) -> Result<Self, String> {
        super::crypto::install();
        let signing = match algorithm {
            Algorithm::RS256 => {
                use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
                let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())?;
                EncodingKey::from_rsa_der(key.to_pkcs1_der().map_err(|e| e.to_string())?.as_bytes())
            }
            Algorithm::ES256 => {
                use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                EncodingKey::from_ec_der(key.to_pkcs8_der().map_err(|e| e.to_string())?.as_bytes())
            }
            other => return Err(format!("unsupported algorithm {other:?}")),
        };
        let mut public = Jwk::from_encoding_key(&signing, algorithm).map_err(|e| e.to_string())?;
        // RFC 7638 thumbprint: a stable kid that changes exactly when the key does.
        let kid = public.thumbprint(ThumbprintHash::SHA256).map_err(|e| e.to_string())?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { issuer: issuer.to_owned(), audience: audience.to_owned(), algorithm, kid, signing, public })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Where [`Self::load_or_create`] keeps this issuer's key in `dir`.
    pub fn key_path(&self, dir: &Path) -> PathBuf {
        key_file(dir, self.algorithm).unwrap_or_else(|_| dir.to_path_buf())
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public.clone()] }
    }

    /// A token for `grant`: `iss`, `aud`, `sub`, `iat`, `nbf`, `exp`, `scope` and the org claim.
    pub fn mint(&self, grant: &Grant) -> Result<String, IssuerError> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(grant.subject));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + grant.ttl.as_secs()));
        claims.insert("scope".into(), json!(grant.scopes.join(" ")));
        if let Some((claim, org)) = &grant.org {
            claims.insert(claim.clone(), json!(org));
        }
        self.sign(&Value::Object(claims))
    }

    /// Any claims, signed with this key and its kid (tests build their edge cases with this).
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, IssuerError> {
        self.sign_as(&self.kid, claims)
    }

    /// Any claims signed with this key but naming another kid in the header.
    pub fn sign_as(&self, kid: &str, claims: &impl Serialize) -> Result<String, IssuerError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.signing)?)
    }

    fn write_jwks(&self, dir: &Path) -> Result<(), IssuerError> {
        let path = dir.join("jwks.json");
        let body = serde_json::to_vec_pretty(&self.jwks()).unwrap_or_default();
        // Written aside and renamed, so a reader never sees half a file.
        let tmp = dir.join(format!(".jwks.json.{}.tmp", std::process::id()));
        let io = |source| IssuerError::Io { action: "writing", path: path.clone(), source };
        std::fs::write(&tmp, body).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

fn key_file(dir: &Path, algorithm: Algorithm) -> Result<PathBuf, IssuerError> {
    match algorithm {
        Algorithm::RS256 => Ok(dir.join("dev-signing-key-rs256.pem")),
        Algorithm::ES256 => Ok(dir.join("dev-signing-key-es256.pem")),
        other => Err(IssuerError::Unsupported(other)),
    }
}

/// A new private key, PEM-encoded (PKCS#1 for RSA, PKCS#8 for P-256), wiped from memory on drop.
fn generate_pem(algorithm: Algorithm) -> Result<Zeroizing<String>, IssuerError> {
    let mut rng = rand_core::OsRng;
    match algorithm {
        Algorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| IssuerError::Generate(e.to_string()))?;
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| IssuerError::Generate(e.to_string()))
        }
        Algorithm::ES256 => {
            use p256::pkcs8::EncodePrivateKey;
            let key = p256::SecretKey::random(&mut rng);
            key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).map_err(|e| IssuerError::Generate(e.to_string()))
        }
        other => Err(IssuerError::Unsupported(other)),
    }
}

/// Writes a new key to `path` unless another process got there first: the key goes to a private
/// temporary file (0600), then is hard-linked into place, which fails if the file exists.
fn create_key_file(dir: &Path, path: &Path, algorithm: Algorithm) -> Result<KeyOrigin, IssuerError> {
    let io = |action| move |source| IssuerError::Io { action, path: path.to_path_buf(), source };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        restrict(dir, 0o700).map_err(io("restricting the directory of"))?;
    }
    let pem = generate_pem(algorithm)?;
    let tmp = dir.join(format!(".dev-signing-key.{}.tmp", std::process::id()));
    let written = private_file(&tmp).and_then(|mut file| file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(KeyOrigin::Created),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(KeyOrigin::Loaded),
        Err(error) => Err(io("writing")(error)),
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn restrict(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_dir: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_reloaded_with_the_same_kid() {
        let dir = std::env::temp_dir().join(format!("plan-issuer-{}", uuid::Uuid::new_v4().simple()));
        let (first, origin) = LocalIssuer::load_or_create(&dir, "plan-local", "plan-api", Algorithm::RS256).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let (second, origin) = LocalIssuer::load_or_create(&dir, "plan-local", "plan-api", Algorithm::RS256).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.key_path(&dir)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the private key is readable by its owner only");
        }
        let jwks: JwkSet = serde_json::from_slice(&std::fs::read(dir.join("jwks.json")).unwrap()).unwrap();
        assert_eq!(jwks, first.jwks());
        let served = serde_json::to_string(&jwks).unwrap();
        assert!(!served.contains("\"d\""), "the JWKS holds no private part: {served}");
        assert!(!format!("{first:?}").contains("BEGIN"), "Debug shows no key");
        let leftovers: Vec<_> =
            std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).filter(|e| e.path().extension() == Some("tmp".as_ref())).collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_key_file_is_reported_not_replaced() {
        let dir = std::env::temp_dir().join(format!("plan-issuer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dev-signing-key-es256.pem"), "not a key").unwrap();
        let error = LocalIssuer::load_or_create(&dir, "plan-local", "plan-api", Algorithm::ES256).unwrap_err();
        assert!(error.to_string().contains("delete it"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
