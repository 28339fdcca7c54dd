//! The index definition: settings and an explicit, strict mapping. Every index behind the alias
//! (the first one and each rebuild) is created from this.

use serde_json::{Value, json};

use crate::document::{JOIN_FIELD, Relation};

/// How long a delete is remembered against older writes (`index.gc_deletes`). The default of
/// 60 s is shorter than a Kafka retry or a sweep can be late; an hour keeps a small tombstone per
/// deleted document that long.
pub const GC_DELETES: &str = "1h";

pub(super) fn index_definition() -> Value {
    let keyword = json!({"type": "keyword"});
    let money = json!({"type": "double"});
    let relations: serde_json::Map<String, Value> = Relation::ALL
        .into_iter()
        .filter(|r| !r.children().is_empty())
        .map(|r| (r.as_str().to_owned(), Value::from(r.children().iter().map(|c| c.as_str()).collect::<Vec<_>>())))
        .collect();
    json!({
        "settings": {"index": {"gc_deletes": GC_DELETES}},
        "mappings": {
            // Unknown fields are a bug of ours: refuse them rather than guess a type.
            "dynamic": "strict",
            "_routing": {"required": true},
            "properties": {
                JOIN_FIELD: {"type": "join", "relations": relations},
                "objectId": keyword,
                "objectType": keyword,
                "_org": keyword,
                "planId": keyword,
                "planVersion": {"type": "long"},
                "planType": keyword,
                // Both layouts the schema accepts; range queries send yyyy-MM-dd.
                "creationDate": {"type": "date", "format": "MM-dd-yyyy||yyyy-MM-dd"},
                // double, not scaled_float: a range compares exactly what the client wrote, as
                // the embedded index does; scaled_float would round at index time.
                "deductible": money,
                "copay": money,
                "name": {"type": "text", "analyzer": "standard", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "position": {"type": "integer"},
                "objectIds": {"type": "keyword", "index": false, "doc_values": false},
                "snapshot": {"type": "object", "enabled": false}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_declares_one_parent_per_child_relation() {
        let definition = index_definition();
        assert_eq!(
            definition["mappings"]["properties"]["relation"]["relations"],
            json!({"plan": ["planCostShares", "linkedPlanServices"], "linkedPlanServices": ["linkedService", "planserviceCostShares"]})
        );
    }

    #[test]
    fn every_document_field_is_mapped() {
        let plan = plan::validate::parse_plan(serde_json::from_str(include_str!("../../../../examples/plan.json")).unwrap()).unwrap();
        let properties = &index_definition()["mappings"]["properties"];
        for doc in crate::document::documents(&plan, 1).unwrap() {
            for field in serde_json::to_value(&doc.source).unwrap().as_object().unwrap().keys() {
                assert!(properties.get(field).is_some(), "{field} is not mapped");
            }
        }
    }
}
