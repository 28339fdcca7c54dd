//! Plans and changes for the index contract suite, and the index backends the test script
//! provides.

use plan::{ObjectId, Plan};
use plan_index::{IndexChange, SearchQuery};
use serde_json::{Value, json};

/// A plan made to order. Ids: `{id}` for the plan, `{id}-cs` for its cost shares, and
/// `{id}-ps{i}`, `{id}-s{i}`, `{id}-pcs{i}` for the i-th linked plan service.
pub struct Spec<'a> {
    pub plan_type: &'a str,
    pub date: &'a str,
    pub org: &'a str,
    pub deductible: f64,
    pub copay: f64,
    /// (service name, deductible, copay)
    pub services: &'a [(&'a str, f64, f64)],
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Self {
            plan_type: "inNetwork",
            date: "2020-01-01",
            org: "example.com",
            deductible: 100.0,
            copay: 10.0,
            services: &[("checkup", 0.0, 0.0)],
        }
    }
}

/// A whole-number amount stays an integer in JSON, as clients write them.
fn money(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!(x) }
}

pub fn plan_json(id: &str, spec: &Spec) -> Value {
    let org = spec.org;
    let services: Vec<Value> = spec
        .services
        .iter()
        .enumerate()
        .map(|(i, (name, deductible, copay))| {
            json!({
                "_org": org, "objectId": format!("{id}-ps{i}"), "objectType": "planservice",
                "linkedService": {"_org": org, "objectId": format!("{id}-s{i}"), "objectType": "service", "name": name},
                "planserviceCostShares": {
                    "_org": org, "objectId": format!("{id}-pcs{i}"), "objectType": "membercostshare",
                    "deductible": money(*deductible), "copay": money(*copay)
                }
            })
        })
        .collect();
    json!({
        "_org": org, "objectId": id, "objectType": "plan", "planType": spec.plan_type, "creationDate": spec.date,
        "planCostShares": {
            "_org": org, "objectId": format!("{id}-cs"), "objectType": "membercostshare",
            "deductible": money(spec.deductible), "copay": money(spec.copay)
        },
        "linkedPlanServices": services
    })
}

pub fn plan_of(document: Value) -> Plan {
    plan::validate::parse_plan(document).expect("a valid plan")
}

pub fn spec_plan(id: &str, spec: &Spec) -> Plan {
    plan_of(plan_json(id, spec))
}

pub fn upsert(plan: &Plan, version: u64) -> IndexChange {
    IndexChange::Upsert { plan: plan.clone(), version }
}

pub fn delete(plan_id: &str, version: u64) -> IndexChange {
    IndexChange::Delete { plan_id: oid(plan_id), version }
}

pub fn oid(raw: &str) -> ObjectId {
    ObjectId::parse(raw).expect("valid id")
}

/// A search from its JSON form; panics on a request the API would refuse.
pub fn search(body: Value) -> SearchQuery {
    SearchQuery::from_json(&body).unwrap_or_else(|violations| panic!("invalid search {body}: {violations:?}"))
}

/// An index for one test, and how to clean it up.
pub struct Backend {
    pub index: std::sync::Arc<dyn plan_index::PlanIndex>,
    opensearch: Option<std::sync::Arc<plan_index::OpenSearchIndex>>,
}

impl Backend {
    pub fn embedded() -> Option<Self> {
        Some(Self { index: std::sync::Arc::new(plan_index::EmbeddedIndex::new()), opensearch: None })
    }

    /// The OpenSearch adapter on the test script's osmem-server (`PLAN_TEST_OPENSEARCH_URL`), on
    /// an alias of its own.
    pub fn osmem() -> Option<Self> {
        let url = crate::service_var("PLAN_TEST_OPENSEARCH_URL")?;
        Some(Self::opensearch(plan_index::OpenSearchConfig::for_tests(&url, &test_alias())))
    }

    /// The OpenSearch adapter on a real cluster, when `OPENSEARCH_URL` (and its `OPENSEARCH_*`
    /// companions) are set; skipped otherwise. Each test makes and deletes its own index.
    pub fn cluster() -> Option<Self> {
        let vars = std::env::vars().collect();
        let mut config = plan_index::OpenSearchConfig::from_vars(&vars).unwrap_or_else(|problems| panic!("OPENSEARCH_*: {problems:?}"))?;
        config.alias = test_alias();
        config.refresh_on_write = true;
        Some(Self::opensearch(config))
    }

    pub fn opensearch(config: plan_index::OpenSearchConfig) -> Self {
        let adapter = std::sync::Arc::new(plan_index::OpenSearchIndex::new(&config).expect("OpenSearch client"));
        Self { index: adapter.clone(), opensearch: Some(adapter) }
    }

    pub fn adapter(&self) -> Option<&std::sync::Arc<plan_index::OpenSearchIndex>> {
        self.opensearch.as_ref()
    }

    /// Deletes the test's indices (a panicking test leaves them: `plan-test-*`).
    pub async fn tear_down(self) {
        if let Some(adapter) = self.opensearch {
            adapter.delete_all().await.expect("delete the test's indices");
        }
    }
}

pub fn test_alias() -> String {
    format!("plan-test-{}", uuid::Uuid::new_v4().simple())
}
