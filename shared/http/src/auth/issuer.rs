//! The local development issuer: a signing key created on first use in a local directory (never
//! committed; `.local/` is git-ignored), its public JWKS, and token minting. The local server
//! verifies these tokens with the same rules as any other issuer's, and the tests mint theirs here.
//!
//! The key is RSA-2048 for RS256 (the default algorithm, and what Google and most identity
//! providers sign with), or P-256 when the configuration accepts only ES256. `rsa` 0.9 signs in
//! variable time (RUSTSEC-2023-0071); that only concerns this private key, which signs local
//! development tokens on the developer's own machine. Deployed functions only verify.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
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
    /// Whoever can write the key can sign tokens the local server accepts.
    #[error(
        "the development key {path} {reason}: whoever can write it can sign tokens the local server accepts; make it yours with mode 0600, or delete it to create a new one"
    )]
    UnsafeKey { path: PathBuf, reason: String },
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
    /// when missing (and `dir` with mode 0700), plus `jwks.json` beside it for functions that read
    /// a JWKS file. A key that its group or others can write, or that another user owns, is
    /// refused. No file is written through a symlink. Safe when two processes start at once: the
    /// first key written wins and the other process loads it.
    pub fn load_or_create(dir: &Path, issuer: &str, audience: &str, algorithm: Algorithm) -> Result<(Self, KeyOrigin), IssuerError> {
        let path = key_file(dir, algorithm)?;
        let origin = if path.exists() { KeyOrigin::Loaded } else { create_key_file(dir, &path, algorithm)? };
        let pem = read_key(dir, &path)?;
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
        let io = |source| IssuerError::Io { action: "writing", path: path.clone(), source };
        // Written to a new file and renamed into place: a reader never sees half a file, and a
        // symlink at `jwks.json` is replaced, not written through.
        let mut staged = Staged::create(dir, "jwks.json", 0o644).map_err(io)?;
        staged.file.write_all(&body).map_err(io)?;
        std::fs::rename(&staged.path, &path).map_err(io)
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
/// staged file (0600), then is hard-linked into place, which fails if the file exists.
fn create_key_file(dir: &Path, path: &Path, algorithm: Algorithm) -> Result<KeyOrigin, IssuerError> {
    let io = |action| move |source| IssuerError::Io { action, path: path.to_path_buf(), source };
    if !dir.exists() {
        create_private_dir(dir).map_err(io("creating the directory of"))?;
    }
    let pem = generate_pem(algorithm)?;
    let mut staged = Staged::create(dir, "dev-signing-key", 0o600).map_err(io("writing"))?;
    staged.file.write_all(pem.as_bytes()).and_then(|()| staged.file.sync_all()).map_err(io("writing"))?;
    match std::fs::hard_link(&staged.path, path) {
        Ok(()) => Ok(KeyOrigin::Created),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(KeyOrigin::Loaded),
        Err(error) => Err(io("writing")(error)),
    }
}

/// The key directory, owner-only from the moment it exists (its parents are made as usual).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        // Made meanwhile by another process starting at the same time.
        Err(error) if error.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        result => result,
    }
}

/// The key's PEM, unless someone other than this user could have written the file. The checks
/// look at the opened file, so the file checked is the file read.
fn read_key(dir: &Path, path: &Path) -> Result<Zeroizing<String>, IssuerError> {
    let io = |action| move |source| IssuerError::Io { action, path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io("reading"))?;
    if let Some(reason) = unsafe_key(&file, dir).map_err(io("checking the owner and mode of"))? {
        return Err(IssuerError::UnsafeKey { path: path.to_path_buf(), reason });
    }
    let mut pem = Zeroizing::new(String::new());
    file.read_to_string(&mut pem).map_err(io("reading"))?;
    Ok(pem)
}

/// Why this key file cannot be trusted, if it cannot: its group or others may write it, or another
/// user owns it.
#[cfg(unix)]
fn unsafe_key(file: &File, dir: &Path) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let key = file.metadata()?;
    if key.mode() & 0o022 != 0 {
        return Ok(Some(format!("is writable by its group or by others (mode {:o})", key.mode() & 0o777)));
    }
    // std cannot tell this process's uid, but the owner of a file it has just created can.
    let own = Staged::create(dir, "owner-probe", 0o600)?.file.metadata()?.uid();
    Ok((key.uid() != own).then(|| format!("belongs to uid {}, not to this user (uid {own})", key.uid())))
}

#[cfg(not(unix))]
fn unsafe_key(_file: &File, _dir: &Path) -> std::io::Result<Option<String>> {
    Ok(None)
}

/// A file created new in `dir` under a name nobody can guess (so it never opens a planted file or
/// symlink), to be renamed or linked into place; whatever is left at its name is removed on drop.
struct Staged {
    path: PathBuf,
    file: File,
}

impl Staged {
    fn create(dir: &Path, name: &str, mode: u32) -> std::io::Result<Self> {
        let path = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = new_file(&path, mode)?;
        Ok(Self { path, file })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `create_new` (O_CREAT | O_EXCL) fails on any existing name, a symlink included, never following it.
#[cfg(unix)]
fn new_file(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}

#[cfg(not(unix))]
fn new_file(path: &Path, _mode: u32) -> std::io::Result<File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
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

    fn unique_dir() -> PathBuf {
        std::env::temp_dir().join(format!("plan-issuer-{}", uuid::Uuid::new_v4().simple()))
    }

    fn load(dir: &Path) -> Result<(LocalIssuer, KeyOrigin), IssuerError> {
        LocalIssuer::load_or_create(dir, "plan-local", "plan-api", Algorithm::ES256)
    }

    #[cfg(unix)]
    #[test]
    fn a_new_key_directory_and_key_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let root = unique_dir();
        let dir = root.join("keys");
        let (issuer, _) = load(&dir).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the key directory");
        assert_eq!(mode(&issuer.key_path(&dir)), 0o600, "the key");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Whoever can write the key can mint tokens this server accepts.
    #[cfg(unix)]
    #[test]
    fn a_key_file_someone_else_could_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = unique_dir();
        let (issuer, _) = load(&dir).unwrap();
        let key = issuer.key_path(&dir);
        for mode in [0o666, 0o620, 0o602] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let refused = load(&dir);
            assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("writable by")), "mode {mode:o}: {refused:?}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&dir).unwrap().0.kid(), issuer.kid(), "refused, not replaced");
        // Another user's key (only root can hand a file to someone else).
        if std::os::unix::fs::chown(&key, Some(65534), None).is_ok() {
            let refused = load(&dir);
            assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("belongs to")), "{refused:?}");
        } else {
            eprintln!("not root: the owner check is not exercised");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_jwks_is_never_written_through_a_symlink() {
        let dir = unique_dir();
        let (issuer, _) = load(&dir).unwrap();
        let outside = unique_dir();
        std::fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // At the JWKS itself, and at the name its temporary file once had (predictable: the pid).
        let jwks_path = dir.join("jwks.json");
        std::fs::remove_file(&jwks_path).unwrap();
        for name in ["jwks.json".to_owned(), format!(".jwks.json.{}.tmp", std::process::id())] {
            std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        }
        assert_eq!(load(&dir).unwrap().0.kid(), issuer.kid());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(&jwks_path).unwrap().file_type().is_symlink(), "the link was replaced, not followed");
        let jwks: JwkSet = serde_json::from_slice(&std::fs::read(&jwks_path).unwrap()).unwrap();
        assert_eq!(jwks, issuer.jwks());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_name_planted_where_the_key_is_staged_neither_stops_nor_receives_it() {
        let dir = unique_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let outside = unique_dir();
        std::fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".dev-signing-key.{}.tmp", std::process::id()))).unwrap();
        let (_, origin) = load(&dir).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
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
