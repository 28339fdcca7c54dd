//! Tokens that verified, remembered until they expire: the signature check (about 23 µs of RSA,
//! the largest single cost of a cached GET) runs once per token instead of once per request.
//!
//! Only successes are kept, keyed by the token's SHA-256 (a different token maps to an entry only
//! if SHA-256 collides). An entry serves until the token's `exp` (without the clock-skew leeway
//! the full check allows: after `exp` the token goes through the full check again) and at most
//! [`MAX_AGE_SECONDS`], and only while the key that verified it is still the issuer's key under
//! its `kid`: a key rotated out of the JWKS stops every token it signed at the next request. The
//! cache holds at most [`CAPACITY`] tokens; when full, expired entries go first, and if none has
//! expired the cache starts afresh (a flood of distinct valid tokens costs verification, never
//! memory). Written here because no cache crate already in the build expires entries at a time
//! each entry carries; this is a map and a mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::jwks::VerifyingKey;

/// Tokens remembered at most (a few hundred bytes of claims each).
pub const CAPACITY: usize = 1024;
/// How long a verified token is trusted without checking its signature again, at most.
pub const MAX_AGE_SECONDS: u64 = 300;

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    // A SHA-256 digest is always 32 bytes.
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().try_into().unwrap_or_default()
}

/// What a verification established.
#[derive(Clone)]
pub(crate) struct Verified {
    pub claims: Arc<Map<String, Value>>,
    /// The `kid` and the key that verified the signature.
    pub kid: Arc<str>,
    pub key: Arc<VerifyingKey>,
    /// Unix seconds after which the entry no longer serves.
    until: u64,
}

impl Verified {
    /// An entry for claims verified at `now` (Unix seconds): until their `exp`, at most
    /// [`MAX_AGE_SECONDS`] from now. `None` when the claims have no usable `exp`.
    pub fn new(claims: Arc<Map<String, Value>>, kid: &str, key: Arc<VerifyingKey>, now: u64) -> Option<Self> {
        let exp = claims.get("exp").and_then(|exp| exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64)))?;
        Some(Self { claims, kid: kid.into(), key, until: exp.min(now.saturating_add(MAX_AGE_SECONDS)) })
    }
}

#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<TokenDigest, Verified>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.entries.lock().map_or(0, |entries| entries.len());
        f.debug_struct("VerifiedTokens").field("remembered", &remembered).finish()
    }
}

impl VerifiedTokens {
    /// The entry for this token if it still serves at `now`.
    pub fn get(&self, digest: &TokenDigest, now: u64) -> Option<Verified> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(digest).filter(|entry| now < entry.until).cloned()
    }

    pub fn insert(&self, digest: TokenDigest, entry: Verified, now: u64) {
        if now >= entry.until {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, entry);
    }

    /// Forgets the token (its key changed, or it no longer verifies).
    pub fn remove(&self, digest: &TokenDigest) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(digest);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
