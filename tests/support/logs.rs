//! The JSON log lines a test produced, captured by a subscriber set as the thread's default (so a
//! `current_thread` test sees the lines of every task it runs, and of no other test).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures every INFO-and-above line written on this thread until the guard is dropped, as
    /// the Lambda functions write them with `AWS_LAMBDA_LOG_FORMAT=JSON` (spans included).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::INFO).with_writer(self.clone()).finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
