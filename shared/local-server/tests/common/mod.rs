//! The real `plan-local` binary, started the way a user starts it, for the tests beside this one.

#![allow(dead_code)] // Each test file uses its own part of these helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_plan-local");

/// `plan-local` with only the variables given (no developer .env or shell settings leak in).
pub fn plan_local(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.current_dir(dir).env_clear().envs(vars.iter().copied());
    command
}

/// A fresh working directory for one test.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plan-local-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

pub fn mint(dir: &Path, args: &[&str]) -> String {
    let output = plan_local(dir, &[("ORG_CLAIM", "hd")]).arg("token").args(args).output().expect("run plan-local token");
    assert!(output.status.success(), "plan-local token failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 token").trim().to_owned()
}

pub struct Server(pub Child);

impl Server {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on a free port, with `ORG_CLAIM=hd` and `vars`, and returns it with its
/// base URL, read from its log.
pub fn serve(dir: &Path, vars: &[(&str, &str)]) -> (Server, String) {
    let mut all = vec![("ORG_CLAIM", "hd"), ("PORT", "0"), ("NO_COLOR", "1")];
    all.extend_from_slice(vars);
    // The log is on stderr (stdout is for what a command prints: a token, a reindex report).
    let child = plan_local(dir, &all).stdout(Stdio::inherit()).stderr(Stdio::piped()).spawn().expect("start plan-local");
    let mut server = Server(child);
    let stdout = server.0.stderr.take().expect("stderr");
    // Reads the log until the server says where it listens, then keeps draining it so the server
    // never writes into a closed pipe.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("plan API on http://") {
                let url: String = line[at + "plan API on ".len()..].chars().take_while(|c| !c.is_whitespace()).collect();
                let _ = url_tx.send(url);
            }
        }
    });
    let url = url_rx.recv_timeout(Duration::from_secs(30)).expect("plan-local said where it listens");
    (server, url)
}

/// Like [`serve`], and hands the log over as well: the lines up to the one naming the API's
/// address, and the rest as they come.
pub fn serve_logged(dir: &Path, vars: &[(&str, &str)]) -> (Server, String, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let mut all = vec![("ORG_CLAIM", "hd"), ("PORT", "0"), ("NO_COLOR", "1")];
    all.extend_from_slice(vars);
    let child = plan_local(dir, &all).stdout(Stdio::inherit()).stderr(Stdio::piped()).spawn().expect("start plan-local");
    let mut server = Server(child);
    let stderr = server.0.stderr.take().expect("stderr");
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut earlier = Vec::new();
    let url = loop {
        let line = line_rx.recv_timeout(Duration::from_secs(30)).expect("plan-local said where it listens");
        if let Some(at) = line.find("plan API on http://") {
            break line[at + "plan API on ".len()..].chars().take_while(|c| !c.is_whitespace()).collect();
        }
        earlier.push(line);
    };
    (server, url, earlier, line_rx)
}
