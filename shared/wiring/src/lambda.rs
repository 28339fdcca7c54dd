//! Serving the API as AWS Lambda functions: one per HTTP endpoint, the indexer (MSK event source
//! mapping) and the reindex job (schedule and on demand).
//!
//! Each function's `main` is its composition: it starts a [`ColdStart`], builds exactly the
//! clients its endpoint calls and adds exactly that endpoint to the [`Api`]:
//!
//! ```ignore
//! let mut start = ColdStart::begin("get-plan").await?;
//! let reads = start.reads().await?;
//! start.serve(start.api()?.get_plan(reads)).await
//! ```
//!
//! What a function can reach is what it links: `sam build` builds the whole workspace, so every
//! cargo feature of every function is on in every function, and a function that does not name a
//! builder (the Kafka producer, the index client) or
//! another endpoint's handler leaves them out of its binary.

// The builders below name their types in full: each exists only with its backend's feature.
#[cfg(any(feature = "redis", feature = "kafka", feature = "opensearch"))]
use std::sync::Arc;

use plan_http::auth::AuthSetupError;
use plan_http::{Api, Authenticator};

use crate::config::{Config, Deployment};

pub type Error = lambda_http::Error;

/// One cold start: logging as the function's LoggingConfig says, configuration (every problem
/// named at once), the metrics recorder; then the clients the function asks for, each built once,
/// with its secrets resolved from Secrets Manager and MSK's brokers looked up once, here. Building
/// a client opens no connection: a cold start never waits for, or fails on, an unreachable
/// backend, and requests answer 503 until it is back.
pub struct ColdStart {
    function: &'static str,
    config: Config,
}

impl ColdStart {
    pub async fn begin(function: &'static str) -> Result<Self, Error> {
        init_logging();
        let config = Config::from_env(Deployment::Lambda)?;
        crate::emf::install(&config.metrics_namespace, function);
        record_cold_start();
        Ok(Self { function, config })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// No route yet, callers authenticated as configured (API Gateway's verified claims, or the
    /// bearer token verified here).
    pub fn api(&self) -> Result<Api, AuthSetupError> {
        Ok(Api::new(self.authenticator()?))
    }

    fn authenticator(&self) -> Result<Authenticator, AuthSetupError> {
        Authenticator::from_config(&self.config.auth, self.config.claims.clone())
    }

    /// The Redis store, its password from `REDIS_AUTH_SECRET_ARN` when set.
    #[cfg(feature = "redis")]
    pub async fn store(&mut self) -> Result<Arc<plan::metered::MeteredStore<plan_store::RedisStore>>, Error> {
        let redis = self.config.redis.as_mut().ok_or("REDIS_URL is required on Lambda")?;
        #[cfg(not(feature = "aws"))]
        if redis.auth_secret_arn.is_some() {
            return Err("REDIS_AUTH_SECRET_ARN needs a build with the `aws` feature".into());
        }
        #[cfg(feature = "aws")]
        if let Some(arn) = redis.auth_secret_arn.take() {
            let (username, password) = plan_events::aws::credentials_from_secret(&plan_events::aws::secret_string(&arn).await?);
            redis.with_credentials(username.as_deref(), &password)?;
        }
        Ok(Arc::new(plan::metered::MeteredStore::new(Arc::new(plan_store::RedisStore::new(redis)?))))
    }

    #[cfg(feature = "redis")]
    pub async fn reads(&mut self) -> Result<plan::PlanReads, Error> {
        Ok(plan::PlanReads::new(self.store().await?))
    }

    /// The store and the change publisher (Kafka, or none with `CHANGE_EVENTS=off`).
    #[cfg(all(feature = "redis", feature = "kafka"))]
    pub async fn writes(&mut self) -> Result<plan::PlanWrites, Error> {
        let store = self.store().await?;
        let publisher = self.publisher().await?;
        Ok(plan::PlanWrites::new(store, publisher, self.config.write_policy))
    }

    /// The change publisher: Kafka, or with `CHANGE_EVENTS=off` one that refuses (the changes
    /// stay marked for a sweep).
    #[cfg(feature = "kafka")]
    pub async fn publisher(&mut self) -> Result<Arc<dyn plan::events::ChangePublisher>, Error> {
        let publisher: Arc<dyn plan::events::ChangePublisher> = match self.kafka().await? {
            Some(kafka) => Arc::new(plan_events::KafkaPublisher::new(kafka)),
            None if !self.config.events.change_events => Arc::new(NoPublisher),
            None => {
                return Err(format!(
                    "{} needs Kafka: set KAFKA_BOOTSTRAP_SERVERS or MSK_CLUSTER_ARN (or CHANGE_EVENTS=off)",
                    self.function
                )
                .into());
            }
        };
        Ok(Arc::new(plan::metered::MeteredPublisher::new(publisher)))
    }

    /// The Kafka settings with the brokers of `MSK_CLUSTER_ARN` and the SCRAM credentials of
    /// `KAFKA_SASL_SECRET_ARN` resolved (once: the settings keep them).
    #[cfg(feature = "kafka")]
    pub async fn kafka(&mut self) -> Result<Option<plan_events::KafkaConfig>, Error> {
        let events = &mut self.config.events;
        let Some(kafka) = events.kafka.as_mut() else { return Ok(None) };
        #[cfg(not(feature = "aws"))]
        if matches!(kafka.auth, plan_events::KafkaAuth::MskIam { .. }) || events.sasl_secret_arn.is_some() {
            return Err("KAFKA_AUTH=iam, MSK_CLUSTER_ARN and KAFKA_SASL_SECRET_ARN need a build with the `aws` feature".into());
        }
        #[cfg(feature = "aws")]
        {
            if let Some(arn) = events.msk_cluster_arn.as_deref()
                && kafka.bootstrap_servers.is_empty()
            {
                kafka.bootstrap_servers = plan_events::msk::bootstrap_brokers(arn).await?;
            }
            if let Some(arn) = events.sasl_secret_arn.take() {
                let (username, password) = plan_events::aws::credentials_from_secret(&plan_events::aws::secret_string(&arn).await?);
                let username = username.ok_or("KAFKA_SASL_SECRET_ARN: the secret has no username")?;
                kafka.auth = plan_events::KafkaAuth::ScramSha512 { username, password: plan_events::Secret(password) };
            }
        }
        Ok(Some(kafka.clone()))
    }

    /// The search index. A function of its own with the embedded index would be empty: without
    /// `OPENSEARCH_URL` it refuses to start rather than answer every search with nothing.
    #[cfg(feature = "opensearch")]
    pub fn index(&self) -> Result<Arc<dyn plan_index::PlanIndex>, Error> {
        let opensearch =
            self.config.opensearch.as_ref().ok_or_else(|| format!("{} needs the index service: set OPENSEARCH_URL", self.function))?;
        Ok(Arc::new(plan_index::MeteredIndex::new(Arc::new(plan_index::OpenSearchIndex::new(opensearch)?))))
    }

    #[cfg(feature = "opensearch")]
    pub fn index_reads(&self) -> Result<plan_index::IndexReads, Error> {
        Ok(plan_index::IndexReads::new(self.index()?))
    }

    /// What health pings: the store, and Kafka and the index where they are configured.
    #[cfg(all(feature = "redis", feature = "kafka", feature = "opensearch"))]
    pub async fn probes(&mut self) -> Result<Vec<Arc<dyn plan::probe::Probe>>, Error> {
        let mut probes: Vec<Arc<dyn plan::probe::Probe>> = vec![self.store().await?];
        if let Some(kafka) = self.kafka().await? {
            probes.push(Arc::new(plan_events::KafkaPublisher::new(kafka)));
        }
        if self.config.opensearch.is_some() {
            probes.push(self.index()?);
        }
        Ok(probes)
    }

    /// The runtime loop of an HTTP function, one request at a time, its metrics written after
    /// every request (embedded metric format).
    pub async fn serve(&self, api: Api) -> Result<(), Error> {
        tracing::info!(function = self.function, "cold start complete");
        lambda_http::run(api.into_router().layer(axum::middleware::from_fn(crate::emf::flush_after))).await
    }
}

/// Logging as the function's LoggingConfig says: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`, at
/// the level of `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else INFO). What lambda_runtime's
/// `init_default_subscriber` does, with a plain level filter instead of `EnvFilter`: its
/// directive parser links a regex engine (about 0.7 MB) into every bootstrap, and a level is all
/// that Lambda's logging controls set. (`RUST_LOG` is read as one level, not as directives.)
fn init_logging() {
    use tracing_subscriber::filter::LevelFilter;

    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    let level = level.trim().parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt().with_target(false).without_time().with_max_level(level).with_writer(std::io::stdout);
    // A second subscriber (a test that already installed one) is not an error here.
    let _ = if json { logs.json().try_init() } else { logs.try_init() };
}

/// Counts this execution environment's cold start (`lambda_cold_start_total`); written with the
/// first invocation's metrics.
pub fn record_cold_start() {
    metrics::counter!(plan::metrics::COLD_STARTS.name).increment(1);
}

/// The indexer, fed by the MSK event source mapping. A batch whose index write fails transiently
/// returns an error, so the mapping delivers it again (then to its on-failure destination);
/// poison records are dead-lettered and never fail the batch.
#[cfg(all(feature = "kafka", feature = "opensearch"))]
pub async fn run_indexer() -> Result<(), Error> {
    use aws_lambda_events::event::kafka::KafkaEvent;
    use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
    use plan_events::indexer::{BatchReport, Indexer};
    use serde_json::json;

    let mut start = ColdStart::begin("indexer").await?;
    let index = start.index()?;
    let mut dead_letters = start.kafka().await?.ok_or("the indexer needs Kafka: set KAFKA_BOOTSTRAP_SERVERS or MSK_CLUSTER_ARN")?;
    dead_letters.topic = start.config.events.dead_letter_topic.clone();
    let indexer = Arc::new(Indexer::new(index, Arc::new(plan_events::KafkaDeadLetters(plan_events::KafkaPublisher::new(dead_letters)))));
    // The dead-letter topic exists before the first poison record (bounded by KAFKA_TIMEOUT_MS).
    indexer.prepare().await;
    tracing::info!(function = start.function, "cold start complete");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
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

/// The reindex function: the scheduled sweep, and rebuild, drift check or topic setup on demand.
#[cfg(all(feature = "redis", feature = "kafka", feature = "opensearch"))]
pub async fn run_reindex() -> Result<(), Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
    use serde_json::Value;

    use crate::reindex::{self, ReindexJob, ReindexParts};

    let mut start = ColdStart::begin("reindex").await?;
    let store = start.store().await?;
    let publisher = start.publisher().await?;
    let parts = ReindexParts { walk: store.clone(), store, publisher, index: start.index()? };
    let events = Arc::new(start.config.events.clone());
    // Both topics exist before the first sweep publishes or the first record is dead-lettered:
    // made here (a no-op once they exist), so a fresh stack needs no manual step. A failure is
    // logged, not fatal: the sweep's publish then fails and the marks wait for the next run.
    match Box::pin(reindex::setup_topics(&events)).await {
        Ok(report) => tracing::info!(report = %report.to_json(), "topics ready"),
        Err(error) => tracing::warn!(%error, "topic setup failed"),
    }
    tracing::info!(function = start.function, "cold start complete");
    let parts = Arc::new(parts);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (events, parts) = (events.clone(), parts.clone());
        async move {
            // Boxed: the jobs' futures are deep, and the runtime loop nests them once more.
            let answer = match ReindexJob::from_event(&event.payload) {
                Ok(ReindexJob::Setup) => Box::pin(reindex::setup_topics(&events)).await,
                Ok(job) => Box::pin(reindex::run(&parts, job, &|_| {})).await,
                Err(error) => Err(error.into()),
            };
            crate::emf::flush_stdout();
            answer.map(|report| report.to_json()).map_err(|error| -> Error { error })
        }
    }))
    .await
}

/// The publisher of a writing function with `CHANGE_EVENTS=off` (a stack without events and
/// search): every publish fails, so each change stays marked unpublished for a later sweep.
#[cfg(feature = "kafka")]
struct NoPublisher;

#[cfg(feature = "kafka")]
#[async_trait::async_trait]
impl plan::events::ChangePublisher for NoPublisher {
    async fn publish(&self, _event: &plan::events::ChangeEvent) -> Result<(), plan::events::PublishError> {
        Err(plan::events::PublishError::new("change events are off for this stack (CHANGE_EVENTS=off)"))
    }
}
