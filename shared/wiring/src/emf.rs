//! The Lambda functions' metrics exporter: a `metrics` recorder that writes CloudWatch embedded
//! metric format (EMF) lines on stdout after each invocation. CloudWatch Logs turns them into
//! metrics: no agent, no PutMetricData call, no permission beyond the logs the function writes.
//!
//! Hand-written rather than the `metrics_cloudwatch_embedded` crate (0.10; its `lambda` feature
//! would fit our lambda_http 1.x, the format does not), which makes every
//! label a dimension, while the catalog (`plan::metrics`) keeps most labels as properties so
//! that each function publishes few custom metrics and the dashboard's dimension sets are
//! exactly `[["function", <Metric::dimensions>...]]`; it also queues every histogram value
//! unbounded and writes arrays of any length, where EMF takes at most 100 values per metric.
//!
//! Each line carries one series (a metric and its label values): `_aws` names the namespace, the
//! dimension set `["function", dimensions...]` and the metric with its unit; the root holds
//! `function`, every label (dimensions and properties alike) and the value: the count since
//! the previous flush, or up to [`MAX_VALUES_PER_LINE`] observations (more lines when there
//! are more). Series that saw nothing since the previous flush are not written.
//!
//! With the function's `LogFormat: JSON` (template.yaml's Globals), Lambda formats only its own
//! system logs for a custom runtime such as ours and passes a line that already is a JSON object
//! through unchanged: each EMF document must be a whole line holding one JSON object and nothing
//! else, which [`flush_stdout`] guarantees by writing every line while it holds stdout's lock
//! (so no log line from the tracing subscriber interleaves).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use plan::metrics::{FUNCTION_DIMENSION, Kind, Metric};
use serde_json::{Map, Value, json};

/// EMF's limit of values in one metric's array.
pub const MAX_VALUES_PER_LINE: usize = 100;
/// Distinct observed values a histogram keeps between flushes (at microsecond resolution); past
/// it, an observation is counted at the nearest kept value. Bounds memory whatever the traffic.
const MAX_DISTINCT_VALUES: usize = 1_000;
/// Series one process keeps: far above what the closed label sets allow; a bug that minted
/// series beyond it is dropped rather than grow memory.
const MAX_SERIES: usize = 2_000;

/// The recorder; clones share one registry (one is installed, one flushes).
#[derive(Clone)]
pub struct EmfRecorder {
    inner: Arc<Registry>,
}

struct Registry {
    namespace: String,
    function: String,
    series: Mutex<HashMap<Key, Series>>,
}

#[derive(Clone)]
enum Series {
    Counter(&'static Metric, Arc<CounterCell>),
    Histogram(&'static Metric, Arc<HistogramCell>),
}

#[derive(Default)]
struct CounterCell(AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// Observations since the last flush: microseconds -> how many times seen.
#[derive(Default)]
struct HistogramCell(Mutex<BTreeMap<u64, u64>>);

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        let micros = (value.max(0.0) * 1e6).round() as u64;
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = if counts.len() < MAX_DISTINCT_VALUES || counts.contains_key(&micros) {
            micros
        } else {
            let below = counts.range(..micros).next_back().map(|(k, _)| *k);
            let above = counts.range(micros..).next().map(|(k, _)| *k);
            match (below, above) {
                (Some(b), Some(a)) if micros - b <= a - micros => b,
                (_, Some(a)) => a,
                (Some(b), None) => b,
                (None, None) => micros,
            }
        };
        *counts.entry(key).or_default() += 1;
    }
}

impl EmfRecorder {
    /// A recorder for `function` (the `function` dimension) in `namespace`.
    pub fn new(namespace: &str, function: &str) -> Self {
        Self {
            inner: Arc::new(Registry {
                namespace: namespace.to_owned(),
                function: function.to_owned(),
                series: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn series(&self, key: &Key, kind: Kind) -> Option<Series> {
        // Only the catalog's metrics are exported: the dashboard and alarms know no other.
        let metric = plan::metrics::find(key.name()).filter(|metric| metric.kind == kind)?;
        let mut series = self.inner.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = series.get(key) {
            return Some(found.clone());
        }
        if series.len() >= MAX_SERIES {
            return None;
        }
        let created = match kind {
            Kind::Counter => Series::Counter(metric, Arc::default()),
            Kind::Histogram => Series::Histogram(metric, Arc::default()),
        };
        series.insert(key.clone(), created.clone());
        Some(created)
    }

    /// Writes every series that saw something since the previous flush, one EMF document per
    /// line, and starts them over.
    pub fn flush(&self, out: &mut impl Write) -> io::Result<()> {
        let timestamp = now_ms();
        let series: Vec<(Key, Series)> = {
            let series = self.inner.series.lock().unwrap_or_else(|p| p.into_inner());
            series.iter().map(|(key, series)| (key.clone(), series.clone())).collect()
        };
        for (key, series) in series {
            match series {
                Series::Counter(metric, cell) => {
                    let count = cell.0.swap(0, Ordering::Relaxed);
                    if count > 0 {
                        self.write_line(out, timestamp, metric, &key, json!(count))?;
                    }
                }
                Series::Histogram(metric, cell) => {
                    let counts = std::mem::take(&mut *cell.0.lock().unwrap_or_else(|p| p.into_inner()));
                    let mut values = Vec::with_capacity(MAX_VALUES_PER_LINE);
                    for (micros, count) in counts {
                        for _ in 0..count {
                            values.push(Value::from(micros as f64 / 1e6));
                            if values.len() == MAX_VALUES_PER_LINE {
                                self.write_line(out, timestamp, metric, &key, Value::Array(std::mem::take(&mut values)))?;
                            }
                        }
                    }
                    if !values.is_empty() {
                        self.write_line(out, timestamp, metric, &key, Value::Array(values))?;
                    }
                }
            }
        }
        out.flush()
    }

    fn write_line(&self, out: &mut impl Write, timestamp: i64, metric: &Metric, key: &Key, value: Value) -> io::Result<()> {
        let mut dimensions = vec![FUNCTION_DIMENSION];
        dimensions.extend_from_slice(metric.dimensions);
        let mut root = Map::new();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.inner.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": metric.name, "Unit": metric.unit.cloudwatch()}],
                }],
            }),
        );
        root.insert(FUNCTION_DIMENSION.to_owned(), Value::from(self.inner.function.as_str()));
        for label in key.labels() {
            root.insert(label.key().to_owned(), Value::from(label.value()));
        }
        // A dimension recorded without its label would make the document invalid: name it.
        for dimension in metric.dimensions {
            root.entry(*dimension).or_insert_with(|| Value::from("none"));
        }
        root.insert(metric.name.to_owned(), value);
        let mut line = serde_json::to_vec(&root).map_err(io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.series(key, Kind::Counter) {
            Some(Series::Counter(_, cell)) => Counter::from_arc(cell),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.series(key, Kind::Histogram) {
            Some(Series::Histogram(_, cell)) => Histogram::from_arc(cell),
            _ => Histogram::noop(),
        }
    }
}

static INSTALLED: OnceLock<EmfRecorder> = OnceLock::new();

/// Installs the EMF recorder for this execution environment (once, at cold start).
pub fn install(namespace: &str, function: &str) {
    let recorder = INSTALLED.get_or_init(|| EmfRecorder::new(namespace, function));
    if metrics::set_global_recorder(recorder.clone()).is_err() {
        tracing::warn!("a metrics recorder was already installed; embedded metric format lines are not written");
    }
}

/// Writes what the installed recorder holds to stdout: after every invocation.
pub fn flush_stdout() {
    if let Some(recorder) = INSTALLED.get() {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        if let Err(error) = recorder.flush(&mut out) {
            tracing::warn!(%error, "metrics not written");
        }
    }
}

/// Middleware (outermost, Lambda HTTP functions): flushes the metrics of each request once it is
/// answered, so every invocation's metrics are out before the runtime may freeze the environment.
pub async fn flush_after(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    flush_stdout();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(recorder: &EmfRecorder) -> Vec<Value> {
        let mut out = Vec::new();
        recorder.flush(&mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn counters_and_histograms_become_documents() {
        let recorder = EmfRecorder::new("HealthPlan", "get-plan");
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("store_reads_total", "result" => "hit").increment(2);
            metrics::counter!("not_in_the_catalog_total").increment(1);
            for i in 0..250 {
                metrics::histogram!("http_request_duration_seconds", "route" => "/v1/plan/{id}", "method" => "GET")
                    .record(f64::from(i) / 1000.0);
            }
        });
        let lines = lines(&recorder);
        let reads: Vec<&Value> = lines.iter().filter(|line| line.get("store_reads_total").is_some()).collect();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0]["store_reads_total"], 2);
        assert_eq!(reads[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["function", "result"]]));
        assert_eq!(reads[0]["function"], "get-plan");
        let durations: Vec<&Value> = lines.iter().filter(|line| line.get("http_request_duration_seconds").is_some()).collect();
        assert_eq!(
            durations.iter().map(|l| l["http_request_duration_seconds"].as_array().unwrap().len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(durations[0]["route"], "/v1/plan/{id}");
        assert_eq!(durations[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["function"]]));
        assert_eq!(lines.len(), 4, "nothing outside the catalog");
        assert!(super::tests::lines(&recorder).is_empty(), "a flush starts every series over");
    }

    #[test]
    fn histograms_stay_bounded() {
        let recorder = EmfRecorder::new("HealthPlan", "indexer");
        metrics::with_local_recorder(&recorder, || {
            for i in 0..5_000 {
                metrics::histogram!("indexer_lag_seconds").record(f64::from(i) * 0.001);
            }
        });
        let Some(Series::Histogram(_, cell)) = recorder.inner.series.lock().unwrap().values().next().cloned() else { panic!() };
        assert_eq!(cell.0.lock().unwrap().len(), MAX_DISTINCT_VALUES);
        assert_eq!(cell.0.lock().unwrap().values().sum::<u64>(), 5_000);
    }
}
