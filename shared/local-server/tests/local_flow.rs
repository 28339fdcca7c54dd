//! The README's local flow with the real binary: `plan-local token` mints (creating the
//! development key on first use), `plan-local` serves and verifies with the same key.

mod common;

use std::time::Duration;

use common::{mint, plan_local, serve, serve_logged, work_dir};
use serde_json::Value;

#[tokio::test]
async fn mint_a_token_start_the_server_and_call_it() {
    let dir = work_dir("flow");

    // Minting first creates the key; the server then loads the same one.
    let token = mint(&dir, &["--org", "example.com", "--scope", "plans:read plans:write", "--ttl", "10m"]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(dir.join(".local/dev-signing-key-rs256.pem").exists());
    let (_server, api) = serve(&dir, &[]);
    let client = reqwest::Client::new();

    let plan: Value = serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap();
    let created = client.post(format!("{api}/v1/plan")).bearer_auth(&token).json(&plan).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let read = client.get(format!("{api}/v1/plan/12xvxc345ssdsds-508")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), 200);

    let anonymous = client.get(format!("{api}/v1/plan")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let other_org = mint(&dir, &["--org", "other.example"]);
    let hidden = client.get(format!("{api}/v1/plan/12xvxc345ssdsds-508")).bearer_auth(&other_org).send().await.unwrap();
    assert_eq!(hidden.status(), 404, "ORG_CLAIM=hd keeps organisations apart");
    let reader = mint(&dir, &["--org", "example.com", "--scope", "plans:read"]);
    let refused =
        client.delete(format!("{api}/v1/plan/12xvxc345ssdsds-508")).bearer_auth(&reader).header("if-match", "*").send().await.unwrap();
    assert_eq!(refused.status(), 403);

    let jwks: Value = client.get(format!("{api}/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let on_disk: Value = serde_json::from_slice(&std::fs::read(dir.join(".local/jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks, on_disk);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_token_command_explains_its_mistakes() {
    let dir = work_dir("usage");
    let bad_ttl = plan_local(&dir, &[]).args(["token", "--ttl", "1y"]).output().unwrap();
    assert!(!bad_ttl.status.success());
    assert!(String::from_utf8_lossy(&bad_ttl.stderr).contains("s, m, h or d"));
    let foreign =
        plan_local(&dir, &[("JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"), ("JWT_ISSUER", "a"), ("JWT_AUDIENCE", "b")])
            .arg("token")
            .output()
            .unwrap();
    assert!(!foreign.status.success());
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("JWKS_URL is set"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The metrics endpoint on its own listener, scraped as Prometheus would, and the one-line
/// summary the server logs when it stops.
#[tokio::test]
async fn the_server_serves_its_metrics_apart_and_sums_them_up_on_shutdown() {
    let dir = work_dir("metrics");
    let (mut server, api, earlier, lines) = serve_logged(&dir, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let metrics: String = earlier
        .iter()
        .find_map(|line| line.find("Prometheus metrics on http://").map(|at| &line[at + "Prometheus metrics on ".len()..]))
        .expect("the metrics address in the log")
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_ne!(metrics.split("/metrics").next(), Some(api.as_str()), "not the API's address");
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{api}/v1/health")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{api}/metrics")).send().await.unwrap().status(), 404, "not a route of the API");
    let text = client.get(&metrics).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("http_requests_total{route=\"/v1/health\",method=\"GET\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"), "{text}");

    let terminated = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(terminated.success());
    let summary = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("the summary line before the server stops");
        if line.contains("metrics: ") {
            break line;
        }
    };
    assert!(summary.contains("metrics: 2 requests (1 4xx, 0 5xx)"), "{summary}");
    assert!(server.0.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
