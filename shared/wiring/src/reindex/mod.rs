//! The reindex job, the only code that walks the whole store: the sweep of unpublished changes
//! (scheduled), a full rebuild into a fresh index behind the alias and the drift check (on
//! demand), and the topic setup. One dispatcher for the reindex function and `plan-local
//! reindex`, answering a typed report (serialised as the function's JSON answer).

mod walk;

use std::collections::BTreeMap;
use std::sync::Arc;

use plan::events::ChangePublisher;
use plan::store::{PlanWriter, StoreWalk};
use plan_index::PlanIndex;
use serde::Serialize;
use serde_json::Value;

pub use walk::{Drift, DriftReport, Progress, RebuildReport, ReindexError, drift_check, rebuild};

/// What the reindex function was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReindexJob {
    Sweep,
    Rebuild,
    Drift,
    /// Create the change topic and the dead-letter topic if missing, with `KAFKA_PARTITIONS` and
    /// `KAFKA_REPLICATION_FACTOR` (run at every cold start of the reindex function, and on demand).
    Setup,
}

impl ReindexJob {
    /// `{"action": "sweep" | "rebuild" | "drift" | "setup"}` on demand; an EventBridge scheduled
    /// event (`"source": "aws.events"`) is the periodic sweep.
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

/// What a job did: the reindex function's answer, and what `plan-local reindex` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "job", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum ReindexReport {
    Sweep { walked: usize, republished: usize, repaired: usize, failed: usize, failures: Vec<SweepFailure> },
    Rebuild { plans_indexed: usize },
    Drift { plans_checked: usize, differences: Vec<String>, repairs: Vec<String> },
    Setup { replication_factor: i16, topics: BTreeMap<String, TopicReport> },
}

/// A change the sweep could not publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepFailure {
    pub plan_id: String,
    pub version: u64,
    pub reason: String,
}

/// A topic the setup job made sure of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TopicReport {
    pub partitions: i32,
}

impl ReindexReport {
    /// The report as the function answers it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// What the report says is wrong, one line each: plans that differ between store and index,
    /// changes that could not be published, objectIds two plans list. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self {
            Self::Drift { differences, repairs, .. } => {
                if !differences.is_empty() {
                    problems.push(format!("{} plan(s) differ between store and index", differences.len()));
                }
                let shared = repairs.iter().filter(|repair| repair.contains("listed by both")).count();
                if shared > 0 {
                    problems.push(format!("{shared} objectId(s) listed by two plans"));
                }
            }
            Self::Sweep { failed, .. } if *failed > 0 => problems.push(format!("{failed} change(s) could not be published")),
            Self::Sweep { .. } | Self::Rebuild { .. } | Self::Setup { .. } => {}
        }
        problems
    }
}

/// What the walking jobs work on.
#[derive(Clone)]
pub struct ReindexParts {
    pub walk: Arc<dyn StoreWalk>,
    pub store: Arc<dyn PlanWriter>,
    pub publisher: Arc<dyn ChangePublisher>,
    pub index: Arc<dyn PlanIndex>,
}

/// Why a job did not run to its end.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a walking job (every job but [`ReindexJob::Setup`], which needs the Kafka settings:
/// [`setup_topics`]); `progress` hears how many plans were walked so far (the local command's
/// progress bar; the Lambda passes a no-op).
pub async fn run(parts: &ReindexParts, job: ReindexJob, progress: Progress<'_>) -> Result<ReindexReport, JobError> {
    Ok(match job {
        ReindexJob::Setup => return Err("the setup job needs the Kafka settings: use setup_topics".into()),
        ReindexJob::Sweep => {
            let report = plan::jobs::sweep(parts.walk.as_ref(), parts.store.as_ref(), parts.publisher.as_ref()).await?;
            let failures = report
                .failures
                .iter()
                .map(|f| SweepFailure { plan_id: f.plan.as_str().to_owned(), version: f.version, reason: f.reason.clone() })
                .collect();
            ReindexReport::Sweep {
                walked: report.walked,
                republished: report.republished,
                repaired: report.repaired,
                failed: report.failed,
                failures,
            }
        }
        ReindexJob::Rebuild => {
            let report = rebuild(parts.walk.as_ref(), parts.index.as_ref(), progress).await?;
            ReindexReport::Rebuild { plans_indexed: report.plans_indexed }
        }
        ReindexJob::Drift => {
            let report = drift_check(parts.walk.as_ref(), parts.index.as_ref(), progress).await?;
            let differences: Vec<String> = report.drift.iter().map(ToString::to_string).collect();
            for line in &differences {
                tracing::warn!(drift = %line, "store and index differ");
            }
            let repairs = report.repairs.iter().map(ToString::to_string).collect();
            ReindexReport::Drift { plans_checked: report.plans_checked, differences, repairs }
        }
    })
}

/// Creates the change topic and the dead-letter topic when missing, with the configured
/// partitions and replication factor (never 1 on Lambda), and reports both.
#[cfg(feature = "kafka")]
pub async fn setup_topics(events: &plan_events::EventSettings) -> Result<ReindexReport, JobError> {
    let Some(kafka) = &events.kafka else { return Err("setup needs Kafka: KAFKA_BOOTSTRAP_SERVERS or MSK_CLUSTER_ARN".into()) };
    let mut topics = BTreeMap::new();
    for topic in [&events.topic, &events.dead_letter_topic] {
        let mut creating = kafka.clone();
        creating.topic = topic.clone();
        creating.topic_creation = plan_events::TopicCreation::WithReplicationFactor(events.replication_factor);
        let partitions = plan_events::KafkaPublisher::new(creating).ensure_topic().await?;
        topics.insert(topic.clone(), TopicReport { partitions });
    }
    Ok(ReindexReport::Setup { replication_factor: events.replication_factor, topics })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jobs_from_events() {
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(ReindexJob::from_event(&scheduled), Ok(ReindexJob::Sweep));
        assert_eq!(ReindexJob::from_event(&json!({"action": "rebuild"})), Ok(ReindexJob::Rebuild));
        assert_eq!(ReindexJob::from_event(&json!({"action": "drift"})), Ok(ReindexJob::Drift));
        assert_eq!(ReindexJob::from_event(&json!({"action": "setup"})), Ok(ReindexJob::Setup));
        assert!(ReindexJob::from_event(&json!({"action": "drop"})).is_err());
        assert!(ReindexJob::from_event(&json!({})).is_err());
    }

    #[test]
    fn reports_serialise_as_the_function_answers_them() {
        let sweep = ReindexReport::Sweep {
            walked: 3,
            republished: 2,
            repaired: 0,
            failed: 1,
            failures: vec![SweepFailure { plan_id: "p".into(), version: 4, reason: "refused".into() }],
        };
        assert_eq!(
            sweep.to_json(),
            json!({"job": "sweep", "walked": 3, "republished": 2, "repaired": 0, "failed": 1,
                   "failures": [{"planId": "p", "version": 4, "reason": "refused"}]})
        );
        assert_eq!(ReindexReport::Rebuild { plans_indexed: 7 }.to_json(), json!({"job": "rebuild", "plansIndexed": 7}));
        let setup =
            ReindexReport::Setup { replication_factor: 3, topics: BTreeMap::from([("t".to_owned(), TopicReport { partitions: 3 })]) };
        assert_eq!(setup.to_json(), json!({"job": "setup", "replicationFactor": 3, "topics": {"t": {"partitions": 3}}}));
    }

    #[test]
    fn problems_of_each_report() {
        let drift = |differences: &[&str], repairs: &[&str]| ReindexReport::Drift {
            plans_checked: 3,
            differences: differences.iter().map(|d| d.to_string()).collect(),
            repairs: repairs.iter().map(|r| r.to_string()).collect(),
        };
        assert!(drift(&[], &[]).problems().is_empty());
        assert_eq!(drift(&["p: missing from the index"], &[]).problems(), ["1 plan(s) differ between store and index"]);
        assert_eq!(drift(&[], &["o: listed by both p and q"]).problems(), ["1 objectId(s) listed by two plans"]);
        let sweep = |failed| ReindexReport::Sweep { walked: 9, republished: 9, repaired: 0, failed, failures: Vec::new() };
        assert_eq!(sweep(1).problems(), ["1 change(s) could not be published"]);
        assert!(sweep(0).problems().is_empty());
    }
}
