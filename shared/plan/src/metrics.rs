//! The metric vocabulary: every metric the code records, in one list that the exporters (a
//! Prometheus text endpoint on the local server, CloudWatch embedded metric format on Lambda), the
//! dashboards, the alarms and the README read.
//!
//! Names follow Prometheus conventions (`_total` counters, `_seconds` histograms) and are the same
//! strings in CloudWatch. Label values come from closed sets (routes, methods, status codes,
//! operation kinds, outcomes): never a plan id, an objectId, an organisation or free text, so the
//! number of series is bounded by the code, not by the data.
//!
//! On Lambda every metric also carries the dimension `function` (the function crate's name, such
//! as `get-plan`); [`Metric::dimensions`] names the labels that become CloudWatch dimensions next
//! to it. The other labels are written as properties of the log line (Logs Insights can group by
//! them) so that each function publishes few custom metrics.

/// How a metric aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; summed over a period.
    Counter,
    /// A distribution of observations (seconds here); percentiles derivable.
    Histogram,
}

/// The unit of a metric's values (CloudWatch's `Unit`; Prometheus names carry it in the suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    /// The CloudWatch embedded metric format's name of the unit.
    pub fn cloudwatch(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
        }
    }
}

/// One metric: its name, kind, unit, labels (closed sets of values), the labels that are
/// CloudWatch dimensions, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub labels: &'static [&'static str],
    /// The labels (a subset of `labels`) that are CloudWatch dimensions besides `function`.
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

/// The dimension every metric carries on Lambda: the function crate's name.
pub const FUNCTION_DIMENSION: &str = "function";

const fn counter(name: &'static str, labels: &'static [&'static str], dimensions: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: Kind::Counter, unit: Unit::Count, labels, dimensions, help }
}

const fn seconds(name: &'static str, labels: &'static [&'static str], dimensions: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: Kind::Histogram, unit: Unit::Seconds, labels, dimensions, help }
}

// HTTP edge.
pub const HTTP_REQUESTS: Metric = counter(
    "http_requests_total",
    &["route", "method", "status"],
    &[],
    "Requests answered, by route template (`/v1/plan/{id}`, or `unmatched`), method and status code.",
);
pub const HTTP_REQUEST_DURATION: Metric = seconds(
    "http_request_duration_seconds",
    &["route", "method"],
    &[],
    "Time from the request's arrival to its answer, by route and method.",
);

// Store (Redis, the source of truth).
pub const STORE_OPERATIONS: Metric = counter(
    "store_operations_total",
    &["op", "outcome"],
    &[],
    "Store calls by operation (plan, owner, page, commit, delete, mark_published, walk, repair, ping) and outcome (ok, conflict, unavailable, corrupt).",
);
pub const STORE_OPERATION_DURATION: Metric =
    seconds("store_operation_duration_seconds", &["op"], &[], "Latency of store calls, by operation.");
pub const STORE_READS: Metric = counter(
    "store_reads_total",
    &["result"],
    &["result"],
    "Reads of a plan or an objectId's owner by result: hit (found) or miss (not found); the hit ratio of the seed system's cache.",
);
pub const STORE_CAS_RETRIES: Metric =
    counter("store_cas_retries_total", &[], &[], "Compare-and-set commits retried after another writer changed the plan first.");
pub const STORE_CAS_CONFLICTS: Metric = counter(
    "store_cas_conflicts_total",
    &["reason"],
    &[],
    "Writes refused by the store: version (the plan changed under a conditional write) or object_id (the id belongs to another plan).",
);
pub const STORE_ERRORS: Metric =
    counter("store_errors_total", &["kind"], &["kind"], "Store failures by kind: timeout, unavailable (refused or disconnected), corrupt.");

// Change events (Kafka).
pub const EVENTS_PUBLISHED: Metric =
    counter("events_published_total", &["outcome"], &["outcome"], "Change events sent to the topic, by outcome (ok, error).");
pub const EVENTS_PUBLISH_DURATION: Metric =
    seconds("events_publish_duration_seconds", &[], &[], "Latency of a publish, until the broker acknowledged it.");
pub const EVENTS_PENDING: Metric = counter(
    "events_pending_total",
    &[],
    &[],
    "Committed changes whose publish failed: acknowledged to the client, left marked for the sweep.",
);
pub const SWEEP_RUNS: Metric = counter("sweep_runs_total", &["outcome"], &[], "Sweeps of the outbox marks, by outcome (ok, error).");
pub const SWEEP_REPUBLISHED: Metric = counter("sweep_republished_total", &[], &[], "Changes the sweep published again.");
pub const SWEEP_FAILURES: Metric =
    counter("sweep_failures_total", &[], &[], "Plans the sweep could not publish (left marked for the next run).");

// Indexer (the MSK event source mapping's consumer).
pub const INDEXER_BATCHES: Metric = counter("indexer_batches_total", &["outcome"], &[], "Batches handled, by outcome (ok, retry).");
pub const INDEXER_BATCH_DURATION: Metric = seconds("indexer_batch_duration_seconds", &[], &[], "Time to index one batch.");
pub const INDEXER_RECORDS: Metric = counter(
    "indexer_records_total",
    &["outcome"],
    &["outcome"],
    "Records by outcome: applied, already_applied (an older or equal version: a version conflict skipped), dead_lettered, dead_letter_lost.",
);
pub const INDEXER_LAG: Metric = seconds(
    "indexer_lag_seconds",
    &[],
    &[],
    "Write-to-indexed lag: from the commit time carried in the change event to the moment the index accepted it.",
);

// Search (the index's readers).
pub const SEARCH_QUERIES: Metric = counter(
    "search_queries_total",
    &["kind", "outcome"],
    &[],
    "Index reads by kind (search, query, indexed_plan, index_data) and outcome (ok, error).",
);
pub const SEARCH_QUERY_DURATION: Metric = seconds("search_query_duration_seconds", &["kind"], &[], "Latency of index reads, by kind.");
pub const INDEX_ERRORS: Metric =
    counter("index_errors_total", &["op"], &[], "Failed calls to the index service, by operation (read, write, rebuild, probe).");

// Authentication.
pub const AUTH_REFUSALS: Metric = counter(
    "auth_refusals_total",
    &["reason"],
    &[],
    "Requests refused by authentication or authorisation, by reason (missing, malformed, expired, bad_signature, wrong_issuer, wrong_audience, insufficient_scope, no_organisation, keys_unavailable, ...).",
);
pub const AUTH_JWKS_FETCHES: Metric =
    counter("auth_jwks_fetches_total", &["outcome"], &[], "Fetches of the signing keys (JWKS), by outcome (ok, error).");

// Lambda.
pub const COLD_STARTS: Metric = counter("lambda_cold_starts_total", &[], &[], "Cold starts of a function (one per execution environment).");

/// Every metric, in the order the README's Monitoring section lists them.
pub const CATALOG: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    STORE_OPERATIONS,
    STORE_OPERATION_DURATION,
    STORE_READS,
    STORE_CAS_RETRIES,
    STORE_CAS_CONFLICTS,
    STORE_ERRORS,
    EVENTS_PUBLISHED,
    EVENTS_PUBLISH_DURATION,
    EVENTS_PENDING,
    SWEEP_RUNS,
    SWEEP_REPUBLISHED,
    SWEEP_FAILURES,
    INDEXER_BATCHES,
    INDEXER_BATCH_DURATION,
    INDEXER_RECORDS,
    INDEXER_LAG,
    SEARCH_QUERIES,
    SEARCH_QUERY_DURATION,
    INDEX_ERRORS,
    AUTH_REFUSALS,
    AUTH_JWKS_FETCHES,
    COLD_STARTS,
];

/// The closed set of values each label takes, whatever the data: what keeps the number of series
/// bounded (the cardinality test checks every recorded value against it). `status` is any HTTP
/// status code the API answers (three digits), and `route` any path of `plan_http::Endpoint` (or
/// the local server's JWKS path), or `unmatched`; both are checked where those lists live.
pub const LABEL_VALUES: &[(&str, &[&str])] = &[
    ("method", &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"]),
    ("op", &["plan", "owner", "page", "commit", "delete", "mark_published", "walk", "repair", "ping", "read", "write", "rebuild", "probe"]),
    (
        "outcome",
        &["ok", "error", "conflict", "unavailable", "corrupt", "retry", "applied", "already_applied", "dead_lettered", "dead_letter_lost"],
    ),
    ("result", &["hit", "miss"]),
    (
        "reason",
        &[
            "version",
            "object_id",
            "missing",
            "malformed",
            "algorithm_not_accepted",
            "no_key_id",
            "unknown_key",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "wrong_issuer",
            "wrong_audience",
            "missing_claim",
            "no_authorizer_claims",
            "not_configured",
            "insufficient_scope",
            "no_organisation",
            "keys_unavailable",
        ],
    ),
    ("kind", &["timeout", "unavailable", "corrupt", "search", "query", "indexed_plan", "index_data"]),
];

/// The allowed values of a label, `None` for `route` and `status` (see [`LABEL_VALUES`]).
pub fn allowed_values(label: &str) -> Option<&'static [&'static str]> {
    LABEL_VALUES.iter().find(|(name, _)| *name == label).map(|(_, values)| *values)
}

/// The metric of that name, if the code records one.
pub fn find(name: &str) -> Option<&'static Metric> {
    CATALOG.iter().find(|metric| metric.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_conventions() {
        for (i, metric) in CATALOG.iter().enumerate() {
            assert!(CATALOG.iter().skip(i + 1).all(|other| other.name != metric.name), "{} listed twice", metric.name);
            match metric.kind {
                Kind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
                Kind::Histogram => assert!(metric.name.ends_with("_seconds") && metric.unit == Unit::Seconds, "{}", metric.name),
            }
            assert!(metric.dimensions.iter().all(|d| metric.labels.contains(d)), "{}: a dimension that is no label", metric.name);
            assert!(!metric.labels.contains(&FUNCTION_DIMENSION), "{}: `function` is added on Lambda", metric.name);
            assert!(metric.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", metric.name);
        }
        for label in CATALOG.iter().flat_map(|metric| metric.labels) {
            assert!(allowed_values(label).is_some() || ["route", "status"].contains(label), "{label}: no closed set of values");
        }
        assert_eq!(find("indexer_lag_seconds"), Some(&INDEXER_LAG));
        assert_eq!(find("plan_id"), None);
    }
}
