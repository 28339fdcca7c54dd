//! Faults: a Redis that hangs or dies gives fast 503 problems, never a hang; when it comes back
//! the service recovers by itself and no acknowledged write is lost.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plan::WritePolicy;
use plan_e2e::app::{TestApp, expect_problem, spawn_on};
use plan_e2e::{redis_config, service_var, tag, unique_plan};
use plan_store::RedisStore;
use reqwest::Method;
use serde_json::Value;

/// A redis-server of this test's own, with an fsync-always AOF so a restart keeps every write.
struct OwnRedis {
    binary: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Child,
}

impl OwnRedis {
    fn start(binary: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("plan-fault-{}", tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = spawn(binary, port, &dir);
        Self { binary: binary.to_owned(), port, dir, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        self.child = spawn(&self.binary, self.port, &self.dir);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(binary: &str, port: u16, dir: &Path) -> Child {
    Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

/// Polls until GET answers 200 (the service recovered), up to 15 s.
async fn until_ok(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.get(id).await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "did not recover: last status {}", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a request and returns how long the 503 took; the client's own 10 s timeout turns a hang
/// into a failure.
async fn expect_fast_503(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Duration {
    let started = Instant::now();
    let mut request = app.request(method, path).timeout(Duration::from_secs(10));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("an answer, not a hang");
    let elapsed = started.elapsed();
    expect_problem(response, 503, "store-unavailable").await;
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_or_hung_gives_fast_503s_and_recovers_without_losing_writes() {
    let Some(binary) = service_var("PLAN_TEST_REDIS_SERVER") else { return };
    let mut redis = OwnRedis::start(&binary);
    let store = Arc::new(RedisStore::new(&redis_config(vec![redis.url()], false)).unwrap());
    let app = spawn_on(store, WritePolicy::default()).await;

    let plan = unique_plan(&tag());
    let id = plan["objectId"].as_str().unwrap().to_owned();
    let created = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = app.create(&plan).await;
            if response.status() == 201 || Instant::now() > deadline {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(created.status(), 201, "Redis came up");

    // Hung: the process is there but never answers.
    redis.signal("STOP");
    let read = expect_fast_503(&app, Method::GET, &format!("/v1/plan/{id}"), None).await;
    let write = expect_fast_503(&app, Method::POST, "/v1/plan", Some(&unique_plan(&tag()))).await;
    let health = app.request(Method::GET, "/v1/health").send().await.unwrap();
    assert_eq!(health.status(), 503);
    redis.signal("CONT");
    assert_eq!(until_ok(&app, &id).await, plan);
    eprintln!("hung Redis: GET answered 503 in {read:?}, POST in {write:?}");

    // Dead: connections are refused until it restarts.
    redis.kill();
    let read = expect_fast_503(&app, Method::GET, &format!("/v1/plan/{id}"), None).await;
    let write = expect_fast_503(&app, Method::POST, "/v1/plan", Some(&unique_plan(&tag()))).await;
    eprintln!("dead Redis: GET answered 503 in {read:?}, POST in {write:?}");
    redis.restart();
    assert_eq!(until_ok(&app, &id).await, plan, "the acknowledged plan survived the restart");
    let another = unique_plan(&tag());
    assert_eq!(app.create(&another).await.status(), 201, "writes work again");
    assert_eq!(app.request(Method::GET, "/v1/health").send().await.unwrap().status(), 200);
}
