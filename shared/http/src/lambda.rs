//! Serving the API as AWS Lambda functions: one per HTTP endpoint, the indexer (MSK event source
//! mapping) and the reindex job (schedule and on demand).

use std::sync::Arc;

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use plan_events::indexer::BatchReport;
use plan_events::reindex::{drift_check, rebuild};
use serde_json::{Value, json};

use crate::{Backends, Config, Deployment, Endpoint, api_router, router};

type Error = lambda_http::Error;

/// Cold start: logging as the function's LoggingConfig says, configuration (every problem named
/// at once), brokers from MSK when only the cluster ARN is given and secrets from Secrets Manager
/// (once, here), clients built once.
async fn cold_start(function: &str, needs_kafka: bool, needs_index: bool) -> Result<(Config, Backends), Error> {
    lambda_http::tracing::init_default_subscriber();
    #[allow(unused_mut)]
    let mut config = Config::from_env(Deployment::Lambda)?;
    crate::emf::install(&config.metrics_namespace, function);
    record_cold_start();
    #[cfg(feature = "aws")]
    config.resolve_aws().await?;
    if needs_kafka && config.kafka.is_none() && config.change_events {
        return Err(format!("{function} needs Kafka: set KAFKA_BOOTSTRAP_SERVERS or MSK_CLUSTER_ARN (or CHANGE_EVENTS=off)").into());
    }
    if needs_index && config.opensearch.is_none() {
        // The embedded index would be empty in a function of its own: refuse rather than answer
        // every search with nothing.
        return Err(format!("{function} needs the index service: set OPENSEARCH_URL").into());
    }
    let backends = Backends::from_config(&config, Deployment::Lambda)?;
    tracing::info!(function, auth = backends.auth().describe(), "cold start complete");
    Ok((config, backends))
}

/// Counts this execution environment's cold start (`lambda_cold_start_total`); written with the
/// first invocation's metrics.
pub fn record_cold_start() {
    metrics::counter!(plan::metrics::COLD_STARTS.name).increment(1);
}

/// The function's router with its metrics written after every request (embedded metric format).
fn flushing(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(crate::emf::flush_after))
}

/// One HTTP endpoint of the API (never the documentation: see `docs`); then the runtime loop, one
/// request at a time.
pub async fn run(endpoint: Endpoint) -> Result<(), Error> {
    let (_, backends) = cold_start(endpoint.function(), endpoint.writes(), endpoint.uses_index()).await?;
    lambda_http::run(flushing(api_router(&[endpoint], &backends))).await
}

/// Every HTTP endpoint that `function` serves (the api-docs function serves three).
pub async fn run_function(function: &str) -> Result<(), Error> {
    let endpoints: Vec<Endpoint> = Endpoint::ALL.into_iter().filter(|e| e.function() == function).collect();
    if endpoints.is_empty() {
        return Err(format!("{function} serves no HTTP endpoint").into());
    }
    let (_, backends) = cold_start(function, endpoints.iter().any(|e| e.writes()), endpoints.iter().any(|e| e.uses_index())).await?;
    lambda_http::run(flushing(router(&endpoints, &backends))).await
}

/// The indexer, fed by the MSK event source mapping. A batch whose index write fails transiently
/// returns an error, so the mapping delivers it again (then to its on-failure destination);
/// poison records are dead-lettered and never fail the batch.
pub async fn run_indexer() -> Result<(), Error> {
    let (_, backends) = cold_start("indexer", true, true).await?;
    let indexer = backends.indexer();
    // The dead-letter topic exists before the first poison record (bounded by KAFKA_TIMEOUT_MS).
    indexer.prepare().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::event::kafka::KafkaEvent>| {
        let indexer = indexer.clone();
        async move {
            let report = indexer.index_batch(&event.payload).await;
            crate::emf::flush_stdout();
            let report: BatchReport = report?;
            Ok::<_, Error>(json!({
                "applied": report.applied, "alreadyApplied": report.already_applied, "deadLettered": report.dead_lettered,
                "deadLettersLost": report.dead_letters_lost,
            }))
        }
    }))
    .await
}

/// What the reindex function was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReindexJob {
    Sweep,
    Rebuild,
    Drift,
    /// Create the change topic and the dead-letter topic if missing, with `KAFKA_PARTITIONS` and
    /// `KAFKA_REPLICATION_FACTOR` (once after the first deploy: README, "Deploy to AWS").
    Setup,
}

impl ReindexJob {
    /// `{"action": "sweep" | "rebuild" | "drift"}` on demand; an EventBridge scheduled event
    /// (`"source": "aws.events"`) is the periodic sweep.
    pub fn from_event(event: &Value) -> Result<Self, String> {
        match (event.get("action").and_then(Value::as_str), event.get("source").and_then(Value::as_str)) {
            (Some("sweep"), _) | (None, Some("aws.events")) => Ok(Self::Sweep),
            (Some("rebuild"), _) => Ok(Self::Rebuild),
            (Some("drift"), _) => Ok(Self::Drift),
            (Some("setup"), _) => Ok(Self::Setup),
            (Some(other), _) => Err(format!("unknown action {other:?}: sweep, rebuild, drift or setup")),
            (None, _) => Err("expected a scheduled event or {\"action\": \"sweep\" | \"rebuild\" | \"drift\" | \"setup\"}".to_owned()),
        }
    }
}

/// Runs one reindex job against the backends, answering a JSON report; `progress` hears how many
/// plans were walked so far (the local command's progress bar; the Lambda passes a no-op). The
/// one dispatcher of the reindex function and of `plan-local reindex`.
pub async fn reindex(backends: &Backends, job: ReindexJob, progress: &(dyn Fn(usize) + Send + Sync)) -> Result<Value, Error> {
    Ok(match job {
        ReindexJob::Setup => return Err("the setup job needs the configuration: use setup_topics".into()),
        ReindexJob::Sweep => {
            let report = plan::jobs::sweep(backends.walk().as_ref(), backends.store().as_ref(), backends.publisher().as_ref()).await?;
            let failures: Vec<Value> =
                report.failures.iter().map(|f| json!({"planId": f.plan.as_str(), "version": f.version, "reason": f.reason})).collect();
            json!({
                "job": "sweep", "walked": report.walked, "republished": report.republished, "repaired": report.repaired,
                "failed": report.failed, "failures": failures,
            })
        }
        ReindexJob::Rebuild => {
            let report = rebuild(backends.walk().as_ref(), backends.index().as_ref(), progress).await?;
            json!({"job": "rebuild", "plansIndexed": report.plans_indexed})
        }
        ReindexJob::Drift => {
            let report = drift_check(backends.walk().as_ref(), backends.index().as_ref(), progress).await?;
            let drift: Vec<String> = report.drift.iter().map(ToString::to_string).collect();
            for line in &drift {
                tracing::warn!(drift = %line, "store and index differ");
            }
            let repairs: Vec<String> = report.repairs.iter().map(ToString::to_string).collect();
            json!({"job": "drift", "plansChecked": report.plans_checked, "differences": drift, "repairs": repairs})
        }
    })
}

/// Creates the change topic and the dead-letter topic when missing, with the configured
/// partitions and replication factor (never 1 on Lambda), and reports both.
pub async fn setup_topics(config: &Config) -> Result<Value, Error> {
    let Some(kafka) = &config.kafka else { return Err("setup needs Kafka: KAFKA_BOOTSTRAP_SERVERS or MSK_CLUSTER_ARN".into()) };
    let mut topics = serde_json::Map::new();
    for topic in [&config.topic, &config.dead_letter_topic] {
        let mut creating = kafka.clone();
        creating.topic = topic.clone();
        creating.topic_creation = plan_events::TopicCreation::WithReplicationFactor(config.replication_factor);
        let partitions = plan_events::KafkaPublisher::new(creating).ensure_topic().await?;
        topics.insert(topic.clone(), json!({"partitions": partitions}));
    }
    Ok(json!({"job": "setup", "replicationFactor": config.replication_factor, "topics": topics}))
}

/// The reindex function: the scheduled sweep, and rebuild, drift check or topic setup on demand.
pub async fn run_reindex() -> Result<(), Error> {
    let (config, backends) = cold_start("reindex", true, true).await?;
    // Both topics exist before the first sweep publishes or the first record is dead-lettered:
    // made here (a no-op once they exist), so a fresh stack needs no manual step. A failure is
    // logged, not fatal: the sweep's publish then fails and the marks wait for the next run.
    match Box::pin(setup_topics(&config)).await {
        Ok(report) => tracing::info!(%report, "topics ready"),
        Err(error) => tracing::warn!(%error, "topic setup failed"),
    }
    let (config, backends) = (Arc::new(config), Arc::new(backends));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (config, backends) = (config.clone(), backends.clone());
        async move {
            // Boxed: the jobs' futures are deep, and the runtime loop nests them once more.
            let answer = match ReindexJob::from_event(&event.payload) {
                Ok(ReindexJob::Setup) => Box::pin(setup_topics(&config)).await,
                Ok(job) => Box::pin(reindex(&backends, job, &|_| {})).await,
                Err(error) => Err(error.into()),
            };
            crate::emf::flush_stdout();
            answer
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_jobs_from_events() {
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(ReindexJob::from_event(&scheduled), Ok(ReindexJob::Sweep));
        assert_eq!(ReindexJob::from_event(&json!({"action": "rebuild"})), Ok(ReindexJob::Rebuild));
        assert_eq!(ReindexJob::from_event(&json!({"action": "drift"})), Ok(ReindexJob::Drift));
        assert_eq!(ReindexJob::from_event(&json!({"action": "setup"})), Ok(ReindexJob::Setup));
        assert!(ReindexJob::from_event(&json!({"action": "drop"})).is_err());
        assert!(ReindexJob::from_event(&json!({})).is_err());
    }
}
