//! From untrusted JSON to a [`Plan`]: the JSON Schema first, then the rules a schema cannot say
//! (a real calendar date, objectIds unique inside the document, one `_org` for the whole plan).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;

use crate::model::Plan;

/// The schema file, as served at `GET /v1/schema/plan`.
pub const PLAN_SCHEMA: &str = include_str!("../schema/plan.schema.json");

/// At most this many violations are reported; a huge invalid body must not make a huge answer.
const MAX_VIOLATIONS: usize = 100;

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(PLAN_SCHEMA).expect("the bundled plan schema is JSON");
    jsonschema::validator_for(&schema).expect("the bundled plan schema is a valid JSON Schema")
});

/// One reason a document is not a valid plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer (RFC 6901) into the submitted document; empty for the root.
    pub pointer: String,
    pub message: String,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into() }
    }
}

/// Compiles the schema now rather than on the first request (a cold start pays it either way).
pub fn warm_up() {
    LazyLock::force(&VALIDATOR);
}

/// Validates a whole plan document and builds the typed tree, or lists every violation.
pub fn parse_plan(document: Value) -> Result<Plan, Vec<Violation>> {
    let violations: Vec<Violation> =
        VALIDATOR.iter_errors(&document).take(MAX_VIOLATIONS).map(|e| Violation::new(e.instance_path().as_str(), e.to_string())).collect();
    if !violations.is_empty() {
        return Err(violations);
    }
    let plan: Plan = serde_json::from_value(document).map_err(|e| vec![Violation::new("", format!("not a plan: {e}"))])?;
    let violations = tree_rules(&plan);
    if violations.is_empty() { Ok(plan) } else { Err(violations) }
}

fn tree_rules(plan: &Plan) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Err(message) = check_calendar_date(&plan.creation_date) {
        violations.push(Violation::new("/creationDate", message));
    }
    let mut first_seen: HashMap<&str, &str> = HashMap::new();
    let objects = plan.objects();
    for object in &objects {
        let id = object.node.object_id().as_str();
        if let Some(first) = first_seen.insert(id, &object.pointer) {
            violations.push(Violation::new(
                format!("{}/objectId", object.pointer),
                format!("objectId '{id}' is already used at '{first}'; every object needs its own id"),
            ));
            first_seen.insert(id, first);
        }
        if object.node.org() != plan.org {
            violations.push(Violation::new(
                format!("{}/_org", object.pointer),
                format!("_org '{}' differs from the plan's _org '{}'", object.node.org(), plan.org),
            ));
        }
    }
    violations
}

/// A calendar date in either accepted layout, as (year, month, day).
pub fn calendar_date(raw: &str) -> Option<(i32, u8, u8)> {
    let parts: Vec<&str> = raw.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [m, d, y] if m.len() == 2 && d.len() == 2 && y.len() == 4 => (*y, *m, *d),
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (*y, *m, *d),
        _ => return None,
    };
    let (year, month, day) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let month_enum = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month_enum, day).ok()?;
    Some((year, month, day))
}

fn check_calendar_date(raw: &str) -> Result<(), String> {
    calendar_date(raw).map(|_| ()).ok_or_else(|| format!("'{raw}' is not a calendar date (MM-dd-yyyy or yyyy-MM-dd)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        serde_json::from_str(include_str!("../../../examples/plan.json")).unwrap()
    }

    fn pointers(document: Value) -> Vec<String> {
        let mut p: Vec<String> = parse_plan(document).unwrap_err().into_iter().map(|v| v.pointer).collect();
        p.sort();
        p
    }

    #[test]
    fn the_common_sample_is_a_valid_plan() {
        let plan = parse_plan(sample()).unwrap();
        assert_eq!(plan.object_id.as_str(), "12xvxc345ssdsds-508");
        assert_eq!(plan.object_ids().len(), 8);
        assert_eq!(plan.plan_cost_shares.deductible.to_string(), "2000");
    }

    #[test]
    fn the_schema_file_is_valid_and_served_as_is() {
        let schema: Value = serde_json::from_str(PLAN_SCHEMA).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        warm_up();
    }

    #[test]
    fn every_missing_required_field_is_listed() {
        let mut doc = sample();
        let root = doc.as_object_mut().unwrap();
        root.remove("planType");
        root.remove("creationDate");
        doc["linkedPlanServices"][1]["linkedService"].as_object_mut().unwrap().remove("name");
        doc["planCostShares"].as_object_mut().unwrap().remove("copay");
        let violations = parse_plan(doc).unwrap_err();
        assert_eq!(violations.len(), 4, "{violations:#?}");
        let joined = format!("{violations:?}");
        for field in ["planType", "creationDate", "name", "copay"] {
            assert!(joined.contains(field), "{field} missing from {joined}");
        }
        assert!(violations.iter().any(|v| v.pointer == "/linkedPlanServices/1/linkedService"));
    }

    #[test]
    fn table_of_schema_violations() {
        type Edit = fn(&mut Value);
        let cases: &[(&str, Edit, &str)] = &[
            ("negative money", |d| d["planCostShares"]["copay"] = json!(-1), "/planCostShares/copay"),
            ("money as string", |d| d["planCostShares"]["deductible"] = json!("2000"), "/planCostShares/deductible"),
            ("unknown property", |d| d["color"] = json!("red"), ""),
            ("unknown nested property", |d| d["linkedPlanServices"][0]["extra"] = json!(1), "/linkedPlanServices/0"),
            ("wrong objectType at root", |d| d["objectType"] = json!("service"), "/objectType"),
            ("service where a cost share goes", |d| d["planCostShares"]["objectType"] = json!("service"), "/planCostShares/objectType"),
            ("id with a space", |d| d["objectId"] = json!("a b"), "/objectId"),
            ("id with a brace", |d| d["linkedPlanServices"][0]["objectId"] = json!("x{y}"), "/linkedPlanServices/0/objectId"),
            ("date with slashes", |d| d["creationDate"] = json!("12/12/2017"), "/creationDate"),
            ("month 13", |d| d["creationDate"] = json!("13-12-2017"), "/creationDate"),
            ("not a calendar day", |d| d["creationDate"] = json!("02-30-2017"), "/creationDate"),
            ("services not an array", |d| d["linkedPlanServices"] = json!({}), "/linkedPlanServices"),
            ("empty name", |d| d["linkedPlanServices"][0]["linkedService"]["name"] = json!(""), "/linkedPlanServices/0/linkedService/name"),
            ("root not an object", |d| *d = json!([1, 2]), ""),
        ];
        for (name, edit, pointer) in cases {
            let mut doc = sample();
            edit(&mut doc);
            assert_eq!(pointers(doc), vec![pointer.to_string()], "{name}");
        }
    }

    #[test]
    fn both_date_layouts_are_accepted() {
        for date in ["12-12-2017", "2017-12-12", "02-29-2024", "2024-02-29"] {
            let mut doc = sample();
            doc["creationDate"] = json!(date);
            assert!(parse_plan(doc).is_ok(), "{date}");
        }
        assert_eq!(calendar_date("12-31-2017"), Some((2017, 12, 31)));
        assert_eq!(calendar_date("2017-12-31"), Some((2017, 12, 31)));
        assert_eq!(calendar_date("02-29-2023"), None);
    }

    #[test]
    fn duplicate_object_ids_inside_the_body_are_refused() {
        let mut doc = sample();
        doc["linkedPlanServices"][1]["objectId"] = json!("27283xvx9asdff-504");
        doc["planCostShares"]["objectId"] = json!("12xvxc345ssdsds-508");
        let violations = parse_plan(doc).unwrap_err();
        let p: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(p, ["/planCostShares/objectId", "/linkedPlanServices/1/objectId"], "{violations:#?}");
    }

    #[test]
    fn mixed_orgs_are_refused() {
        let mut doc = sample();
        doc["linkedPlanServices"][0]["linkedService"]["_org"] = json!("other.org");
        assert_eq!(pointers(doc), ["/linkedPlanServices/0/linkedService/_org"]);
    }

    #[test]
    fn numbers_keep_their_written_form() {
        let mut doc = sample();
        doc["planCostShares"]["copay"] = json!(23.5);
        let plan = parse_plan(doc).unwrap();
        let out: Value = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(out["planCostShares"]["copay"], json!(23.5));
        assert_eq!(out["planCostShares"]["deductible"], json!(2000));
    }
}
