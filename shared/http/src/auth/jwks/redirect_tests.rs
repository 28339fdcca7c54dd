//! JWKS fetches through redirects, over real TLS: a redirect that stays on https (or on plain http,
//! a local issuer) is followed; one from https to http is refused before anything is sent over
//! http, and the cache answers as it does for any unreachable issuer.
//!
//! The servers are tiny blocking HTTP/1.1 responders on free loopback ports, one with a certificate
//! for 127.0.0.1 from a throwaway CA that only the test's client trusts. The certificates come from
//! the openssl command line, as in tests/redis_tls.rs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::auth::LocalIssuer;

/// A CA and a server certificate for 127.0.0.1 signed by it, in a temporary directory.
struct TestCa {
    dir: PathBuf,
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCa {
    /// `None` (the test skips) where openssl is missing, unless the test script asked for every
    /// test to run.
    fn create() -> Option<Self> {
        if Command::new("openssl").arg("version").stdout(Stdio::null()).status().is_err() {
            let required = std::env::var("PLAN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(!required, "the TLS tests need the openssl command, and PLAN_TEST_REQUIRE_SERVICES=1");
            eprintln!("skipping: the openssl command is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("plan-jwks-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Self { dir };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        ca.openssl(&[&["req", "-x509"], &ec[..], &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=plan-test-ca"]]);
        ca.openssl(&[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]]);
        std::fs::write(ca.dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        ca.openssl(&[&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]]);
        Some(ca)
    }

    fn openssl(&self, args: &[&[&str]]) {
        let args = args.concat();
        let status = Command::new("openssl").args(&args).current_dir(&self.dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(status.is_ok_and(|s| s.success()), "openssl {args:?}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The production JWKS client, trusting this CA besides the public roots.
    fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.path("ca.crt")).unwrap()).unwrap();
        client_builder().add_root_certificate(ca).build().unwrap()
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.crt")).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// The paths a server was asked for, in order.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn paths(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Serves `routes` (path -> whole HTTP response) on `listener`, over TLS when `tls` is given, on a
/// thread of its own that lives as long as the test process. Every response closes its connection.
fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, routes: Vec<(&'static str, String)>) -> RequestLog {
    let log = RequestLog::default();
    let requests = log.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            match &tls {
                Some(config) => {
                    let Ok(session) = rustls::ServerConnection::new(config.clone()) else { continue };
                    let mut stream = rustls::StreamOwned::new(session, tcp);
                    respond(&mut stream, &routes, &requests);
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                }
                None => respond(&mut { tcp }, &routes, &requests),
            }
        }
    });
    log
}

fn respond(stream: &mut impl ReadWrite, routes: &[(&'static str, String)], log: &RequestLog) {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned();
    let response = routes.iter().find(|(route, _)| *route == path).map_or(not_found, |(_, response)| response.clone());
    log.0.lock().unwrap().push(path);
    let _ = stream.write_all(response.as_bytes()).and_then(|()| stream.flush());
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn redirect(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn jwks(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn free_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn cache(url: String, client: reqwest::Client) -> Arc<JwksCache> {
    Arc::new(JwksCache::new(JwksSource::Url { url, client }, JwksTiming::default()))
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_refused_and_the_keys_are_unavailable() {
    let Some(ca) = TestCa::create() else { return };
    let issuer = LocalIssuer::generate("iss", "aud", Algorithm::ES256).unwrap();
    let body = serde_json::to_string(&issuer.jwks()).unwrap();
    let (https, https_port) = free_listener();
    let (http, http_port) = free_listener();
    let https_log = serve(
        https,
        Some(ca.server_config()),
        vec![
            ("/jwks.json", jwks(&body)),
            ("/moved", redirect(&format!("https://127.0.0.1:{https_port}/jwks.json"))),
            ("/downgrade", redirect(&format!("http://127.0.0.1:{http_port}/jwks.json"))),
        ],
    );
    let http_log =
        serve(http, None, vec![("/jwks.json", jwks(&body)), ("/moved", redirect(&format!("http://127.0.0.1:{http_port}/jwks.json")))]);

    // The servers and the client's trust work: redirects within https, and within http, are followed.
    let moved = cache(format!("https://127.0.0.1:{https_port}/moved"), ca.client());
    assert!(moved.key(issuer.kid()).await.is_ok(), "https -> https is followed");
    assert_eq!(https_log.paths(), ["/moved", "/jwks.json"]);
    let plain = cache(format!("http://127.0.0.1:{http_port}/moved"), ca.client());
    assert!(plain.key(issuer.kid()).await.is_ok(), "http -> http (a local issuer) is followed");
    assert_eq!(http_log.paths(), ["/moved", "/jwks.json"]);
    https_log.clear();
    http_log.clear();

    let downgraded = cache(format!("https://127.0.0.1:{https_port}/downgrade"), ca.client());
    assert_eq!(downgraded.key(issuer.kid()).await.err(), Some(AuthError::KeysUnavailable));
    assert_eq!(https_log.paths(), ["/downgrade"]);
    assert!(http_log.paths().is_empty(), "nothing was asked for over http: {:?}", http_log.paths());
    assert_eq!(downgraded.cached_keys(), 0);
}
