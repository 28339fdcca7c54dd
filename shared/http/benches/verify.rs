//! Token verification cost per request with the signing key cached: everything the authenticator
//! does for one request (header parsing, key lookup, signature, claims, scope and organisation),
//! no I/O. Target: under 50 µs for RS256.
//!
//! `cargo bench -p plan-http --bench verify` (release profile; not a timed test, just figures).

use std::time::{Duration, Instant};

use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use jsonwebtoken::Algorithm;
use plan_http::Authenticator;
use plan_http::auth::{ClaimRules, Grant, LocalIssuer, Scope};

const WARM_UP: usize = 500;
const SAMPLES: usize = 20_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!("token verification per request, key cached ({SAMPLES} requests each):");
    for algorithm in [Algorithm::RS256, Algorithm::ES256] {
        let figures = runtime.block_on(measure(algorithm));
        println!(
            "  {algorithm:?}: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, min {:.1} µs",
            micros(figures.mean),
            micros(figures.p50),
            micros(figures.p99),
            micros(figures.min)
        );
    }
}

struct Figures {
    mean: Duration,
    p50: Duration,
    p99: Duration,
    min: Duration,
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

async fn measure(algorithm: Algorithm) -> Figures {
    let issuer = LocalIssuer::generate("https://issuer.bench", "plan-api", algorithm).expect("key");
    let auth = Authenticator::local(&issuer, vec![Algorithm::RS256, Algorithm::ES256], ClaimRules::isolated_by("hd"));
    let grant = Grant {
        subject: "bench-user".to_owned(),
        scopes: vec!["plans:read".to_owned(), "plans:write".to_owned()],
        org: Some(("hd".to_owned(), "example.com".to_owned())),
        ttl: Duration::from_secs(3600),
    };
    let token = issuer.mint(&grant).expect("token");
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    let extensions = Extensions::new();

    for _ in 0..WARM_UP {
        auth.authorize(&headers, &extensions, Scope::PlansRead).await.expect("valid token");
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    let started = Instant::now();
    for _ in 0..SAMPLES {
        let one = Instant::now();
        let principal = auth.authorize(&headers, &extensions, Scope::PlansRead).await.expect("valid token");
        samples.push(one.elapsed());
        std::hint::black_box(principal);
    }
    let mean = started.elapsed() / SAMPLES as u32;
    samples.sort_unstable();
    Figures { mean, p50: samples[SAMPLES / 2], p99: samples[SAMPLES * 99 / 100], min: samples[0] }
}
