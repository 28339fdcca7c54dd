//! The plan tree: typed objects, built only from documents that passed validation.

use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::id::ObjectId;

/// The `objectType` of each position in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Plan,
    #[serde(rename = "membercostshare")]
    MemberCostShare,
    #[serde(rename = "planservice")]
    PlanService,
    Service,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::MemberCostShare => "membercostshare",
            Self::PlanService => "planservice",
            Self::Service => "service",
        }
    }
}

/// A plan, the root of the tree and the unit of every write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(rename = "objectId")]
    pub object_id: ObjectId,
    #[serde(rename = "objectType")]
    pub object_type: ObjectType,
    #[serde(rename = "_org")]
    pub org: String,
    #[serde(rename = "planType")]
    pub plan_type: String,
    #[serde(rename = "creationDate")]
    pub creation_date: String,
    #[serde(rename = "planCostShares")]
    pub plan_cost_shares: MemberCostShare,
    #[serde(rename = "linkedPlanServices")]
    pub linked_plan_services: Vec<PlanService>,
}

/// Deductible and copay, either for the whole plan or for one linked plan service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCostShare {
    #[serde(rename = "objectId")]
    pub object_id: ObjectId,
    #[serde(rename = "objectType")]
    pub object_type: ObjectType,
    #[serde(rename = "_org")]
    pub org: String,
    /// Kept as the client wrote it (2000 stays 2000, not 2000.0); the schema guarantees >= 0.
    pub deductible: Number,
    pub copay: Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanService {
    #[serde(rename = "objectId")]
    pub object_id: ObjectId,
    #[serde(rename = "objectType")]
    pub object_type: ObjectType,
    #[serde(rename = "_org")]
    pub org: String,
    #[serde(rename = "linkedService")]
    pub linked_service: Service,
    #[serde(rename = "planserviceCostShares")]
    pub planservice_cost_shares: MemberCostShare,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(rename = "objectId")]
    pub object_id: ObjectId,
    #[serde(rename = "objectType")]
    pub object_type: ObjectType,
    #[serde(rename = "_org")]
    pub org: String,
    pub name: String,
}

/// One object of a plan, wherever it sits in the tree.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    Plan(&'a Plan),
    CostShare(&'a MemberCostShare),
    PlanService(&'a PlanService),
    Service(&'a Service),
}

impl Node<'_> {
    pub fn object_id(&self) -> &ObjectId {
        match self {
            Node::Plan(o) => &o.object_id,
            Node::CostShare(o) => &o.object_id,
            Node::PlanService(o) => &o.object_id,
            Node::Service(o) => &o.object_id,
        }
    }

    pub fn object_type(&self) -> ObjectType {
        match self {
            Node::Plan(_) => ObjectType::Plan,
            Node::CostShare(_) => ObjectType::MemberCostShare,
            Node::PlanService(_) => ObjectType::PlanService,
            Node::Service(_) => ObjectType::Service,
        }
    }

    pub fn org(&self) -> &str {
        match self {
            Node::Plan(o) => &o.org,
            Node::CostShare(o) => &o.org,
            Node::PlanService(o) => &o.org,
            Node::Service(o) => &o.org,
        }
    }

    /// The node with its subtree, as JSON.
    pub fn to_json(&self) -> String {
        // Serializing these derived types cannot fail: no maps with non-string keys, no I/O.
        let json = match self {
            Node::Plan(o) => serde_json::to_string(o),
            Node::CostShare(o) => serde_json::to_string(o),
            Node::PlanService(o) => serde_json::to_string(o),
            Node::Service(o) => serde_json::to_string(o),
        };
        json.unwrap_or_default()
    }
}

/// A node and the JSON pointer where it sits in its plan.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    pub pointer: String,
    pub node: Node<'a>,
}

impl Plan {
    /// Every object of the plan, the plan first, in document order.
    pub fn objects(&self) -> Vec<Located<'_>> {
        let mut out = Vec::with_capacity(2 + 3 * self.linked_plan_services.len());
        out.push(Located { pointer: String::new(), node: Node::Plan(self) });
        out.push(Located { pointer: "/planCostShares".into(), node: Node::CostShare(&self.plan_cost_shares) });
        for (i, service) in self.linked_plan_services.iter().enumerate() {
            let at = format!("/linkedPlanServices/{i}");
            out.push(Located { pointer: format!("{at}/linkedService"), node: Node::Service(&service.linked_service) });
            out.push(Located { pointer: format!("{at}/planserviceCostShares"), node: Node::CostShare(&service.planservice_cost_shares) });
            out.push(Located { pointer: at, node: Node::PlanService(service) });
        }
        out
    }

    /// Every objectId of the plan, the plan's own first.
    pub fn object_ids(&self) -> Vec<ObjectId> {
        self.objects().into_iter().map(|o| o.node.object_id().clone()).collect()
    }

    /// The object with this id, with its subtree.
    pub fn find(&self, id: &ObjectId) -> Option<Node<'_>> {
        self.objects().into_iter().map(|o| o.node).find(|n| n.object_id() == id)
    }

    /// The canonical stored form: fields in a fixed order, numbers as written.
    pub fn to_json(&self) -> String {
        Node::Plan(self).to_json()
    }
}
