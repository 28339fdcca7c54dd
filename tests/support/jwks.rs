//! A tiny JWKS endpoint on a free loopback port that counts its fetches, can switch key sets
//! (rotation) and can fail (an issuer outage).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jsonwebtoken::jwk::JwkSet;

pub struct JwksServer {
    pub address: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

struct State {
    body: Mutex<String>,
    fetches: AtomicUsize,
    failing: AtomicBool,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl JwksServer {
    pub async fn start(keys: &JwkSet) -> Self {
        let state = Arc::new(State { body: Mutex::new(String::new()), fetches: AtomicUsize::new(0), failing: AtomicBool::new(false) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let address = listener.local_addr().expect("local address");
        let served = state.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = served.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    if state.failing.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    let body = state.body.lock().expect("body").clone();
                    ([(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response()
                }
            }),
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("JWKS server");
        });
        let jwks = Self { address, state, server };
        jwks.publish(keys);
        jwks
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.address)
    }

    /// Serves this key set from now on.
    pub fn publish(&self, keys: &JwkSet) {
        *self.state.body.lock().expect("body") = serde_json::to_string(keys).expect("JWKS JSON");
    }

    /// Answers 500 while `failing`.
    pub fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// How many times the key set was requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

/// The keys of these issuers as one set.
pub fn key_set(issuers: &[&plan_http::auth::LocalIssuer]) -> JwkSet {
    JwkSet { keys: issuers.iter().flat_map(|issuer| issuer.jwks().keys).collect() }
}
