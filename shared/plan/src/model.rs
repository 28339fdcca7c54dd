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

impl<'a> Node<'a> {
    pub fn object_id(&self) -> &'a ObjectId {
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

    pub fn org(&self) -> &'a str {
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

impl Plan {
    /// Every object of the plan, the plan first, in document order: the plan, its plan cost
    /// shares, then for each linked plan service its linked service, its cost shares and itself.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> {
        [Node::Plan(self), Node::CostShare(&self.plan_cost_shares)].into_iter().chain(self.linked_plan_services.iter().flat_map(
            |service| {
                [Node::Service(&service.linked_service), Node::CostShare(&service.planservice_cost_shares), Node::PlanService(service)]
            },
        ))
    }

    /// The JSON pointer of the `index`th object of [`Plan::nodes`].
    pub fn pointer(index: usize) -> String {
        match index {
            0 => String::new(),
            1 => "/planCostShares".to_owned(),
            _ => {
                let (service, part) = ((index - 2) / 3, (index - 2) % 3);
                match part {
                    0 => format!("/linkedPlanServices/{service}/linkedService"),
                    1 => format!("/linkedPlanServices/{service}/planserviceCostShares"),
                    _ => format!("/linkedPlanServices/{service}"),
                }
            }
        }
    }

    /// Every objectId of the plan, the plan's own first.
    pub fn object_ids(&self) -> Vec<ObjectId> {
        self.nodes().map(|node| node.object_id().clone()).collect()
    }

    /// The object with this id, with its subtree.
    pub fn find(&self, id: &ObjectId) -> Option<Node<'_>> {
        self.nodes().find(|n| n.object_id() == id)
    }

    /// The canonical stored form: fields in a fixed order, numbers as written.
    pub fn to_json(&self) -> String {
        Node::Plan(self).to_json()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The sample plan with `services` linked plan services, each with its own ids.
    fn plan_with(services: usize) -> Plan {
        let mut doc: Value = serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap();
        let template = doc["linkedPlanServices"][0].clone();
        let copies: Vec<Value> = (0..services)
            .map(|i| {
                let mut service = template.clone();
                service["objectId"] = json!(format!("ps-{i}"));
                service["linkedService"]["objectId"] = json!(format!("svc-{i}"));
                service["planserviceCostShares"]["objectId"] = json!(format!("pcs-{i}"));
                service
            })
            .collect();
        doc["linkedPlanServices"] = Value::Array(copies);
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn every_pointer_names_its_object_and_the_walks_agree() {
        for services in [0, 1, 3] {
            let plan = plan_with(services);
            let document = serde_json::to_value(&plan).unwrap();
            let nodes: Vec<Node<'_>> = plan.nodes().collect();
            assert_eq!(nodes.len(), 2 + 3 * services);
            for (index, node) in nodes.iter().enumerate() {
                let pointer = Plan::pointer(index);
                let at = document.pointer(&pointer).unwrap_or_else(|| panic!("{pointer} resolves"));
                assert_eq!(at["objectId"].as_str(), Some(node.object_id().as_str()), "{pointer}");
                assert_eq!(plan.find(node.object_id()).map(|n| n.object_type()), Some(node.object_type()));
            }
            let ids: Vec<&ObjectId> = nodes.iter().map(|node| node.object_id()).collect();
            assert_eq!(plan.object_ids().iter().collect::<Vec<_>>(), ids, "object_ids follows nodes' order");
            assert_eq!(ids.first().copied(), Some(&plan.object_id), "the plan's own id first");
        }
    }
}
