//! No input can hurt the local server: connections that stall are closed, and the worst 1 MiB
//! bodies cost bounded memory. Run against the real binary, as users run it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{mint, serve, work_dir};
use serde_json::{Value, json};

/// The header timeout the tests start the server with (the default is 10 s).
const HEADER_TIMEOUT: Duration = Duration::from_millis(500);

fn connect(api: &str) -> TcpStream {
    let stream = TcpStream::connect(api.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(45))).expect("read timeout");
    stream
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the server kept the connection open: {error} after {:?}", started.elapsed()),
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[test]
fn stalled_and_idle_connections_are_closed() {
    let dir = work_dir("stalls");
    let (_server, api) = serve(&dir, &[("HEADER_TIMEOUT_MS", "500")]);

    // Connects and sends nothing.
    let (_, waited) = read_until_closed(&mut connect(&api));
    assert!(waited < HEADER_TIMEOUT * 6, "silent connection closed after {waited:?}");

    // Half a header, never finished.
    let mut half = connect(&api);
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let (_, waited) = read_until_closed(&mut half);
    assert!(waited < HEADER_TIMEOUT * 6, "half-sent header closed after {waited:?}");

    // A kept-alive connection that goes quiet after its request.
    let mut idle = connect(&api);
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (answer, waited) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < HEADER_TIMEOUT * 6, "idle connection closed after {waited:?}");
}

#[test]
fn a_body_shorter_than_its_length_times_out() {
    let dir = work_dir("short-body");
    let token = mint(&dir, &["--org", "example.com"]);
    let (_server, api) = serve(&dir, &[]);
    let mut stream = connect(&api);
    let head = format!(
        "POST /v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (answer, waited) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert!(waited < Duration::from_secs(40), "{waited:?}");
}

/// The process's peak resident memory so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

/// The worst 1 MiB inputs found by fuzzing, each with the status it must get.
fn hostile_requests(plan: &Value) -> Vec<(&'static str, &'static str, String, String, u16)> {
    let id = plan["objectId"].as_str().unwrap();
    let mut empties = serde_json::to_string(plan).unwrap();
    let at = empties.find("\"linkedPlanServices\":[").unwrap() + "\"linkedPlanServices\":[".len();
    let filler = "{},".repeat((1024 * 1024 - empties.len() - 16) / 3);
    empties.insert_str(at, &filler);
    let copies: Vec<Value> = (0..18).map(|i| json!({"op": "copy", "from": "", "path": format!("/x{i}")})).collect();
    let mut unknown = String::from("{");
    let mut i = 0;
    while unknown.len() < 1024 * 1024 - 32 {
        unknown.push_str(&format!("\"k{i}\":1,"));
        i += 1;
    }
    unknown.push_str("\"size\":1}");
    vec![
        ("PATCH", "application/json-patch+json", format!("/v1/plan/{id}"), Value::Array(copies).to_string(), 413),
        ("POST", "application/json", "/v1/plan".to_owned(), empties, 400),
        ("POST", "application/json", "/v1/search".to_owned(), unknown, 400),
    ]
}

#[tokio::test]
async fn the_worst_inputs_stay_within_64_mib_above_idle() {
    const BUDGET: u64 = 64 * 1024 * 1024;
    let dir = work_dir("memory");
    let token = mint(&dir, &["--org", "example.com"]);
    let (server, api) = serve(&dir, &[]);
    let client = reqwest::Client::new();
    let plan: Value = serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap();
    assert_eq!(client.post(format!("{api}/v1/plan")).bearer_auth(&token).json(&plan).send().await.unwrap().status(), 201);
    // Warm: the schema compiled, the first search served, the allocator's arenas in use.
    let _ = client.post(format!("{api}/v1/search")).bearer_auth(&token).json(&json!({})).send().await.unwrap();
    let idle = peak_rss(server.pid());
    for (method, content_type, path, body, status) in hostile_requests(&plan) {
        let size = body.len();
        let mut request = client.request(method.parse().unwrap(), format!("{api}{path}")).bearer_auth(&token);
        if method == "PATCH" {
            request = request.header("if-match", "*");
        }
        let response = request.header("content-type", content_type).body(body).send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}: {}", response.text().await.unwrap_or_default());
        let answer = response.bytes().await.unwrap();
        assert!(answer.len() < 64 * 1024, "{method} {path}: a {} byte answer", answer.len());
        let grown = peak_rss(server.pid()).saturating_sub(idle);
        eprintln!("{method} {path} ({size} bytes): peak {:.1} MiB above idle", grown as f64 / 1048576.0);
        assert!(grown < BUDGET, "{method} {path}: peak {grown} bytes above idle");
    }
    let read = client.get(format!("{api}/v1/plan/{}", plan["objectId"].as_str().unwrap())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.json::<Value>().await.unwrap(), plan, "the stored plan is untouched");
}
