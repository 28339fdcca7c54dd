//! Property tests for what the plan JSON Schema cannot say, and so what the OpenAPI document (and
//! Schemathesis with it) cannot check: objectIds unique across a plan, one `_org` on every
//! object, creation dates that are real calendar days, and merge / JSON Patch round trips.

use plan::PlanPatch;
use plan::validate::{calendar_date, parse_plan};
use proptest::prelude::*;
use serde_json::{Value, json};

const ID: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,20}";
const ORG: &str = "[a-z0-9]{1,10}(\\.[a-z]{2,5})?";

fn money() -> impl Strategy<Value = u32> {
    0u32..100_000
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A valid plan: `services` linked plan services, every objectId made unique by a suffix, one org.
fn plan_with(ids: &[String], org: &str, date: &str, services: &[(String, u32, u32)]) -> Value {
    let id = |n: usize| format!("{}-{n}", ids[n % ids.len()]);
    let cost_share = |n: usize, deductible: u32, copay: u32| json!({"_org": org, "objectId": id(n), "objectType": "membercostshare", "deductible": deductible, "copay": copay});
    let linked: Vec<Value> = services
        .iter()
        .enumerate()
        .map(|(i, (name, deductible, copay))| {
            let base = 2 + 3 * i;
            json!({
                "_org": org, "objectId": id(base), "objectType": "planservice",
                "linkedService": {"_org": org, "objectId": id(base + 1), "objectType": "service", "name": name},
                "planserviceCostShares": cost_share(base + 2, *deductible, *copay)
            })
        })
        .collect();
    json!({
        "_org": org, "objectId": id(0), "objectType": "plan", "planType": "inNetwork", "creationDate": date,
        "planCostShares": cost_share(1, 2000, 23),
        "linkedPlanServices": linked
    })
}

fn services() -> impl Strategy<Value = Vec<(String, u32, u32)>> {
    prop::collection::vec(("[A-Za-z][A-Za-z ]{0,15}", money(), money()), 0..5)
}

fn valid_plan() -> impl Strategy<Value = Value> {
    (prop::collection::vec(ID, 1..4), ORG, services()).prop_map(|(ids, org, services)| plan_with(&ids, &org, "12-12-2017", &services))
}

/// JSON pointers of every object in the plan (the root is "").
fn object_pointers(plan: &Value) -> Vec<String> {
    let mut pointers = vec![String::new(), "/planCostShares".to_owned()];
    for i in 0..plan["linkedPlanServices"].as_array().map_or(0, Vec::len) {
        let base = format!("/linkedPlanServices/{i}");
        pointers.extend([base.clone(), format!("{base}/linkedService"), format!("{base}/planserviceCostShares")]);
    }
    pointers
}

fn violation_pointers(plan: Value) -> Vec<String> {
    parse_plan(plan).expect_err("refused").into_iter().map(|v| v.pointer).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_plans_are_valid_and_every_object_has_its_own_id(plan in valid_plan()) {
        let parsed = parse_plan(plan.clone()).expect("a valid plan");
        let ids = parsed.object_ids();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len());
        prop_assert_eq!(ids.len(), object_pointers(&plan).len());
    }

    /// Any two objects sharing an id: refused, and the later one is named.
    #[test]
    fn a_reused_object_id_anywhere_in_the_plan_is_refused(plan in valid_plan(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let pointers = object_pointers(&plan);
        let (first, second) = (a.index(pointers.len()), b.index(pointers.len()));
        prop_assume!(first != second);
        let (first, second) = (first.min(second), first.max(second));
        let mut plan = plan;
        let reused = plan.pointer(&format!("{}/objectId", pointers[first])).unwrap().clone();
        *plan.pointer_mut(&format!("{}/objectId", pointers[second])).unwrap() = reused;
        let violations = violation_pointers(plan);
        prop_assert!(!violations.is_empty());
        prop_assert!(violations.iter().all(|p| p.ends_with("/objectId")), "{:?}", violations);
    }

    /// One `_org` per plan: any object with another organisation is refused, and named.
    #[test]
    fn an_object_of_another_organisation_is_refused(plan in valid_plan(), at in any::<prop::sample::Index>(), other in ORG) {
        prop_assume!(plan["_org"] != other.as_str());
        let pointers = object_pointers(&plan);
        let at = at.index(pointers.len());
        prop_assume!(at != 0); // changing the root's _org makes every other object the odd one out
        let mut plan = plan;
        *plan.pointer_mut(&format!("{}/_org", pointers[at])).unwrap() = json!(other);
        prop_assert_eq!(violation_pointers(plan), vec![format!("{}/_org", pointers[at])]);
    }

    /// Both layouts; a date is accepted exactly when it is a day of the Gregorian calendar.
    #[test]
    fn creation_dates_are_accepted_exactly_when_they_are_real_days(year in 1000i32..=9999, month in 1u32..=12, day in 1u32..=31, us_layout in any::<bool>()) {
        let raw = if us_layout { format!("{month:02}-{day:02}-{year:04}") } else { format!("{year:04}-{month:02}-{day:02}") };
        let real = day <= days_in_month(year, month);
        prop_assert_eq!(calendar_date(&raw).is_some(), real, "{}", raw);
        let plan = plan_with(&["p".to_owned()], "example.com", &raw, &[]);
        match parse_plan(plan) {
            Ok(_) => prop_assert!(real, "{} accepted", raw),
            Err(violations) => {
                prop_assert!(!real, "{} refused: {:?}", raw, violations);
                prop_assert_eq!(violations.into_iter().map(|v| v.pointer).collect::<Vec<_>>(), vec!["/creationDate".to_owned()]);
            }
        }
    }

    /// A plan merged into itself, or an empty merge patch, changes nothing.
    #[test]
    fn merging_a_plan_into_itself_or_an_empty_patch_is_the_identity(plan in valid_plan()) {
        prop_assert_eq!(&PlanPatch::merge(plan.clone()).unwrap().apply(&plan).unwrap(), &plan);
        prop_assert_eq!(&PlanPatch::merge(json!({})).unwrap().apply(&plan).unwrap(), &plan);
    }

    /// The whole changed plan as a merge patch yields the changed plan (same objectIds, new values);
    /// the same change as JSON Patch `replace` operations yields the same document; and patching
    /// back restores the original exactly.
    #[test]
    fn merge_and_json_patch_agree_and_round_trip(plan in valid_plan(), copay in money(), plan_type in "[a-zA-Z]{1,12}") {
        let mut changed = plan.clone();
        changed["planCostShares"]["copay"] = json!(copay);
        changed["planType"] = json!(plan_type);
        let merged = PlanPatch::merge(changed.clone()).unwrap().apply(&plan).unwrap();
        prop_assert_eq!(&merged, &changed);
        let small = PlanPatch::merge(json!({"planType": plan_type, "planCostShares": {"copay": copay}})).unwrap().apply(&plan).unwrap();
        prop_assert_eq!(&small, &changed);
        let ops = json!([
            {"op": "replace", "path": "/planCostShares/copay", "value": copay},
            {"op": "replace", "path": "/planType", "value": plan_type},
        ]);
        let patched = PlanPatch::json_patch(ops).unwrap().apply(&plan).unwrap();
        prop_assert_eq!(&patched, &changed);
        let back = json!([
            {"op": "test", "path": "/planType", "value": changed["planType"]},
            {"op": "replace", "path": "/planCostShares/copay", "value": plan["planCostShares"]["copay"]},
            {"op": "replace", "path": "/planType", "value": plan["planType"]},
        ]);
        prop_assert_eq!(&PlanPatch::json_patch(back).unwrap().apply(&patched).unwrap(), &plan);
        prop_assert!(parse_plan(merged).is_ok());
    }

    /// A linked plan service with new objectIds, merged in, is appended (and valid); removing it
    /// by JSON Patch gives the original plan back.
    #[test]
    fn an_appended_service_is_removed_by_json_patch(plan in valid_plan(), name in "[A-Za-z]{1,12}", copay in money()) {
        let org = plan["_org"].clone();
        let service = json!({
            "_org": org, "objectId": "appended-ps", "objectType": "planservice",
            "linkedService": {"_org": org, "objectId": "appended-s", "objectType": "service", "name": name},
            "planserviceCostShares": {"_org": org, "objectId": "appended-cs", "objectType": "membercostshare", "deductible": 0, "copay": copay}
        });
        let merged = PlanPatch::merge(json!({"linkedPlanServices": [service]})).unwrap().apply(&plan).unwrap();
        let count = plan["linkedPlanServices"].as_array().unwrap().len();
        prop_assert_eq!(merged["linkedPlanServices"].as_array().unwrap().len(), count + 1);
        prop_assert_eq!(&merged["linkedPlanServices"][count], &service);
        prop_assert!(parse_plan(merged.clone()).is_ok());
        let remove = json!([{"op": "remove", "path": format!("/linkedPlanServices/{count}")}]);
        prop_assert_eq!(&PlanPatch::json_patch(remove).unwrap().apply(&merged).unwrap(), &plan);
    }

    /// `null` in a merge patch removes a field (planType is required, so that result is refused
    /// before anything is written), and merging the old value back restores the plan.
    #[test]
    fn null_removes_and_the_old_value_restores(plan in valid_plan()) {
        let removed = PlanPatch::merge(json!({"planType": null})).unwrap().apply(&plan).unwrap();
        prop_assert!(removed.get("planType").is_none());
        prop_assert!(parse_plan(removed.clone()).is_err());
        let restored = PlanPatch::merge(json!({"planType": plan["planType"]})).unwrap().apply(&removed).unwrap();
        let (mut a, mut b) = (restored, plan);
        // Field order is not part of the document's meaning.
        a.as_object_mut().unwrap().sort_keys();
        b.as_object_mut().unwrap().sort_keys();
        prop_assert_eq!(a, b);
    }
}
