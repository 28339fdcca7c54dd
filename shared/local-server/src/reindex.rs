//! `plan-local reindex <job>`: the reindex function's jobs from a terminal, with a progress bar.
//! They need shared backends (Redis, Kafka, the index service): the embedded ones live inside a
//! running server and are not reachable from another process.

use indicatif::{ProgressBar, ProgressStyle};
use plan_events::reindex::{drift_check, rebuild};
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

pub async fn run(job: Job) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    if config.redis.is_none() {
        return Err("reindex walks the store: set REDIS_URL (the embedded store lives inside the running server)".into());
    }
    if matches!(job, Job::Rebuild | Job::Drift) && std::env::var_os("OPENSEARCH_URL").is_none() {
        return Err(
            "rebuild and drift work on the index service: set OPENSEARCH_URL (the embedded index lives inside the running server)".into()
        );
    }
    let backends = Backends::from_config(&config, Deployment::Local)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let progress = |done: usize| bar.set_message(format!("{done} plans"));
    match job {
        Job::Sweep => {
            if config.kafka.is_none() {
                return Err("sweep publishes to Kafka: set KAFKA_BOOTSTRAP_SERVERS".into());
            }
            bar.set_message("sweeping");
            let report = plan::jobs::sweep(backends.walk().as_ref(), backends.store().as_ref(), backends.publisher().as_ref()).await?;
            bar.finish_with_message(format!("walked {} plans, republished {}", report.walked, report.republished));
        }
        Job::Rebuild => {
            let report = rebuild(backends.walk().as_ref(), backends.index().as_ref(), &progress).await?;
            bar.finish_with_message(format!("indexed {} plans into a fresh index, alias swapped", report.plans_indexed));
        }
        Job::Drift => {
            let report = drift_check(backends.walk().as_ref(), backends.index().as_ref(), &progress).await?;
            bar.finish_with_message(format!("checked {} plans, {} difference(s)", report.plans_checked, report.drift.len()));
            for drift in &report.drift {
                println!("{drift}");
            }
            if !report.drift.is_empty() {
                return Err(format!("{} plan(s) differ between store and index", report.drift.len()).into());
            }
        }
    }
    Ok(())
}
