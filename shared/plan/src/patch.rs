//! The two PATCH formats: an objectId-aware JSON merge patch and RFC 6902 JSON Patch.
//! Both produce a new document that is validated as a whole before anything is written.

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use crate::validate::MAX_PLAN_BYTES;

/// A JSON Patch has at most this many operations (a plan has a few thousand fields at most).
pub const MAX_PATCH_OPERATIONS: usize = 1000;

/// A parsed PATCH body.
#[derive(Debug, Clone)]
pub enum PlanPatch {
    /// `application/json` or `application/merge-patch+json`.
    Merge(Value),
    /// `application/json-patch+json`.
    JsonPatch(json_patch::Patch),
}

/// Why a patch could not be applied to the current plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON Patch document.
    #[error("not a JSON Patch document: {0}")]
    Malformed(String),
    /// A valid patch that does not fit the current document (a failed `test`, a missing path).
    #[error("{0}")]
    NotApplicable(String),
    /// A merge patch must be an object, as a plan is.
    #[error("a merge patch for a plan must be a JSON object")]
    NotAnObject,
    /// The patch would grow the document past [`MAX_PLAN_BYTES`]; refused before it does.
    #[error("the patched plan would take {size} bytes or more; a stored plan is at most {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl PlanPatch {
    pub fn json_patch(body: Value) -> Result<Self, PatchError> {
        if let Some(operations) = body.as_array().map(Vec::len).filter(|n| *n > MAX_PATCH_OPERATIONS) {
            return Err(PatchError::Malformed(format!("{operations} operations; a JSON Patch has at most {MAX_PATCH_OPERATIONS}")));
        }
        serde_json::from_value(body).map(Self::JsonPatch).map_err(|e| PatchError::Malformed(e.to_string()))
    }

    pub fn merge(body: Value) -> Result<Self, PatchError> {
        if body.is_object() { Ok(Self::Merge(body)) } else { Err(PatchError::NotAnObject) }
    }

    /// Applies the patch to a copy of `document` and returns the result, unvalidated.
    ///
    /// A merge patch can at most add its own size to the document. A JSON Patch can do far more
    /// (each `copy` of the root doubles it), so its operations are applied one by one, each
    /// first charged with the bytes it may add: the patch is refused as soon as the document
    /// could pass [`MAX_PLAN_BYTES`], before the memory is spent. The charge never goes down
    /// (a `remove` refunds nothing), so the work per patch stays bounded by the limit.
    pub fn apply(&self, document: &Value) -> Result<Value, PatchError> {
        let mut out = document.clone();
        match self {
            Self::Merge(patch) => merge_by_object_id(&mut out, patch),
            Self::JsonPatch(patch) => {
                let mut size = json_size(&out);
                for (index, operation) in patch.iter().enumerate() {
                    size = size.saturating_add(growth(&out, operation));
                    if size > MAX_PLAN_BYTES {
                        return Err(PatchError::TooLarge { size, limit: MAX_PLAN_BYTES });
                    }
                    // One operation at a time on our own copy: `patch_unsafe` keeps no undo log
                    // (all-or-nothing comes from discarding the copy on error).
                    json_patch::patch_unsafe(&mut out, std::slice::from_ref(operation))
                        .map_err(|e| PatchError::NotApplicable(format!("operation {index} failed at path '{}': {}", e.path, e.kind)))?;
                }
            }
        }
        Ok(out)
    }
}

/// The most bytes `operation` can add to `document`'s JSON.
fn growth(document: &Value, operation: &PatchOperation) -> usize {
    match operation {
        PatchOperation::Add(op) => json_size(&op.value),
        PatchOperation::Replace(op) => json_size(&op.value),
        PatchOperation::Copy(op) => document.pointer(op.from.as_str()).map_or(0, json_size),
        PatchOperation::Remove(_) | PatchOperation::Move(_) | PatchOperation::Test(_) => 0,
    }
}

/// The length of `value`'s compact JSON, counted without building it.
pub(crate) fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// JSON merge patch (RFC 7396) that knows plan objects by their `objectId`:
/// - an object whose `objectId` equals the target's is merged into it field by field;
/// - an object with a different `objectId` replaces the target object;
/// - in an array of objects, an item with a known `objectId` is merged into that item and an item
///   with a new `objectId` is appended; other arrays (an empty one too) are replaced;
/// - scalars replace, and `null` removes a field.
pub fn merge_by_object_id(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) if same_object(target, patch) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_by_object_id(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(items), Value::Array(patch_items)) if !patch_items.is_empty() && patch_items.iter().all(has_object_id) => {
            for patch_item in patch_items {
                match items.iter_mut().find(|item| object_id(item) == object_id(patch_item)) {
                    Some(item) => merge_by_object_id(item, patch_item),
                    None => items.push(without_nulls(patch_item)),
                }
            }
        }
        (target, patch) => *target = without_nulls(patch),
    }
}

/// A patch object merges into a target object unless both name different objectIds.
fn same_object(target: &Map<String, Value>, patch: &Map<String, Value>) -> bool {
    match (target.get("objectId"), patch.get("objectId")) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn object_id(value: &Value) -> Option<&Value> {
    value.as_object().and_then(|o| o.get("objectId"))
}

fn has_object_id(value: &Value) -> bool {
    object_id(value).is_some()
}

/// A new value from a merge patch: its `null` members mean "absent" (RFC 7396 §2).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> Value {
        serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap()
    }

    fn merged(patch: Value) -> Value {
        PlanPatch::merge(patch).unwrap().apply(&sample()).unwrap()
    }

    #[test]
    fn scalars_are_replaced_and_nested_objects_merged() {
        let out = merged(json!({"planType": "outOfNetwork", "planCostShares": {"copay": 30}}));
        assert_eq!(out["planType"], "outOfNetwork");
        assert_eq!(out["planCostShares"]["copay"], 30);
        assert_eq!(out["planCostShares"]["deductible"], 2000);
        assert_eq!(out["linkedPlanServices"], sample()["linkedPlanServices"]);
    }

    #[test]
    fn an_item_with_a_known_object_id_is_merged_into_that_item() {
        let out = merged(json!({"linkedPlanServices": [
            {"objectId": "27283xvx9sdf-507", "linkedService": {"name": "Well baby visit"}}
        ]}));
        let services = out["linkedPlanServices"].as_array().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[1]["linkedService"]["name"], "Well baby visit");
        assert_eq!(services[1]["linkedService"]["objectId"], "1234520xvc30sfs-505");
        assert_eq!(services[0], sample()["linkedPlanServices"][0]);
    }

    #[test]
    fn an_item_with_a_new_object_id_is_appended() {
        let new_service = json!({"objectId": "new-ps", "objectType": "planservice", "_org": "example.com"});
        let out = merged(json!({"linkedPlanServices": [new_service]}));
        let services = out["linkedPlanServices"].as_array().unwrap();
        assert_eq!(services.len(), 3);
        assert_eq!(services[2]["objectId"], "new-ps");
    }

    #[test]
    fn an_object_with_another_object_id_replaces_the_target() {
        let cost_share = json!({"objectId": "cs-2", "objectType": "membercostshare", "_org": "example.com", "copay": 1});
        let out = merged(json!({"planCostShares": cost_share.clone()}));
        assert_eq!(out["planCostShares"], cost_share);
    }

    #[test]
    fn null_removes_a_field_and_is_never_stored() {
        let out = merged(json!({"planType": null, "linkedPlanServices": [{"objectId": "x", "note": null}]}));
        assert!(out.get("planType").is_none());
        assert_eq!(out["linkedPlanServices"][2], json!({"objectId": "x"}));
    }

    #[test]
    fn a_merge_patch_must_be_an_object() {
        assert_eq!(PlanPatch::merge(json!([1])).unwrap_err(), PatchError::NotAnObject);
    }

    #[test]
    fn json_patch_removes_a_linked_plan_service() {
        let patch = PlanPatch::json_patch(json!([
            {"op": "test", "path": "/linkedPlanServices/1/objectId", "value": "27283xvx9sdf-507"},
            {"op": "remove", "path": "/linkedPlanServices/1"}
        ]))
        .unwrap();
        let out = patch.apply(&sample()).unwrap();
        assert_eq!(out["linkedPlanServices"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let patch = PlanPatch::json_patch(json!([
            {"op": "replace", "path": "/planType", "value": "x"},
            {"op": "test", "path": "/objectId", "value": "wrong"}
        ]))
        .unwrap();
        assert!(matches!(patch.apply(&sample()), Err(PatchError::NotApplicable(_))));
        let missing = PlanPatch::json_patch(json!([{"op": "remove", "path": "/linkedPlanServices/9"}])).unwrap();
        assert!(matches!(missing.apply(&sample()), Err(PatchError::NotApplicable(_))));
    }

    fn copies(from: &str, path: &str, n: usize) -> Value {
        Value::Array((0..n).map(|i| json!({"op": "copy", "from": from, "path": path.replace("{i}", &i.to_string())})).collect())
    }

    #[test]
    fn a_copy_bomb_is_refused_before_it_grows() {
        // 18 copies of the root would make a document of 2^18 samples (about 370 MB).
        for (from, path) in [("", "/x{i}"), ("/linkedPlanServices", "/linkedPlanServices/-")] {
            let patch = PlanPatch::json_patch(copies(from, path, 18)).unwrap();
            match patch.apply(&sample()) {
                Err(PatchError::TooLarge { size, limit }) => {
                    assert_eq!(limit, MAX_PLAN_BYTES);
                    assert!(size > limit && size < 3 * limit, "refused at {size} bytes, {from} -> {path}");
                }
                other => panic!("{from} -> {path}: expected TooLarge, got {other:?}"),
            }
        }
    }

    #[test]
    fn copies_within_the_limit_still_apply() {
        let patch = PlanPatch::json_patch(copies("/planCostShares", "/linkedPlanServices/0/x{i}", 3)).unwrap();
        let out = patch.apply(&sample()).unwrap();
        assert_eq!(out["linkedPlanServices"][0]["x2"], sample()["planCostShares"]);
    }

    #[test]
    fn the_number_of_operations_is_bounded() {
        let test = json!({"op": "test", "path": "/objectId", "value": "12xvxc345ssdsds-508"});
        assert!(PlanPatch::json_patch(Value::Array(vec![test.clone(); MAX_PATCH_OPERATIONS])).is_ok());
        let refused = PlanPatch::json_patch(Value::Array(vec![test; MAX_PATCH_OPERATIONS + 1])).unwrap_err();
        assert!(matches!(&refused, PatchError::Malformed(m) if m.contains("at most 1000")), "{refused:?}");
    }

    #[test]
    fn a_failed_operation_is_named_by_its_index() {
        let patch = PlanPatch::json_patch(json!([
            {"op": "replace", "path": "/planType", "value": "x"},
            {"op": "remove", "path": "/nope"}
        ]))
        .unwrap();
        let PatchError::NotApplicable(message) = patch.apply(&sample()).unwrap_err() else { panic!("not applicable") };
        assert!(message.starts_with("operation 1 failed at path '/nope'"), "{message}");
    }

    #[test]
    fn json_size_is_the_compact_length() {
        assert_eq!(json_size(&sample()), serde_json::to_string(&sample()).unwrap().len());
    }

    #[test]
    fn malformed_json_patch_documents_are_refused() {
        for bad in [json!({"op": "remove"}), json!([{"op": "jump", "path": "/a"}]), json!([{"op": "add", "path": "/a"}])] {
            assert!(matches!(PlanPatch::json_patch(bad), Err(PatchError::Malformed(_))));
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u32..100).prop_map(Value::from),
            "[a-c]{0,3}".prop_map(Value::from)
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Without objectIds in play this is exactly RFC 7396.
        #[test]
        fn without_object_ids_it_is_rfc_7396(mut target in value(), patch in value()) {
            let mut expected = target.clone();
            json_patch::merge(&mut expected, &patch);
            merge_by_object_id(&mut target, &patch);
            prop_assert_eq!(target, expected);
        }

        /// Applying the same merge patch twice changes nothing the second time.
        #[test]
        fn merge_is_idempotent(copay in 0u32..1000, name in "[a-z ]{1,12}", append in any::<bool>()) {
            let mut services = vec![json!({"objectId": "27283xvx9sdf-507", "linkedService": {"name": name}})];
            if append {
                services.push(json!({"objectId": "fresh-1", "objectType": "planservice"}));
            }
            let patch = PlanPatch::merge(json!({"planCostShares": {"copay": copay}, "linkedPlanServices": services})).unwrap();
            let once = patch.apply(&sample()).unwrap();
            prop_assert_eq!(patch.apply(&once).unwrap(), once);
        }
    }
}
