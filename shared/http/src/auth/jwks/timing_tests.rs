//! When the cache loads its key set again, on tokio's paused clock: the intervals are the
//! production ones (a minute between reloads for unknown kids, five seconds while nothing ever
//! loaded, an hour of age), passed with `tokio::time::advance` instead of waited out.
//!
//! The source is a JWKS file rewritten between steps, so whether a load happened shows in which
//! keys the cache then knows. Reading it goes through `spawn_blocking`, during which the paused
//! clock does not move on its own.

use std::path::PathBuf;
use std::sync::LazyLock;

use super::*;
use crate::auth::LocalIssuer;

static FIRST: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate("iss", "aud", Algorithm::RS256).unwrap());
static NEXT: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate("iss", "aud", Algorithm::RS256).unwrap());
static OTHER: LazyLock<LocalIssuer> = LazyLock::new(|| LocalIssuer::generate("iss", "aud", Algorithm::ES256).unwrap());

/// A JWKS file in its own temporary directory, removed with it.
struct KeyFile {
    dir: PathBuf,
}

impl KeyFile {
    fn new() -> Self {
        static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("plan-jwks-timing-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("jwks.json")
    }

    /// Publishes these issuers' keys (none: the file is removed, so loading fails).
    fn publish(&self, issuers: &[&LocalIssuer]) {
        if issuers.is_empty() {
            let _ = std::fs::remove_file(self.path());
            return;
        }
        let set = JwkSet { keys: issuers.iter().flat_map(|issuer| issuer.jwks().keys).collect() };
        std::fs::write(self.path(), serde_json::to_vec(&set).unwrap()).unwrap();
    }

    fn cache(&self) -> Arc<JwksCache> {
        Arc::new(JwksCache::new(JwksSource::File(self.path()), JwksTiming::default()))
    }

    /// A file publishing `FIRST`'s key and a cache over it that has loaded it once.
    async fn loaded() -> (Self, Arc<JwksCache>) {
        let file = Self::new();
        file.publish(&[&FIRST]);
        let cache = file.cache();
        assert!(known(cache.key(FIRST.kid()).await), "the first request loads the set");
        (file, cache)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn known(result: Result<Arc<VerifyingKey>, AuthError>) -> bool {
    result.is_ok()
}

fn is_unknown(result: Result<Arc<VerifyingKey>, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidToken(TokenRejection::UnknownKey)))
}

fn is_unavailable(result: Result<Arc<VerifyingKey>, AuthError>) -> bool {
    matches!(result, Err(AuthError::KeysUnavailable))
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn unknown_kids_reload_the_set_at_most_once_a_minute() {
    let file = KeyFile::new();
    file.publish(&[&FIRST]);
    let cache = file.cache();
    assert_eq!(cache.cached_keys(), 0, "nothing loaded before the first request");
    assert!(known(cache.key(FIRST.kid()).await));

    // The issuer adds a key; within the minute an unknown kid (junk or that key) loads nothing.
    file.publish(&[&FIRST, &NEXT]);
    for junk in 0..10 {
        assert!(is_unknown(cache.key(&format!("junk-{junk}")).await));
    }
    tokio::time::advance(MINUTE - Duration::from_secs(1)).await;
    assert!(is_unknown(cache.key(NEXT.kid()).await), "59 s after the last load: no reload");
    assert!(known(cache.key(FIRST.kid()).await), "known keys are unaffected");

    // Once the minute has passed, one unknown kid reloads the set; the burst after it loads nothing.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(is_unknown(cache.key("junk-after").await));
    assert_eq!(cache.cached_keys(), 2, "the reload found the issuer's new key");
    assert!(known(cache.key(NEXT.kid()).await));
    file.publish(&[&FIRST, &NEXT, &OTHER]);
    for junk in 0..10 {
        assert!(is_unknown(cache.key(&format!("junk-{junk}")).await));
    }
    assert!(is_unknown(cache.key(OTHER.kid()).await), "one reload per minute, however many unknown kids");
}

#[tokio::test(start_paused = true)]
async fn rotation_adds_new_keys_and_a_removed_key_stops_verifying() {
    let (file, cache) = KeyFile::loaded().await;

    // The issuer adds its next key and signs with it: picked up at first sight after the interval.
    file.publish(&[&FIRST, &NEXT]);
    tokio::time::advance(MINUTE).await;
    assert!(known(cache.key(NEXT.kid()).await));

    // Then it withdraws the old key: the next reload (here: the next unknown kid) drops it.
    file.publish(&[&NEXT]);
    tokio::time::advance(MINUTE).await;
    assert!(is_unknown(cache.key(OTHER.kid()).await));
    assert!(is_unknown(cache.key(FIRST.kid()).await), "the withdrawn key no longer verifies");
    assert!(known(cache.key(NEXT.kid()).await));
}

#[tokio::test(start_paused = true)]
async fn a_set_past_its_max_age_is_refreshed_in_the_background() {
    let (file, cache) = KeyFile::loaded().await;
    file.publish(&[&NEXT]);

    tokio::time::advance(Duration::from_secs(3599)).await;
    assert!(known(cache.key(FIRST.kid()).await));
    tokio::task::yield_now().await;
    assert_eq!(cache.cached_keys(), 1);
    assert!(known(cache.key(FIRST.kid()).await), "younger than an hour: no refresh started");

    tokio::time::advance(Duration::from_secs(1)).await;
    // An hour old: served from the stale set without waiting, refreshed behind it.
    assert!(known(cache.key(FIRST.kid()).await), "the stale set still answers at once");
    let mut waited = 0;
    while cache.cached_keys() == 1 && known(cache.key(FIRST.kid()).await) {
        waited += 1;
        assert!(waited < 1000, "the background refresh never landed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(is_unknown(cache.key(FIRST.kid()).await), "the withdrawn key no longer verifies");
    assert!(known(cache.key(NEXT.kid()).await));
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_source_gives_unavailable_until_it_answers_and_never_drops_cached_keys() {
    let file = KeyFile::new();
    let cache = file.cache();
    assert!(is_unavailable(cache.key(FIRST.kid()).await), "never loaded: 503, not 401");
    file.publish(&[&FIRST]);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(is_unavailable(cache.key(FIRST.kid()).await), "no retry within five seconds of a failed first load");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(known(cache.key(FIRST.kid()).await), "the next attempt loads the set");

    // Unreadable again: a failed reload keeps the keys already known.
    file.publish(&[]);
    tokio::time::advance(MINUTE).await;
    assert!(is_unknown(cache.key(OTHER.kid()).await), "a loaded set answers 401 for unknown kids, even when its reload failed");
    assert!(known(cache.key(FIRST.kid()).await));
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(known(cache.key(FIRST.kid()).await));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(known(cache.key(FIRST.kid()).await), "a failed background refresh keeps the set");
}
