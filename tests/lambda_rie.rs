//! Every built function as a real Lambda: `sam build`'s `bootstrap` runs under the AWS Lambda
//! Runtime Interface Emulator (shipped in the aws-sam-cli wheel), on loopback ports, against the
//! test script's Redis, Kafka and OpenSearch; each sample event goes through the runtime API and
//! must answer as in tests/events.rs. Each function runs with exactly the environment `sam local
//! invoke` would give it (template.yaml, samconfig.toml and sam-env-invoke.json resolved by the
//! SAM CLI itself: scripts/sam-resolve.py), with only the service addresses and the per-test names
//! (key prefix, topics, index alias) replaced by the test's own. Cold-start figures (INIT REPORT,
//! first invocation, peak memory, binary size) are printed and written to
//! `PLAN_TEST_LAMBDA_REPORT` when set.
//!
//! Needs `PLAN_TEST_LAMBDA_DIR` (sam build's output, `.aws-sam/build`), `PLAN_TEST_RIE` (the
//! emulator binary), `PLAN_TEST_SAM_PYTHON` and the service variables; scripts/test sets them, or
//! sets `PLAN_TEST_SKIP_LAMBDA=1` when it skipped the build.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plan::WritePolicy;
use plan_e2e::events::{self, EXPECTATIONS, Expectation};
use plan_e2e::{sam, service_var};
use plan_store::RedisStore;
use plan_wiring::Backends;
use serde_json::Value;

/// The targets: every bootstrap under 8 MB, the median INIT under 15 ms. A bootstrap over its
/// target, or a function over its memory, fails every run; INIT is a time, so a miss fails the
/// test only with `PLAN_TEST_LAMBDA_TARGETS=1` (`PLAN_TEST_LAMBDA_TARGETS=1 WITH_LAMBDA=1
/// scripts/test -p plan-e2e --test e2e lambda_rie::`, on an otherwise idle machine).
const TARGET_BOOTSTRAP_BYTES: u64 = 8_000_000;
const TARGET_MEDIAN_INIT_MS: f64 = 15.0;
const MAX_PEAK_MEMORY_KB: u64 = 32 * 1024;
const TARGET_INIT_MS: f64 = 30.0;
const TARGET_FIRST_INVOCATION_MS: f64 = 30.0;

/// The figures of one cold start.
#[derive(Debug, Default)]
struct ColdStart {
    function: String,
    file: String,
    status: u16,
    bootstrap_bytes: u64,
    init_ms: Option<f64>,
    first_invocation_ms: Option<f64>,
    warm_invocation_ms: Option<f64>,
    first_report_ms: Option<f64>,
    peak_rss_kb: Option<u64>,
    emulator_max_memory_mb: Option<f64>,
    client_round_trip_ms: f64,
}

struct Setup {
    lambda_dir: PathBuf,
    rie: PathBuf,
    redis_url: String,
    kafka: String,
    opensearch_url: String,
    /// template.yaml as the SAM CLI resolves it.
    resolved: Value,
}

fn setup() -> Option<Setup> {
    if std::env::var("PLAN_TEST_SKIP_LAMBDA").is_ok_and(|v| v == "1") {
        eprintln!("skipping: PLAN_TEST_SKIP_LAMBDA=1 (scripts/test did not run sam build)");
        return None;
    }
    Some(Setup {
        lambda_dir: service_var("PLAN_TEST_LAMBDA_DIR")?.into(),
        rie: service_var("PLAN_TEST_RIE")?.into(),
        redis_url: service_var("PLAN_TEST_REDIS_URL")?,
        kafka: service_var("PLAN_TEST_KAFKA_BOOTSTRAP_SERVERS")?,
        opensearch_url: service_var("PLAN_TEST_OPENSEARCH_URL")?,
        resolved: sam::resolved()?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_function_answers_its_sample_event_under_the_lambda_runtime_emulator() {
    let Some(setup) = setup() else { return };
    let mut results = Vec::new();
    for expectation in EXPECTATIONS {
        results.push(cold_start(&setup, expectation).await);
    }

    let report = render(&results);
    println!("{report}");
    if let Ok(path) = std::env::var("PLAN_TEST_LAMBDA_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }

    let enforce_targets = std::env::var("PLAN_TEST_LAMBDA_TARGETS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    if enforce_targets {
        match median_init_ms(&results) {
            Some(median) if median < TARGET_MEDIAN_INIT_MS => {}
            median => failures.push(format!("target missed: median INIT {median:?} ms (target under {TARGET_MEDIAN_INIT_MS} ms)")),
        }
    }
    for (result, expectation) in results.iter().zip(EXPECTATIONS) {
        if result.status != expectation.status {
            failures.push(format!("{}: status {} (expected {})", result.file, result.status, expectation.status));
        }
        if result.bootstrap_bytes > TARGET_BOOTSTRAP_BYTES {
            failures.push(format!(
                "target missed: {}: bootstrap is {} bytes (target under {TARGET_BOOTSTRAP_BYTES})",
                result.function, result.bootstrap_bytes
            ));
        }
        match result.peak_rss_kb {
            Some(kb) if kb > MAX_PEAK_MEMORY_KB => failures.push(format!("{}: peak RSS {kb} kB (target under 32 MB)", result.function)),
            None => failures.push(format!("{}: peak memory could not be read", result.function)),
            Some(_) => {}
        }
        if result.init_ms.is_none() || result.first_invocation_ms.is_none() {
            failures.push(format!("{}: the emulator printed no INIT REPORT / REPORT line", result.function));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `sam local start-api` runs no JWT authorizer, so there a function verifies the bearer token
/// itself against the local issuer's JWKS: get-plan runs with exactly its resolved start-api
/// environment (compose hostnames swapped for the test's services, the compose `jwks` URL for a
/// loopback server publishing a plan-local issuer's keys). A plan-local token gets the plan; the
/// same request without it, or with only the authorizer claims of the sample event, is a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sam_local_start_api_a_function_verifies_plan_local_tokens_itself() {
    let Some(setup) = setup() else { return };
    let function = sam::function_for_binary("get-plan").expect("get-plan in template.yaml");
    let bootstrap = setup.lambda_dir.join(&function.logical_id).join("bootstrap");

    let issuer = plan_http::auth::LocalIssuer::generate("plan-local", "plan-api", jsonwebtoken::Algorithm::RS256).expect("issuer");
    let jwks = plan_e2e::jwks::JwksServer::start(&issuer.jwks()).await;
    let token = issuer
        .mint(&plan_http::auth::Grant {
            subject: "local-developer".to_owned(),
            scopes: vec!["plans:read".to_owned()],
            org: None,
            ttl: Duration::from_secs(600),
        })
        .expect("token");

    let key_prefix = plan_e2e::unique_prefix();
    let store = redis_store(&setup.redis_url, &key_prefix);
    let index = plan_index::EmbeddedIndex::new();
    events::seed_into(&Backends::with_store(store, WritePolicy::default()), &index, events::Seed::SamplePlan).await;

    let resolved = setup.resolved["start_api"][&function.logical_id]["environment"].as_object().expect("resolved start-api environment");
    assert_eq!(resolved["JWKS_URL"], "http://jwks:8080/jwks.json", "the compose jwks service");
    let replacements = [("REDIS_URL", setup.redis_url.clone()), ("REDIS_KEY_PREFIX", key_prefix), ("JWKS_URL", jwks.url())];
    let env: Vec<(String, String)> = resolved
        .iter()
        .map(|(name, value)| {
            let replaced = replacements.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            (name.clone(), replaced.unwrap_or_else(|| value.as_str().unwrap_or_default().to_owned()))
        })
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let emulator = Emulator::start(&setup.rie, &bootstrap, "get-plan", &env);

    let (_, mut event) = events::read_event("get-plan.json");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
    let url = format!("http://127.0.0.1:{}/2015-03-31/functions/function/invocations", emulator.port);
    let invoke = async |event: &Value| -> u64 {
        let answer: Value = client.post(&url).body(event.to_string()).send().await.expect("invoke").json().await.expect("JSON");
        answer["statusCode"].as_u64().unwrap_or_else(|| panic!("no statusCode in {answer}\n{}", emulator.log()))
    };
    assert_eq!(invoke(&event).await, 401, "authorizer claims alone are not trusted under sam local start-api");
    event["requestContext"].as_object_mut().expect("requestContext").remove("authorizer");
    assert_eq!(invoke(&event).await, 401, "no token");
    event["headers"]["authorization"] = Value::String(format!("Bearer {token}"));
    assert_eq!(invoke(&event).await, 200, "a plan-local token\n{}", emulator.log());
    emulator.stop();
}

/// A client of the test script's Redis under its own key prefix, for seeding a function's data.
fn redis_store(url: &str, key_prefix: &str) -> Arc<RedisStore> {
    let config = plan_store::RedisConfig {
        urls: vec![url.to_owned()],
        cluster: false,
        key_prefix: key_prefix.to_owned(),
        op_timeout: Duration::from_millis(1500),
        ca_pem: None,
        auth_secret_arn: None,
    };
    Arc::new(RedisStore::new(&config).expect("Redis client"))
}

/// A name only the Swagger UI bundle (`shared/http/assets/swagger-ui/swagger-ui-bundle.js`) holds.
const DOCS_MARKER: &[u8] = b"SwaggerUIBundle";

async fn cold_start(setup: &Setup, expectation: &Expectation) -> ColdStart {
    let function = sam::function_for_binary(expectation.function)
        .unwrap_or_else(|| panic!("{} has no function resource in template.yaml", expectation.function));
    let bootstrap = setup.lambda_dir.join(&function.logical_id).join("bootstrap");
    let bootstrap_bytes =
        std::fs::metadata(&bootstrap).unwrap_or_else(|e| panic!("{}: {e} (did sam build run?)", bootstrap.display())).len();
    // Only api-docs carries the Swagger UI files (about 2 MB): sam build turns plan-http's
    // `api-docs` feature on for every function, and only the code they can reach keeps them out.
    let binary = std::fs::read(&bootstrap).expect("read the bootstrap");
    let embeds_docs = binary.windows(DOCS_MARKER.len()).any(|window| window == DOCS_MARKER);
    assert_eq!(embeds_docs, expectation.function == "api-docs", "{}: embeds the Swagger UI bundle: {embeds_docs}", expectation.function);

    // Each function gets its own key prefix, seeded like the in-process replay.
    let key_prefix = plan_e2e::unique_prefix();
    let store = redis_store(&setup.redis_url, &key_prefix);
    // The function's own index alias on the test script's osmem-server, seeded like its store.
    let alias = plan_e2e::index::test_alias();
    let index =
        plan_index::OpenSearchIndex::new(&plan_index::OpenSearchConfig::for_tests(&setup.opensearch_url, &alias)).expect("index client");
    events::seed_into(&Backends::with_store(store, WritePolicy::default()), &index, expectation.seed).await;
    let topic = format!("plan_operations_rie_{}", plan_e2e::tag());
    let dead_letter_topic = format!("{topic}.dlq");
    // Deployed functions never create topics (the reindex setup job does): create both, as
    // compose's kafka-init does for sam local.
    create_topics(&setup.kafka, &[&topic, &dead_letter_topic]).await;

    // The environment `sam local invoke` gives this function, with the compose hostnames swapped
    // for the test's services and per-test names; a variable the template does not declare is
    // never added (OPENSEARCH_INDEX aside, which only names this test's alias).
    let resolved = setup.resolved["invoke"][&function.logical_id]["environment"]
        .as_object()
        .unwrap_or_else(|| panic!("{}: not in the resolved template", function.logical_id));
    let mut env: Vec<(String, String)> =
        resolved.iter().map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned())).collect();
    let replacements = [
        ("REDIS_URL", setup.redis_url.as_str()),
        ("REDIS_KEY_PREFIX", key_prefix.as_str()),
        ("KAFKA_BOOTSTRAP_SERVERS", setup.kafka.as_str()),
        ("KAFKA_TOPIC", topic.as_str()),
        ("KAFKA_DLQ_TOPIC", dead_letter_topic.as_str()),
        ("OPENSEARCH_URL", setup.opensearch_url.as_str()),
    ];
    for (name, value) in &mut env {
        if let Some((_, replacement)) = replacements.iter().find(|(n, _)| n == name) {
            *value = (*replacement).to_owned();
        }
    }
    if resolved.contains_key("OPENSEARCH_URL") {
        env.push(("OPENSEARCH_INDEX".to_owned(), alias.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();

    let (text, _) = events::read_event(expectation.file);
    let emulator = Emulator::start(&setup.rie, &bootstrap, expectation.function, &env);

    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
    let url = format!("http://127.0.0.1:{}/2015-03-31/functions/function/invocations", emulator.port);
    let started = Instant::now();
    let first = client.post(&url).body(text.clone()).send().await.and_then(|r| r.error_for_status());
    let client_round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
    let first: Value = match first {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(error) => panic!("{}: invoke failed: {error}\n{}", expectation.function, emulator.log()),
    };
    // An HTTP function answers an API Gateway response; the indexer and reindex functions answer
    // their report, or an error object (errorType) when they fail.
    let status = match first["statusCode"].as_u64() {
        Some(code) => u16::try_from(code).unwrap_or(0),
        None if first.is_object() && first.get("errorType").is_none() => 200,
        None => 500,
    };
    if status != expectation.status {
        eprintln!("{}: answered {first}\n{}", expectation.function, emulator.log());
    }

    // A second invocation of the same instance: the runtime loop goes on after the first answer
    // (a repeated write may now be refused, but never with a 5xx).
    let second: Value = client.post(&url).body(text).send().await.expect("second invoke").json().await.unwrap_or(Value::Null);
    let second_status = second["statusCode"].as_u64().unwrap_or(if second.get("errorType").is_none() { 200 } else { 500 });
    assert!((200..500).contains(&second_status), "{}: second invocation answered {second}\n{}", expectation.function, emulator.log());

    let peak_rss_kb = emulator.function_peak_rss_kb();
    let reports = emulator.wait_for_reports(2);
    emulator.stop();

    ColdStart {
        function: expectation.function.to_owned(),
        file: expectation.file.to_owned(),
        status,
        bootstrap_bytes,
        init_ms: reports.init_ms,
        first_invocation_ms: reports.durations_ms.first().copied(),
        warm_invocation_ms: reports.durations_ms.get(1).copied(),
        first_report_ms: reports.report_ms.first().copied(),
        peak_rss_kb,
        emulator_max_memory_mb: reports.max_memory_mb,
        client_round_trip_ms,
    }
}

/// The emulator running one bootstrap, with everything both print collected.
struct Emulator {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
}

impl Emulator {
    fn start(rie: &Path, bootstrap: &Path, function: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let runtime_api_port = free_port();
        let mut command = Command::new(rie);
        command
            // Loopback only: the emulator's default is 0.0.0.0:8080.
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_api_port}"))
            .arg(bootstrap)
            // A clean environment, as on Lambda: only what template.yaml would set.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", rie.display()));
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, output.clone());
        }
        let emulator = Self { child, port, output };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the emulator did not listen on 127.0.0.1:{port} within 10 s\n{}", emulator.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        emulator
    }

    fn log(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The bootstrap's peak resident set (VmHWM), read from /proc while it still runs.
    fn function_peak_rss_kb(&self) -> Option<u64> {
        let pid = self.function_pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The bootstrap process: the emulator's one child.
    fn function_pid(&self) -> Option<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        tasks
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|children| children.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
            .next()
    }

    /// The INIT REPORT and REPORT figures, once `invocations` REPORT lines have been printed.
    fn wait_for_reports(&self, invocations: usize) -> Reports {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let reports = Reports::parse(&self.log());
            if reports.report_ms.len() >= invocations || Instant::now() > deadline {
                return reports;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM lets the emulator stop its runtime; whatever is left is killed, by pid.
    fn stop(mut self) {
        let function_pid = self.function_pid();
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = function_pid
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

async fn create_topics(bootstrap: &str, topics: &[&str]) {
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_owned()]).build().await.expect("Kafka client");
    let controller = client.controller_client().expect("controller");
    for topic in topics {
        controller.create_topic(*topic, 1, 1, 5_000).await.unwrap_or_else(|e| panic!("create {topic}: {e}"));
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut output) = into.lock() {
                output.push_str(&line);
                output.push('\n');
            }
        }
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

#[derive(Debug, Default)]
struct Reports {
    /// `INIT REPORT(durationMs: 27.49)`: the function's init phase.
    init_ms: Option<f64>,
    /// `INVOKE RTDONE(status: success, ..., duration: 1.22ms)`: each invocation in the runtime.
    durations_ms: Vec<f64>,
    /// `REPORT RequestId: ... Duration: 28.99 ms`: the emulator counts the init phase into the
    /// first invocation's REPORT, unlike Lambda, so it is kept apart.
    report_ms: Vec<f64>,
    max_memory_mb: Option<f64>,
}

impl Reports {
    fn parse(log: &str) -> Self {
        let mut reports = Self::default();
        for line in log.lines() {
            if let Some(rest) = line.split("INIT REPORT").nth(1) {
                reports.init_ms = reports.init_ms.or_else(|| number_after(rest, "durationMs:"));
            } else if let Some(rest) = line.split("INVOKE RTDONE").nth(1) {
                reports.durations_ms.extend(number_after(rest, "duration:"));
            } else if let Some(rest) = line.split("REPORT RequestId").nth(1) {
                reports.report_ms.extend(number_after(rest, "\tDuration:"));
                reports.max_memory_mb = reports.max_memory_mb.or_else(|| number_after(rest, "Max Memory Used:"));
            }
        }
        reports
    }
}

fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = text.split(label).nth(1)?.trim_start();
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    number.parse().ok()
}

/// The median of the functions' INIT durations.
fn median_init_ms(results: &[ColdStart]) -> Option<f64> {
    let mut inits: Vec<f64> = results.iter().filter_map(|r| r.init_ms).collect();
    if inits.len() != results.len() {
        return None;
    }
    inits.sort_by(f64::total_cmp);
    let middle = inits.len() / 2;
    Some(if inits.len().is_multiple_of(2) {
        (inits.get(middle.wrapping_sub(1))? + inits.get(middle)?) / 2.0
    } else {
        *inits.get(middle)?
    })
}

fn render(results: &[ColdStart]) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let mut out = String::from(
        "Cold starts under the Lambda Runtime Interface Emulator (x86_64 build)\n\
         | function | event | status | bootstrap | INIT ms | 1st invoke ms | 1st REPORT ms (init + invoke) | 2nd invoke ms | peak RSS | client round trip ms |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} MB | {} | {} | {} | {} | {} | {:.1} |",
            r.function,
            r.file,
            r.status,
            // Decimal megabytes, as the 8 MB target (8,000,000 bytes) is written.
            r.bootstrap_bytes as f64 / 1e6,
            ms(r.init_ms),
            ms(r.first_invocation_ms),
            ms(r.first_report_ms),
            ms(r.warm_invocation_ms),
            r.peak_rss_kb.map_or_else(|| "-".to_owned(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0)),
            r.client_round_trip_ms,
        );
    }
    let misses: Vec<String> = results
        .iter()
        .filter(|r| r.init_ms.is_some_and(|v| v > TARGET_INIT_MS) || r.first_invocation_ms.is_some_and(|v| v > TARGET_FIRST_INVOCATION_MS))
        .map(|r| r.function.clone())
        .collect();
    let _ = writeln!(
        out,
        "Targets: median INIT < {TARGET_MEDIAN_INIT_MS} ms (here {}), each init < {TARGET_INIT_MS} ms and first invocation < \
         {TARGET_FIRST_INVOCATION_MS} ms (missed by: {}), peak < 32 MB, bootstrap < 8 MB (missed by: {}).",
        ms(median_init_ms(results)),
        if misses.is_empty() { "none".to_owned() } else { misses.join(", ") },
        {
            let over: Vec<&str> =
                results.iter().filter(|r| r.bootstrap_bytes > TARGET_BOOTSTRAP_BYTES).map(|r| r.function.as_str()).collect();
            if over.is_empty() { "none".to_owned() } else { over.join(", ") }
        }
    );
    if let Some(mb) = results.iter().find_map(|r| r.emulator_max_memory_mb) {
        let _ = writeln!(
            out,
            "Peak RSS is the bootstrap's VmHWM from /proc: the emulator's REPORT says \"Max Memory Used: {mb} MB\", its configured size, for every function."
        );
    }
    out
}
