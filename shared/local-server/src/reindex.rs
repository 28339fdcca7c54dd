//! `plan-local reindex <job>`: the reindex function's jobs from a terminal, with a progress bar.
//! They need shared backends (Redis, Kafka, the index service): the embedded ones live inside a
//! running server and are not reachable from another process.

use indicatif::{ProgressBar, ProgressStyle};
use plan_http::lambda::{ReindexJob, reindex};
use plan_http::{Backends, Config, Deployment};

/// A job of the reindex function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    /// Publish every change still marked unpublished.
    Sweep,
    /// Rebuild the index from the store into a fresh index, then swap the alias.
    Rebuild,
    /// Compare store and index plan by plan; print every difference.
    Drift,
}

impl From<Job> for ReindexJob {
    fn from(job: Job) -> Self {
        match job {
            Job::Sweep => Self::Sweep,
            Job::Rebuild => Self::Rebuild,
            Job::Drift => Self::Drift,
        }
    }
}

pub async fn run(job: Job) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    if config.redis.is_none() {
        return Err("reindex walks the store: set REDIS_URL (the embedded store lives inside the running server)".into());
    }
    match job {
        Job::Sweep if config.kafka.is_none() => return Err("sweep publishes to Kafka: set KAFKA_BOOTSTRAP_SERVERS".into()),
        Job::Rebuild | Job::Drift if config.opensearch.is_none() => {
            return Err(
                "rebuild and drift work on the index service: set OPENSEARCH_URL (the embedded index lives inside the running server)"
                    .into(),
            );
        }
        _ => {}
    }
    let backends = Backends::from_config(&config, Deployment::Local)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let progress = |done: usize| bar.set_message(format!("{done} plans"));
    let report = reindex(&backends, job.into(), &progress).await.map_err(|error| -> Box<dyn std::error::Error> { error })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    let differences = report["differences"].as_array().map_or(0, Vec::len);
    if differences > 0 {
        return Err(format!("{differences} plan(s) differ between store and index").into());
    }
    Ok(())
}
