//! The document model: every object of a plan is its own document, joined to its parent.
//!
//! ```text
//! plan ─┬─ planCostShares           (membercostshare)
//!       └─ linkedPlanServices       (planservice) ─┬─ linkedService          (service)
//!                                                  └─ planserviceCostShares  (membercostshare)
//! ```
//!
//! The join relation comes from the object's position, not its `objectType`: a `membercostshare`
//! is a `planCostShares` under the plan and a `planserviceCostShares` under a plan service.
//! Every document is routed by its plan id and carries the plan id, `_org` and the plan version
//! (also its external version). Document ids are `{planId}` for the plan and
//! `{planId}:{objectId}` for the others: an objectId freed by one plan may later belong to
//! another, and each plan has its own version sequence, so a document id never changes plans.

use std::collections::HashMap;

use plan::model::{MemberCostShare, Service};
use plan::{ObjectId, ObjectType, Plan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;

/// The name of the join field in every document.
pub const JOIN_FIELD: &str = "relation";

/// A document's relation in the join field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    Plan,
    PlanCostShares,
    LinkedPlanServices,
    LinkedService,
    PlanserviceCostShares,
}

impl Relation {
    pub const ALL: [Relation; 5] =
        [Self::Plan, Self::PlanCostShares, Self::LinkedPlanServices, Self::LinkedService, Self::PlanserviceCostShares];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::PlanCostShares => "planCostShares",
            Self::LinkedPlanServices => "linkedPlanServices",
            Self::LinkedService => "linkedService",
            Self::PlanserviceCostShares => "planserviceCostShares",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// The relation of the parent, for every relation but the root.
    pub fn parent(self) -> Option<Relation> {
        match self {
            Self::Plan => None,
            Self::PlanCostShares | Self::LinkedPlanServices => Some(Self::Plan),
            Self::LinkedService | Self::PlanserviceCostShares => Some(Self::LinkedPlanServices),
        }
    }

    /// The child relations, for the two parent relations.
    pub fn children(self) -> &'static [Relation] {
        match self {
            Self::Plan => &[Self::PlanCostShares, Self::LinkedPlanServices],
            Self::LinkedPlanServices => &[Self::LinkedService, Self::PlanserviceCostShares],
            _ => &[],
        }
    }
}

/// The join field's value: the bare relation name for the root, name and parent id below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub relation: Relation,
    /// The parent's document id.
    pub parent: Option<String>,
}

impl Serialize for Join {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Child<'a> {
            name: &'static str,
            parent: &'a str,
        }
        match &self.parent {
            None => serializer.serialize_str(self.relation.as_str()),
            Some(parent) => Child { name: self.relation.as_str(), parent }.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Join {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Child { name: String, parent: String },
        }
        let unknown = |name: &str| serde::de::Error::custom(format!("unknown join relation '{name}'"));
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) => Ok(Join { relation: Relation::parse(&name).ok_or_else(|| unknown(&name))?, parent: None }),
            Raw::Child { name, parent } => {
                Ok(Join { relation: Relation::parse(&name).ok_or_else(|| unknown(&name))?, parent: Some(parent) })
            }
        }
    }
}

/// The `_source` of one document, the same bytes on every backend. Only the fields of the
/// object's own type are present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocSource {
    #[serde(rename = "objectId")]
    pub object_id: ObjectId,
    #[serde(rename = "objectType")]
    pub object_type: ObjectType,
    #[serde(rename = "_org")]
    pub org: String,
    #[serde(rename = "planType", default, skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<String>,
    #[serde(rename = "creationDate", default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deductible: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copay: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A plan service's index in `linkedPlanServices`, so the plan can be rebuilt in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    pub relation: Join,
    #[serde(rename = "planId")]
    pub plan_id: ObjectId,
    #[serde(rename = "planVersion")]
    pub plan_version: u64,
    /// Plan document only: every objectId of this version, so the next version knows which
    /// documents it drops without searching (searches only see refreshed documents).
    #[serde(rename = "objectIds", default, skip_serializing_if = "Option::is_none")]
    pub object_ids: Option<Vec<ObjectId>>,
    /// Plan document only, stored but not indexed: the whole plan as written, so a search hit
    /// carries its plan without one more request per hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Plan>,
}

/// One document to write.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDocument {
    pub id: String,
    pub source: DocSource,
}

/// The document id of an object of a plan.
pub fn doc_id(plan_id: &ObjectId, object_id: &ObjectId) -> String {
    if plan_id == object_id { plan_id.to_string() } else { format!("{plan_id}:{object_id}") }
}

/// Why a plan cannot be indexed; permanent, so the change goes to the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan '{plan_id}' cannot be indexed: {reason}")]
pub struct Unindexable {
    pub plan_id: ObjectId,
    pub reason: String,
}

/// Why [`documents`] refuses a plan, checked without building them (what an index that keeps no
/// documents, the embedded one, needs to refuse the same plans).
pub fn check_indexable(plan: &Plan) -> Result<(), Unindexable> {
    let unindexable = |reason: String| Unindexable { plan_id: plan.object_id.clone(), reason };
    if plan::validate::calendar_date(&plan.creation_date).is_none() {
        return Err(unindexable(format!("creationDate '{}' is not a calendar date", plan.creation_date)));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(duplicate) = plan.nodes().map(|node| node.object_id()).find(|id| !seen.insert(*id)) {
        return Err(unindexable(format!("objectId '{duplicate}' appears twice")));
    }
    Ok(())
}

/// Every document of a plan at a version: the children in document order, the plan last (an
/// adapter that writes in order makes the plan document the mark that the rest is written).
pub fn documents(plan: &Plan, version: u64) -> Result<Vec<IndexDocument>, Unindexable> {
    check_indexable(plan)?;
    let plan_doc = plan.object_id.to_string();
    let base = |object_id: &ObjectId, object_type: ObjectType, org: &str, join: Join| DocSource {
        object_id: object_id.clone(),
        object_type,
        org: org.to_owned(),
        plan_type: None,
        creation_date: None,
        deductible: None,
        copay: None,
        name: None,
        position: None,
        relation: join,
        plan_id: plan.object_id.clone(),
        plan_version: version,
        object_ids: None,
        snapshot: None,
    };
    let child = |relation: Relation, parent: &str| Join { relation, parent: Some(parent.to_owned()) };
    let cost_share = |share: &MemberCostShare, join: Join| {
        let mut source = base(&share.object_id, ObjectType::MemberCostShare, &share.org, join);
        source.deductible = Some(share.deductible.clone());
        source.copay = Some(share.copay.clone());
        source
    };
    let mut out = Vec::with_capacity(2 + 3 * plan.linked_plan_services.len());
    let mut push = |source: DocSource| out.push(IndexDocument { id: doc_id(&plan.object_id, &source.object_id), source });
    push(cost_share(&plan.plan_cost_shares, child(Relation::PlanCostShares, &plan_doc)));
    for (position, service) in plan.linked_plan_services.iter().enumerate() {
        let mut source = base(&service.object_id, ObjectType::PlanService, &service.org, child(Relation::LinkedPlanServices, &plan_doc));
        source.position = Some(u32::try_from(position).unwrap_or(u32::MAX));
        push(source);
        let service_doc = doc_id(&plan.object_id, &service.object_id);
        let linked = &service.linked_service;
        let mut source = base(&linked.object_id, ObjectType::Service, &linked.org, child(Relation::LinkedService, &service_doc));
        source.name = Some(linked.name.clone());
        push(source);
        push(cost_share(&service.planservice_cost_shares, child(Relation::PlanserviceCostShares, &service_doc)));
    }
    let mut source = base(&plan.object_id, ObjectType::Plan, &plan.org, Join { relation: Relation::Plan, parent: None });
    source.plan_type = Some(plan.plan_type.clone());
    source.creation_date = Some(plan.creation_date.clone());
    source.object_ids = Some(plan.object_ids());
    source.snapshot = Some(plan.clone());
    push(source);
    Ok(out)
}

/// A plan put back together from its documents alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltPlan {
    /// The plan document's version.
    pub version: u64,
    /// The plan as JSON, in the stored plan's field order. When the index is faithful this is
    /// byte for byte the stored body.
    pub body: String,
    /// False when a document the plan needs is missing or of another version: the body then
    /// leaves the missing parts out.
    pub complete: bool,
}

/// Rebuilds a plan from its documents (any order, the plan document included). None without a
/// plan document.
pub fn rebuild(plan_id: &ObjectId, documents: &[DocSource]) -> Option<RebuiltPlan> {
    let root = documents.iter().find(|d| d.relation.relation == Relation::Plan && &d.object_id == plan_id)?;
    let version = root.plan_version;
    let mut complete = documents.iter().all(|d| d.plan_version == version);
    let mut children: HashMap<(&str, Relation), Vec<&DocSource>> = HashMap::new();
    for doc in documents {
        if let Some(parent) = &doc.relation.parent {
            children.entry((parent.as_str(), doc.relation.relation)).or_default().push(doc);
        }
    }
    let one = |parent: &str, relation: Relation, complete: &mut bool| -> Option<&DocSource> {
        let found = children.get(&(parent, relation)).map(Vec::as_slice).unwrap_or_default();
        if found.len() != 1 {
            *complete = false;
        }
        found.first().copied()
    };
    let cost_share = |doc: &DocSource| MemberCostShare {
        object_id: doc.object_id.clone(),
        object_type: doc.object_type,
        org: doc.org.clone(),
        deductible: doc.deductible.clone().unwrap_or_else(|| Number::from(0)),
        copay: doc.copay.clone().unwrap_or_else(|| Number::from(0)),
    };
    let root_doc = plan_id.to_string();
    let plan_cost_shares = one(&root_doc, Relation::PlanCostShares, &mut complete).map(cost_share);
    let mut services: Vec<&DocSource> = children.get(&(root_doc.as_str(), Relation::LinkedPlanServices)).cloned().unwrap_or_default();
    services.sort_by_key(|d| (d.position, d.object_id.clone()));
    let linked_plan_services = services
        .into_iter()
        .map(|service| {
            let service_doc = doc_id(plan_id, &service.object_id);
            let linked_service = one(&service_doc, Relation::LinkedService, &mut complete).map(|doc| Service {
                object_id: doc.object_id.clone(),
                object_type: doc.object_type,
                org: doc.org.clone(),
                name: doc.name.clone().unwrap_or_default(),
            });
            let planservice_cost_shares = one(&service_doc, Relation::PlanserviceCostShares, &mut complete).map(cost_share);
            PartialPlanService {
                object_id: service.object_id.clone(),
                object_type: service.object_type,
                org: service.org.clone(),
                linked_service,
                planservice_cost_shares,
            }
        })
        .collect();
    let plan = PartialPlan {
        object_id: root.object_id.clone(),
        object_type: root.object_type,
        org: root.org.clone(),
        plan_type: root.plan_type.clone(),
        creation_date: root.creation_date.clone(),
        plan_cost_shares,
        linked_plan_services,
    };
    let body = serde_json::to_string(&plan).unwrap_or_default();
    Some(RebuiltPlan { version, body, complete })
}

/// [`Plan`] with every part optional, serialized in the same field order, so a complete rebuild
/// reads exactly like the stored plan.
#[derive(Serialize)]
struct PartialPlan {
    #[serde(rename = "objectId")]
    object_id: ObjectId,
    #[serde(rename = "objectType")]
    object_type: ObjectType,
    #[serde(rename = "_org")]
    org: String,
    #[serde(rename = "planType", skip_serializing_if = "Option::is_none")]
    plan_type: Option<String>,
    #[serde(rename = "creationDate", skip_serializing_if = "Option::is_none")]
    creation_date: Option<String>,
    #[serde(rename = "planCostShares", skip_serializing_if = "Option::is_none")]
    plan_cost_shares: Option<MemberCostShare>,
    #[serde(rename = "linkedPlanServices")]
    linked_plan_services: Vec<PartialPlanService>,
}

#[derive(Serialize)]
struct PartialPlanService {
    #[serde(rename = "objectId")]
    object_id: ObjectId,
    #[serde(rename = "objectType")]
    object_type: ObjectType,
    #[serde(rename = "_org")]
    org: String,
    #[serde(rename = "linkedService", skip_serializing_if = "Option::is_none")]
    linked_service: Option<Service>,
    #[serde(rename = "planserviceCostShares", skip_serializing_if = "Option::is_none")]
    planservice_cost_shares: Option<MemberCostShare>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Plan {
        plan::validate::parse_plan(serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap()).unwrap()
    }

    #[test]
    fn every_object_is_a_document_routed_by_its_plan() {
        let plan = sample();
        let docs = documents(&plan, 3).unwrap();
        assert_eq!(docs.len(), 8);
        let last = docs.last().unwrap();
        assert_eq!(last.id, "12xvxc345ssdsds-508", "the plan document comes last");
        assert_eq!(serde_json::to_value(&last.source.relation).unwrap(), serde_json::json!("plan"));
        for doc in &docs {
            assert_eq!(doc.source.plan_id, plan.object_id);
            assert_eq!(doc.source.plan_version, 3);
            assert_eq!(doc.source.org, "example.com");
        }
        let relation = |id: &str| {
            let doc = docs.iter().find(|d| d.source.object_id.as_str() == id).unwrap();
            serde_json::to_value(&doc.source.relation).unwrap()
        };
        assert_eq!(relation("1234vxc2324sdf-501"), serde_json::json!({"name": "planCostShares", "parent": "12xvxc345ssdsds-508"}));
        assert_eq!(
            relation("1234512xvc1314asdfs-503"),
            serde_json::json!({"name": "planserviceCostShares", "parent": "12xvxc345ssdsds-508:27283xvx9asdff-504"}),
            "the same objectType gets its relation from its position"
        );
        assert_eq!(
            relation("1234520xvc30sfs-505"),
            serde_json::json!({"name": "linkedService", "parent": "12xvxc345ssdsds-508:27283xvx9sdf-507"})
        );
    }

    #[test]
    fn sources_round_trip_and_numbers_keep_their_form() {
        let docs = documents(&sample(), 1).unwrap();
        for doc in &docs {
            let json = serde_json::to_string(&doc.source).unwrap();
            let back: DocSource = serde_json::from_str(&json).unwrap();
            assert_eq!(back, doc.source);
        }
        let json = serde_json::to_string(&docs[0].source).unwrap();
        assert!(json.contains(r#""deductible":2000,"copay":23"#), "{json}");
    }

    #[test]
    fn a_rebuild_from_all_documents_is_the_stored_plan() {
        let plan = sample();
        let mut sources: Vec<DocSource> = documents(&plan, 4).unwrap().into_iter().map(|d| d.source).collect();
        sources.reverse();
        let rebuilt = rebuild(&plan.object_id, &sources).unwrap();
        assert_eq!(rebuilt, RebuiltPlan { version: 4, body: plan.to_json(), complete: true });
    }

    #[test]
    fn a_rebuild_with_missing_documents_says_so() {
        let plan = sample();
        let sources: Vec<DocSource> =
            documents(&plan, 4).unwrap().into_iter().map(|d| d.source).filter(|s| s.object_id.as_str() != "1234520xvc30sfs-505").collect();
        let rebuilt = rebuild(&plan.object_id, &sources).unwrap();
        assert!(!rebuilt.complete);
        assert!(!rebuilt.body.contains("well baby"));
        assert!(rebuild(&plan.object_id, &sources[..3]).is_none(), "no plan document, no plan");
    }

    #[test]
    fn a_plan_that_cannot_be_indexed_is_named() {
        let mut plan = sample();
        plan.creation_date = "02-30-2017".into();
        assert!(documents(&plan, 1).unwrap_err().to_string().contains("02-30-2017"));
        assert_eq!(check_indexable(&plan), documents(&plan, 1).map(drop));
    }

    #[test]
    fn a_plan_with_one_object_id_twice_cannot_be_indexed() {
        let mut plan = sample();
        assert_eq!(check_indexable(&plan), Ok(()));
        let twice = plan.linked_plan_services[0].linked_service.object_id.clone();
        plan.plan_cost_shares.object_id = twice.clone();
        let refused = documents(&plan, 1).unwrap_err();
        assert_eq!(refused.reason, format!("objectId '{twice}' appears twice"));
        assert_eq!(check_indexable(&plan), Err(refused), "the check refuses what documents refuses");
    }
}
