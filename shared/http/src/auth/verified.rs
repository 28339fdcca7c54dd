//! Tokens that verified, remembered until they expire: the signature check (about 23 µs of RSA,
//! the largest single cost of a cached GET) runs once per token instead of once per request.
//!
//! Only successes are kept, keyed by the whole token: a lookup hashes it with the map's keyed
//! SipHash and compares it byte for byte, so only that exact token finds its entry (a
//! cryptographic digest as the key cost a fifth of a cached request, for nothing the comparison
//! does not already give). Tokens over [`MAX_TOKEN_BYTES`] are not remembered. An entry serves until the token's `exp` (without the clock-skew leeway
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

/// Tokens remembered at most (the token and a few hundred bytes of claims each).
pub const CAPACITY: usize = 1024;
/// The longest token remembered (identity providers' access and ID tokens are 1 to 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// How long a verified token is trusted without checking its signature again, at most.
pub const MAX_AGE_SECONDS: u64 = 300;

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
    entries: Mutex<HashMap<Box<str>, Verified>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.entries.lock().map_or(0, |entries| entries.len());
        f.debug_struct("VerifiedTokens").field("remembered", &remembered).finish()
    }
}

impl VerifiedTokens {
    /// The entry for this token if it still serves at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Verified> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(token).filter(|entry| now < entry.until).cloned()
    }

    pub fn insert(&self, token: &str, entry: Verified, now: u64) {
        if now >= entry.until || token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(token) {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.into(), entry);
    }

    /// Forgets the token (its key changed, or it no longer verifies).
    pub fn remove(&self, token: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
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
