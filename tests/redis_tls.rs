//! `rediss://`: the Redis adapter over TLS (rustls), trusting a private CA from REDIS_CA_FILE.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plan::store::{Expected, PlanReader, PlanWriter};
use plan_e2e::{redis_config, service_var, tag, unique_plan, write_of};
use plan_store::RedisStore;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=plan-test-ca",
        ],
    );
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
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
        ],
    );
}

struct TlsRedis(Child, std::path::PathBuf);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let Some(binary) = service_var("PLAN_TEST_REDIS_SERVER") else { return };
    let dir = std::env::temp_dir().join(format!("plan-tls-{}", tag()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary)
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _redis = TlsRedis(child, dir.clone());
    let url = format!("rediss://127.0.0.1:{port}");

    let mut config = redis_config(vec![url.clone()], false);
    config.ca_pem = Some(std::fs::read(dir.join("ca.crt")).unwrap());
    let store = RedisStore::new(&config).unwrap();
    let write = write_of(unique_plan(&tag()), Expected::Absent);
    let deadline = Instant::now() + Duration::from_secs(10);
    let version = loop {
        match store.commit(write.clone()).await {
            Ok(version) => break version,
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for TLS Redis: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("TLS Redis never answered: {error}"),
        }
    };
    assert_eq!(version, 1);
    assert_eq!(store.plan(&write.id).await.unwrap().unwrap().body, write.body);

    // Without the CA the server's certificate is not trusted: refused, never silently accepted.
    let untrusted = RedisStore::new(&redis_config(vec![url], false)).unwrap();
    assert!(untrusted.plan(&write.id).await.is_err());
}
