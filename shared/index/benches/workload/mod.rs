//! The benchmarks' plans and searches: deterministic, shaped like the common sample plan (a plan,
//! its cost shares and two linked plan services: 8 objects).

use plan::model::{MemberCostShare, PlanService, Service};
use plan::{ObjectId, ObjectType, Plan};
use plan_index::SearchQuery;
use serde_json::{Number, json};

/// xorshift64: the same plans on every run.
pub struct Random(pub u64);

impl Random {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const NAMES: [&str; 16] = [
    "Yearly physical",
    "well baby",
    "Physical therapy",
    "dental cleaning",
    "vision exam",
    "urgent care",
    "emergency room",
    "X-ray imaging",
    "annual physical",
    "maternity care",
    "mental health",
    "lab tests",
    "chiropractic care",
    "hearing test",
    "allergy shots",
    "well woman visit",
];
const TYPES: [&str; 3] = ["inNetwork", "outOfNetwork", "HMO"];

fn id(raw: String) -> ObjectId {
    ObjectId::parse(&raw).unwrap_or_else(|_| unreachable!("generated ids are valid"))
}

fn money(random: &mut Random, scale: u64) -> Number {
    Number::from(random.below(scale))
}

fn cost_share(random: &mut Random, object_id: String, org: &str, deductible_scale: u64, copay_scale: u64) -> MemberCostShare {
    MemberCostShare {
        object_id: id(object_id),
        object_type: ObjectType::MemberCostShare,
        org: org.to_owned(),
        deductible: money(random, deductible_scale),
        copay: money(random, copay_scale),
    }
}

pub fn plan(random: &mut Random, n: usize) -> Plan {
    let org = format!("org{}.example", random.below(20));
    let services = (0..2)
        .map(|s| PlanService {
            object_id: id(format!("ps{s}-{n}")),
            object_type: ObjectType::PlanService,
            org: org.clone(),
            linked_service: Service {
                object_id: id(format!("svc{s}-{n}")),
                object_type: ObjectType::Service,
                org: org.clone(),
                name: NAMES[random.below(NAMES.len() as u64) as usize].to_owned(),
            },
            planservice_cost_shares: cost_share(random, format!("pcs{s}-{n}"), &org, 100, 200),
        })
        .collect();
    Plan {
        object_id: id(format!("plan-{n}")),
        object_type: ObjectType::Plan,
        plan_type: TYPES[random.below(3) as usize].to_owned(),
        creation_date: format!("{:02}-{:02}-{}", 1 + random.below(12), 1 + random.below(28), 2010 + random.below(15)),
        plan_cost_shares: cost_share(random, format!("cs-{n}"), &org, 5000, 60),
        linked_plan_services: services,
        org,
    }
}

pub fn plans(count: usize) -> Vec<Plan> {
    let mut random = Random(0x00c0_ffee);
    (0..count).map(|n| plan(&mut random, n)).collect()
}

/// The canonical searches of issue 6, by name.
pub fn canonical_searches() -> Vec<(&'static str, SearchQuery)> {
    let q = |body: serde_json::Value| SearchQuery::from_json(&body).unwrap_or_else(|v| unreachable!("{v:?}"));
    vec![
        ("planCostShares copay >= 1", q(json!({"planCostShares": {"copay": {"gte": 1}}}))),
        ("service copay >= 100 (two-level join)", q(json!({"service": {"copay": {"gte": 100}}}))),
        ("service \"physical\", copay <= 20", q(json!({"service": {"name": "physical", "copay": {"lte": 20}}}))),
        ("service \"physical\", copay >= 100", q(json!({"service": {"name": "physical", "copay": {"gte": 100}}}))),
        ("text \"well baby\"", q(json!({"text": "well baby"}))),
        ("planType inNetwork", q(json!({"planType": "inNetwork"}))),
        ("org org7.example", q(json!({"org": "org7.example"}))),
        ("creationDate in 2017", q(json!({"creationDate": {"gte": "2017-01-01", "lte": "2017-12-31"}}))),
        (
            "all filters at once",
            q(json!({
                "planType": "inNetwork", "org": "org3.example",
                "creationDate": {"gte": "2012-01-01"},
                "planCostShares": {"deductible": {"gte": 1000}, "copay": {"gte": 1, "lt": 50}},
                "service": {"name": "care", "copay": {"lte": 150}},
                "size": 100
            })),
        ),
    ]
}

/// p-th percentile (0..=100) of sorted samples, in milliseconds.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
