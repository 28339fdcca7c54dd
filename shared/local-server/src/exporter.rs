//! The local server's metrics: the `plan::metrics` vocabulary as Prometheus text, served on a
//! listener of its own (`METRICS_ADDR`, default `127.0.0.1:9464`, `off` to disable), and a
//! one-line summary printed on shutdown.
//!
//! A separate loopback listener rather than a `/metrics` route on the API's address: the API's
//! routes all sit behind the edge (authentication, problems, request metrics), while a scraper
//! carries no token, and operational figures (request rates, error ratios) should not be
//! reachable by whoever can reach the API when `HOST` is opened to a network. The port is the
//! conventional one of OpenTelemetry's Prometheus exporter; a Prometheus (docker compose) scrapes
//! `host.docker.internal:9464` or `127.0.0.1:9464`.
//!
//! Histograms render as Prometheus histograms (explicit buckets), not summaries, so that a real
//! Prometheus can aggregate them across routes and derive any quantile.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use metrics::Recorder;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use plan::metrics::{CATALOG, Kind};
use tokio::net::TcpListener;

/// Bucket bounds (seconds) of every histogram: a millisecond to half a minute, fine enough
/// around the API's usual latencies for p50/p90/p99, wide enough for index lag.
pub const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histogram samples are folded into their buckets between scrapes (bounded memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// How long the metrics listener waits for a scraper's request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A Prometheus recorder with explicit buckets for every histogram of the catalog, and the
/// catalog's help texts.
pub fn recorder() -> Result<PrometheusRecorder, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for metric in CATALOG.iter().filter(|metric| metric.kind == Kind::Histogram) {
        builder = builder.set_buckets_for_metric(Matcher::Full(metric.name.to_owned()), BUCKETS)?;
    }
    let recorder = builder.build_recorder();
    for metric in CATALOG {
        match metric.kind {
            Kind::Counter => recorder.describe_counter(metric.name.into(), None, metric.help.into()),
            Kind::Histogram => recorder.describe_histogram(metric.name.into(), Some(metrics::Unit::Seconds), metric.help.into()),
        }
    }
    Ok(recorder)
}

/// Installs [`recorder`] for the whole process; the handle renders what it holds.
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = recorder().map_err(|e| e.to_string())?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    Ok(handle)
}

/// `GET /metrics` (and `/`) in the Prometheus text format, version 0.0.4.
pub fn router(handle: PrometheusHandle) -> Router {
    let render = move || {
        let handle = handle.clone();
        async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()) }
    };
    Router::new().route("/metrics", get(render.clone())).route("/", get(render))
}

/// Serves [`router`] on `listener` with the API's accept loop (its header timeout bounds idle and
/// half-sent connections), and folds histogram samples regularly, until `shutdown`.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, shutdown: impl Future<Output = ()>) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    crate::server::serve(listener, router(handle), HEADER_TIMEOUT, shutdown).await;
    upkeep.abort();
}

/// The figures of the shutdown line, read back from the Prometheus text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// The upper bound of the bucket holding the 99th percentile of request durations.
    pub p99_seconds: Option<f64>,
    pub store_hits: u64,
    pub store_misses: u64,
    pub events_published: u64,
    pub events_pending: u64,
    pub records_indexed: u64,
    pub dead_lettered: u64,
}

impl Summary {
    /// Reads the summary's figures from a rendering of the recorder.
    pub fn from_text(text: &str) -> Self {
        let mut summary = Self::default();
        let mut latency_buckets: BTreeMap<u64, f64> = BTreeMap::new();
        for sample in text.lines().filter_map(Sample::parse) {
            let value = sample.value as u64;
            match sample.name {
                "http_requests_total" => {
                    summary.requests += value;
                    match sample.label("status").and_then(|s| s.bytes().next()) {
                        Some(b'4') => summary.client_errors += value,
                        Some(b'5') => summary.server_errors += value,
                        _ => {}
                    }
                }
                "http_request_duration_seconds_bucket" => {
                    let le = sample.label("le").and_then(|le| le.parse::<f64>().ok()).unwrap_or(f64::INFINITY);
                    *latency_buckets.entry(le.to_bits()).or_default() += sample.value;
                }
                "store_reads_total" if sample.label("result") == Some("hit") => summary.store_hits += value,
                "store_reads_total" if sample.label("result") == Some("miss") => summary.store_misses += value,
                "events_published_total" if sample.label("outcome") == Some("ok") => summary.events_published += value,
                "events_pending_total" => summary.events_pending += value,
                "indexer_records_total" if sample.label("outcome") == Some("applied") => summary.records_indexed += value,
                "indexer_records_total" if sample.label("outcome") == Some("dead_lettered") => summary.dead_lettered += value,
                _ => {}
            }
        }
        // Positive floats order like their bits: the buckets come smallest bound first.
        let total = latency_buckets.get(&f64::INFINITY.to_bits()).copied().unwrap_or(0.0);
        if total > 0.0 {
            summary.p99_seconds = latency_buckets.iter().find(|(_, count)| **count >= total * 0.99).map(|(le, _)| f64::from_bits(*le));
        }
        summary
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p99 = match self.p99_seconds {
            Some(le) if le.is_finite() => format!("<= {} ms", le * 1000.0),
            Some(_) => format!("> {} ms", BUCKETS.last().copied().unwrap_or_default() * 1000.0),
            None => "n/a".to_owned(),
        };
        let reads = self.store_hits + self.store_misses;
        let hit_ratio = if reads == 0 { "n/a".to_owned() } else { format!("{:.1}%", self.store_hits as f64 * 100.0 / reads as f64) };
        write!(
            f,
            "metrics: {} requests ({} 4xx, {} 5xx), p99 {p99}; store reads {reads}, hit ratio {hit_ratio}; events published {}, pending for the sweep {}; records indexed {}, dead-lettered {}",
            self.requests,
            self.client_errors,
            self.server_errors,
            self.events_published,
            self.events_pending,
            self.records_indexed,
            self.dead_lettered
        )
    }
}

/// One sample line of the Prometheus text format: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// A sample line, or `None` for comments, blank lines and anything else. Label values with
    /// escaped quotes are not split correctly; the API's label values never contain one.
    pub fn parse(line: &'a str) -> Option<Self> {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let value = value.parse().ok()?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once("=\"")?;
                Some((key, value.strip_suffix('"').unwrap_or(value)))
            })
            .collect();
        Some(Self { name, labels, value })
    }

    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse() {
        let sample = Sample::parse(r#"http_requests_total{route="/v1/plan/{id}",method="GET",status="200"} 3"#).unwrap();
        assert_eq!(sample.name, "http_requests_total");
        assert_eq!(sample.labels, [("route", "/v1/plan/{id}"), ("method", "GET"), ("status", "200")]);
        assert_eq!(sample.value, 3.0);
        assert_eq!(Sample::parse("store_cas_retries_total 2").unwrap().labels, []);
        assert_eq!(Sample::parse("# TYPE x counter"), None);
    }

    #[test]
    fn the_summary_reads_the_text() {
        let text = r#"
http_requests_total{route="/v1/plan",method="POST",status="201"} 8
http_requests_total{route="/v1/plan/{id}",method="GET",status="404"} 1
http_requests_total{route="unmatched",method="GET",status="503"} 1
http_request_duration_seconds_bucket{route="/v1/plan",method="POST",le="0.005"} 5
http_request_duration_seconds_bucket{route="/v1/plan",method="POST",le="0.01"} 10
http_request_duration_seconds_bucket{route="/v1/plan",method="POST",le="+Inf"} 10
store_reads_total{result="hit"} 3
store_reads_total{result="miss"} 1
events_published_total{outcome="ok"} 8
events_pending_total 2
indexer_records_total{outcome="applied"} 7
"#;
        let summary = Summary::from_text(text);
        assert_eq!(summary.requests, 10);
        assert_eq!((summary.client_errors, summary.server_errors), (1, 1));
        assert_eq!(summary.p99_seconds, Some(0.01));
        assert_eq!((summary.store_hits, summary.store_misses, summary.events_pending, summary.records_indexed), (3, 1, 2, 7));
        assert!(summary.to_string().contains("hit ratio 75.0%"), "{summary}");
        assert!(summary.to_string().contains("p99 <= 10 ms"), "{summary}");
    }
}
