//! `plan-local reindex <job>`: the reindex function's jobs from a terminal, with a progress bar.
//! They need shared backends (Redis, Kafka, the index service): the embedded ones live inside a
//! running server and are not reachable from another process.
//!
//! The JSON report is the only thing on stdout (logs and the progress bar go to stderr), so
//! `plan-local reindex drift | jq` works. Exit status: 0 when the job ran and found nothing wrong,
//! [`EXIT_PROBLEMS`] (2) when it ran and reports problems (drift: differences between store and
//! index; sweep: changes it could not publish; either: an objectId two plans list), 1 when it could
//! not run or stopped (configuration, an unreachable backend, the broker down during a sweep).

use indicatif::{ProgressBar, ProgressStyle};
use plan_wiring::reindex::{self, ReindexJob, ReindexReport};
use plan_wiring::{Backends, Config, Deployment};

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

/// The exit status of a job that ran and reports problems.
pub const EXIT_PROBLEMS: u8 = 2;

/// What a job that ran found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Problems the report lists, summed up in a line.
    Problems(String),
}

pub async fn run(job: Job) -> Result<Outcome, Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    if config.redis.is_none() {
        return Err("reindex walks the store: set REDIS_URL (the embedded store lives inside the running server)".into());
    }
    match job {
        Job::Sweep if config.events.kafka.is_none() => return Err("sweep publishes to Kafka: set KAFKA_BOOTSTRAP_SERVERS".into()),
        Job::Rebuild | Job::Drift if config.opensearch.is_none() => {
            return Err(
                "rebuild and drift work on the index service: set OPENSEARCH_URL (the embedded index lives inside the running server)"
                    .into(),
            );
        }
        _ => {}
    }
    let backends = Backends::from_config(&config)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let progress = |done: usize| bar.set_message(format!("{done} plans"));
    let report =
        reindex::run(&backends.reindex_parts(), job.into(), &progress).await.map_err(|error| -> Box<dyn std::error::Error> { error })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(outcome(&report))
}

fn outcome(report: &ReindexReport) -> Outcome {
    let problems = report.problems();
    if problems.is_empty() { Outcome::Clean } else { Outcome::Problems(problems.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_map_to_outcomes() {
        let drift = |differences: Vec<String>| ReindexReport::Drift { plans_checked: 3, differences, repairs: Vec::new() };
        assert_eq!(outcome(&drift(Vec::new())), Outcome::Clean);
        assert_eq!(
            outcome(&drift(vec!["p: missing from the index".to_owned()])),
            Outcome::Problems("1 plan(s) differ between store and index".to_owned())
        );
        let sweep = |failed| ReindexReport::Sweep { walked: 10, republished: 9, repaired: 0, failed, failures: Vec::new() };
        assert_eq!(outcome(&sweep(1)), Outcome::Problems("1 change(s) could not be published".to_owned()));
        assert_eq!(outcome(&sweep(0)), Outcome::Clean);
    }
}
