//! The JSON log lines a test produced on its own thread (so a `current_thread` test sees the
//! lines of every task it runs, and of no other test).
//!
//! One process-wide subscriber writes every INFO-and-above line, as the Lambda functions write
//! them with `AWS_LAMBDA_LOG_FORMAT=JSON` (spans included), to the capture installed on the
//! emitting thread, or nowhere. A thread-local default subscriber per test would not do: tracing
//! caches whether a call site is enabled process-wide, and a call site first reached by another
//! test's thread (with no subscriber) can stay disabled for the capturing test.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: RefCell<Option<LogCapture>> = const { RefCell::new(None) };
}

/// Captures this thread's lines until dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

impl LogCapture {
    /// Captures every INFO-and-above line written on this thread until the guard is dropped.
    pub fn install(&self) -> CaptureGuard {
        static SUBSCRIBER: Once = Once::new();
        SUBSCRIBER.call_once(|| {
            let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::INFO).with_writer(ThreadCapture).finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in the test binaries");
        });
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(self.clone()));
        CaptureGuard(())
    }

    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect()
    }
}

/// Writes to the emitting thread's capture, if it has one.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(capture) = capture.borrow().as_ref() {
                capture.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;

    fn make_writer(&'a self) -> Self::Writer {
        ThreadCapture
    }
}
