//! The search-index contract: every adapter (embedded, OpenSearch over HTTP against the test
//! script's osmem-server, a real cluster when `OPENSEARCH_URL` is set) must pass every case and
//! give the same answers. Each case gets an index of its own.

use std::collections::HashSet;
use std::sync::Arc;

use plan::{Plan, Tenant};
use plan_e2e::index::{Backend, Spec, delete, oid, plan_of, search, spec_plan, upsert};
use plan_e2e::{tag, unique_plan};
use plan_index::{ChangeOutcome, IndexErrorKind, ParentRelation, PlanIndex, SearchPage};
use serde_json::{Value, json};

type Index = Arc<dyn PlanIndex>;

use ChangeOutcome::{AlreadyApplied, Applied};

fn ids(page: &SearchPage) -> Vec<String> {
    page.hits.iter().map(|hit| hit.plan.object_id.to_string()).collect()
}

fn object_ids(plan: &Plan) -> Vec<String> {
    plan.object_ids().into_iter().map(|id| id.to_string()).collect()
}

async fn indexed_ids(index: &Index, plan_id: &str) -> Option<(Option<u64>, Vec<String>)> {
    let indexed = index.indexed(&oid(plan_id)).await.unwrap()?;
    let mut ids: Vec<String> = indexed.objects.keys().map(|id| id.to_string()).collect();
    ids.sort();
    Some((indexed.plan_version, ids))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The plans of the canonical searches, in result order (creationDate descending).
struct Canonical {
    rich: Plan,
    cheap: Plan,
    sample: Plan,
    other: Plan,
    vision: Plan,
}

impl Canonical {
    async fn load(index: &Index) -> Self {
        let t = tag();
        let id = |name: &str| format!("{name}-{t}");
        let data = Self {
            rich: spec_plan(
                &id("rich"),
                &Spec {
                    date: "01-15-2019",
                    deductible: 1500.0,
                    copay: 50.0,
                    services: &[("annual physical", 0.0, 150.0), ("dental", 0.0, 20.0)],
                    ..Spec::default()
                },
            ),
            cheap: spec_plan(
                &id("cheap"),
                &Spec {
                    plan_type: "outOfNetwork",
                    date: "2018-03-01",
                    deductible: 500.0,
                    copay: 0.0,
                    services: &[("Physical therapy", 5.0, 10.0)],
                    ..Spec::default()
                },
            ),
            // The common sample plan: its "Yearly physical" has copay 0, its "well baby" 175.
            sample: plan_of(unique_plan(&t)),
            other: spec_plan(
                &id("other"),
                &Spec {
                    date: "2017-06-30",
                    org: "other.org",
                    deductible: 1000.0,
                    copay: 5.0,
                    services: &[("physical", 0.0, 15.0)],
                    ..Spec::default()
                },
            ),
            vision: spec_plan(
                &id("vision"),
                &Spec {
                    date: "2016-12-31",
                    deductible: 0.0,
                    copay: 1.0,
                    services: &[("Vision", 0.0, 100.0), ("Well-baby visits", 0.0, 5.0)],
                    ..Spec::default()
                },
            ),
        };
        let changes: Vec<_> = data.all().iter().map(|p| upsert(p, 1)).collect();
        assert_eq!(index.apply(&changes).await.unwrap(), vec![Applied; 5]);
        data
    }

    fn all(&self) -> [&Plan; 5] {
        [&self.rich, &self.cheap, &self.sample, &self.other, &self.vision]
    }

    fn ids(&self, plans: &[&Plan]) -> Vec<String> {
        plans.iter().map(|p| p.object_id.to_string()).collect()
    }

    fn service(plan: &Plan, i: usize) -> String {
        plan.linked_plan_services[i].object_id.to_string()
    }
}

/// Runs one search as the unrestricted caller.
async fn find(index: &Index, body: Value) -> SearchPage {
    index.search(&search(body), &Tenant::unrestricted()).await.unwrap()
}

mod cases {
    use super::*;

    pub async fn upsert_then_read_back_every_view(index: Index) {
        let plan = plan_of(unique_plan(&tag()));
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [Applied]);
        let (version, ids) = indexed_ids(&index, plan.object_id.as_str()).await.unwrap();
        assert_eq!((version, ids), (Some(1), sorted(object_ids(&plan))));
        assert!(index.indexed(&plan.object_id).await.unwrap().unwrap().matches(1, &plan.object_ids()));

        let rebuilt = index.plan_from_index(&plan.object_id, &Tenant::unrestricted()).await.unwrap().unwrap();
        assert_eq!((rebuilt.version, rebuilt.complete), (1, true));
        assert_eq!(rebuilt.body, plan.to_json(), "the plan rebuilt from its documents is the stored plan");

        let any = Tenant::unrestricted();
        let share = &plan.linked_plan_services[1].planservice_cost_shares;
        let doc = index.document(&share.object_id, &any).await.unwrap().unwrap();
        assert_eq!(doc.routing, plan.object_id);
        assert_eq!(doc.version, 1);
        let source = serde_json::to_value(&doc.source).unwrap();
        let parent = format!("{}:{}", plan.object_id, plan.linked_plan_services[1].object_id);
        assert_eq!(source["relation"], json!({"name": "planserviceCostShares", "parent": parent}));
        assert_eq!(
            (source["copay"].clone(), source["planId"].clone(), source["_org"].clone()),
            (json!(175), json!(plan.object_id), json!("example.com"))
        );
        let root = index.document(&plan.object_id, &any).await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&root.source).unwrap()["relation"], json!("plan"));

        let children = index.children(ParentRelation::PLAN, &plan.object_id, &any).await.unwrap().unwrap();
        let child_ids: Vec<String> = children.iter().map(|c| c.source.object_id.to_string()).collect();
        let services: Vec<String> = plan.linked_plan_services.iter().map(|s| s.object_id.to_string()).collect();
        assert_eq!(child_ids, [vec![plan.plan_cost_shares.object_id.to_string()], services.clone()].concat());
        let service = &plan.linked_plan_services[0];
        let grandchildren = index.children(ParentRelation::LINKED_PLAN_SERVICES, &service.object_id, &any).await.unwrap().unwrap();
        let grandchild_ids: Vec<String> = grandchildren.iter().map(|c| c.source.object_id.to_string()).collect();
        assert_eq!(grandchild_ids, [service.linked_service.object_id.to_string(), service.planservice_cost_shares.object_id.to_string()]);
        assert_eq!(index.children(ParentRelation::PLAN, &service.object_id, &any).await.unwrap(), None, "not a plan");
        assert_eq!(index.children(ParentRelation::LINKED_PLAN_SERVICES, &plan.object_id, &any).await.unwrap(), None);
        assert_eq!(index.document(&oid("never-indexed"), &any).await.unwrap(), None);
        assert_eq!(index.indexed(&oid("never-indexed")).await.unwrap(), None);
        assert_eq!(index.plan_from_index(&oid("never-indexed"), &any).await.unwrap(), None);
    }

    pub async fn replays_change_nothing(index: Index) {
        let plan = plan_of(unique_plan(&tag()));
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [Applied]);
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [AlreadyApplied]);
        assert_eq!(index.apply(&[upsert(&plan, 1), upsert(&plan, 1)]).await.unwrap(), [AlreadyApplied, AlreadyApplied]);
        assert_eq!(indexed_ids(&index, plan.object_id.as_str()).await.unwrap(), (Some(1), sorted(object_ids(&plan))));
    }

    pub async fn older_versions_never_regress_the_index(index: Index) {
        let t = tag();
        let id = format!("p-{t}");
        let v2 = spec_plan(&id, &Spec { services: &[("two", 0.0, 2.0)], ..Spec::default() });
        let v3 = spec_plan(&id, &Spec { services: &[("three", 0.0, 3.0), ("more", 0.0, 3.0)], ..Spec::default() });
        let v4 = spec_plan(&id, &Spec { plan_type: "four", services: &[], ..Spec::default() });
        let v5 = spec_plan(&id, &Spec { plan_type: "five", services: &[("five", 0.0, 5.0)], ..Spec::default() });
        assert_eq!(index.apply(&[upsert(&v3, 3)]).await.unwrap(), [Applied]);
        assert_eq!(index.apply(&[upsert(&v2, 2)]).await.unwrap(), [AlreadyApplied]);
        assert_eq!(indexed_ids(&index, &id).await.unwrap(), (Some(3), sorted(object_ids(&v3))));
        // Out of order inside one batch too.
        assert_eq!(
            index.apply(&[upsert(&v5, 5), upsert(&v4, 4), upsert(&v3, 3)]).await.unwrap(),
            [Applied, AlreadyApplied, AlreadyApplied]
        );
        assert_eq!(indexed_ids(&index, &id).await.unwrap(), (Some(5), sorted(object_ids(&v5))));
        let rebuilt = index.plan_from_index(&oid(&id), &Tenant::unrestricted()).await.unwrap().unwrap();
        assert_eq!(rebuilt.body, v5.to_json());
        assert_eq!(ids(&find(&index, json!({"text": "three"})).await), Vec::<String>::new());
        assert_eq!(ids(&find(&index, json!({"text": "five"})).await), [id]);
    }

    pub async fn objects_dropped_from_a_plan_disappear(index: Index) {
        let t = tag();
        let id = format!("p-{t}");
        let v1 = spec_plan(&id, &Spec { services: &[("alpha", 0.0, 1.0), ("beta", 0.0, 2.0), ("gamma", 0.0, 3.0)], ..Spec::default() });
        let mut v2 = v1.clone();
        let dropped = v2.linked_plan_services.remove(1);
        v2.linked_plan_services.push(
            spec_plan(&format!("q-{t}"), &Spec { services: &[("delta", 0.0, 4.0)], ..Spec::default() }).linked_plan_services[0].clone(),
        );
        assert_eq!(index.apply(&[upsert(&v1, 1)]).await.unwrap(), [Applied]);
        assert_eq!(index.apply(&[upsert(&v2, 2)]).await.unwrap(), [Applied]);
        assert_eq!(indexed_ids(&index, &id).await.unwrap(), (Some(2), sorted(object_ids(&v2))));
        let any = Tenant::unrestricted();
        for gone in [&dropped.object_id, &dropped.linked_service.object_id, &dropped.planservice_cost_shares.object_id] {
            assert_eq!(index.document(gone, &any).await.unwrap(), None, "{gone}");
        }
        assert!(ids(&find(&index, json!({"text": "beta"})).await).is_empty());
        assert_eq!(ids(&find(&index, json!({"service": {"name": "delta"}})).await), vec![id.clone()]);
        assert_eq!(index.plan_from_index(&oid(&id), &any).await.unwrap().unwrap().body, v2.to_json());
        // Several versions in one batch: each drops what the previous one had.
        let v3 = spec_plan(&id, &Spec { services: &[("epsilon", 0.0, 1.0)], ..Spec::default() });
        let v4 = spec_plan(&id, &Spec { services: &[("zeta", 0.0, 1.0), ("eta", 0.0, 1.0)], ..Spec::default() });
        assert_eq!(index.apply(&[upsert(&v3, 3), upsert(&v4, 4)]).await.unwrap(), [Applied, Applied]);
        assert_eq!(indexed_ids(&index, &id).await.unwrap(), (Some(4), sorted(object_ids(&v4))));
    }

    pub async fn a_deleted_plan_leaves_nothing_and_stays_deleted(index: Index) {
        let plan = plan_of(unique_plan(&tag()));
        let id = plan.object_id.to_string();
        let any = Tenant::unrestricted();
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [Applied]);
        assert_eq!(index.apply(&[delete(&id, 2)]).await.unwrap(), [Applied]);
        assert_eq!(index.indexed(&plan.object_id).await.unwrap(), None);
        for object in plan.object_ids() {
            assert_eq!(index.document(&object, &any).await.unwrap(), None, "{object}");
        }
        assert_eq!(index.plan_from_index(&plan.object_id, &any).await.unwrap(), None);
        assert!(ids(&find(&index, json!({"text": "well baby"})).await).is_empty());
        // Replayed or late, the older changes do not bring it back.
        assert_eq!(index.apply(&[delete(&id, 2)]).await.unwrap(), [AlreadyApplied]);
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [AlreadyApplied]);
        assert_eq!(index.indexed(&plan.object_id).await.unwrap(), None);
        // A re-created plan continues the version sequence.
        assert_eq!(index.apply(&[upsert(&plan, 3)]).await.unwrap(), [Applied]);
        assert_eq!(indexed_ids(&index, &id).await.unwrap().0, Some(3));
        assert_eq!(index.apply(&[delete(&id, 2)]).await.unwrap(), [AlreadyApplied], "an old delete does not remove the new plan");
        assert_eq!(indexed_ids(&index, &id).await.unwrap().0, Some(3));
    }

    pub async fn a_delete_that_overtakes_the_create_wins(index: Index) {
        let plan = plan_of(unique_plan(&tag()));
        let id = plan.object_id.to_string();
        assert_eq!(index.apply(&[delete(&id, 2)]).await.unwrap(), [Applied]);
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [AlreadyApplied]);
        assert_eq!(index.indexed(&plan.object_id).await.unwrap(), None);
        let any = Tenant::unrestricted();
        for object in plan.object_ids() {
            assert_eq!(index.document(&object, &any).await.unwrap(), None, "{object}");
        }
        assert!(ids(&find(&index, json!({})).await).is_empty());
        // And in one batch.
        let other = plan_of(unique_plan(&tag()));
        let other_id = other.object_id.to_string();
        assert_eq!(index.apply(&[delete(&other_id, 2), upsert(&other, 1)]).await.unwrap(), [Applied, AlreadyApplied]);
        assert_eq!(index.indexed(&other.object_id).await.unwrap(), None);
    }

    pub async fn an_object_id_moving_between_plans(index: Index) {
        let t = tag();
        let a = spec_plan(&format!("a-{t}"), &Spec { services: &[("moving", 0.0, 1.0)], ..Spec::default() });
        let mut b = spec_plan(&format!("b-{t}"), &Spec { services: &[], ..Spec::default() });
        let moving = a.linked_plan_services[0].clone();
        b.linked_plan_services.push(moving.clone());
        let mut a2 = a.clone();
        a2.linked_plan_services.clear();
        // Plan b (version 1) takes the service before a's change that drops it is indexed.
        assert_eq!(index.apply(&[upsert(&a, 7), upsert(&b, 1)]).await.unwrap(), [Applied, Applied]);
        let any = Tenant::unrestricted();
        let doc = index.document(&moving.object_id, &any).await.unwrap().unwrap();
        assert_eq!(doc.routing, a.object_id, "the lowest plan id while both hold it");
        assert_eq!(index.apply(&[upsert(&a2, 8)]).await.unwrap(), [Applied]);
        let doc = index.document(&moving.object_id, &any).await.unwrap().unwrap();
        assert_eq!((doc.routing, doc.version), (b.object_id.clone(), 1), "b's version 1 is not hidden by a's version 8");
        assert_eq!(indexed_ids(&index, b.object_id.as_str()).await.unwrap(), (Some(1), sorted(object_ids(&b))));
    }

    pub async fn a_bad_change_is_rejected_alone(index: Index) {
        let good = plan_of(unique_plan(&tag()));
        let mut bad = plan_of(unique_plan(&tag()));
        // Built without validation, as a careless producer might: not a calendar date.
        bad.creation_date = "02-30-2017".into();
        let outcomes = index.apply(&[upsert(&bad, 1), upsert(&good, 1)]).await.unwrap();
        assert!(matches!(&outcomes[0], ChangeOutcome::Rejected(reason) if reason.contains("02-30-2017")), "{outcomes:?}");
        assert_eq!(outcomes[1], Applied);
        assert_eq!(index.indexed(&bad.object_id).await.unwrap(), None);
        assert!(index.indexed(&good.object_id).await.unwrap().is_some());
    }

    pub async fn a_rebuild_swaps_in_atomically(index: Index) {
        let t = tag();
        let plan = |name: &str| spec_plan(&format!("{name}-{t}"), &Spec { services: &[(name, 0.0, 1.0)], ..Spec::default() });
        let (a, b, c, d) = (plan("alpha"), plan("bravo"), plan("charlie"), plan("delta"));
        index.apply(&[upsert(&a, 1), upsert(&b, 1)]).await.unwrap();
        let target = index.begin_rebuild().await.unwrap();
        assert_eq!(sorted(ids(&find(&index, json!({})).await)), sorted(vec![a.object_id.to_string(), b.object_id.to_string()]));
        // The rebuild copies the store (a and c; b is gone from it), while the indexer goes on.
        assert_eq!(index.apply_to(&target, &[upsert(&a, 1), upsert(&c, 1)]).await.unwrap(), [Applied, Applied]);
        assert_eq!(index.apply(&[upsert(&d, 1)]).await.unwrap(), [Applied]);
        assert_eq!(sorted(ids(&find(&index, json!({})).await)).len(), 3, "searches still read the old index");
        index.finish_rebuild(target.clone()).await.unwrap();
        let expected = sorted(vec![a.object_id.to_string(), c.object_id.to_string(), d.object_id.to_string()]);
        assert_eq!(sorted(ids(&find(&index, json!({})).await)), expected, "what the indexer wrote during the rebuild survives the swap");
        assert_eq!(index.indexed(&b.object_id).await.unwrap(), None);
        assert_eq!(index.apply(&[upsert(&a, 1)]).await.unwrap(), [AlreadyApplied]);
        let error = index.finish_rebuild(target).await.unwrap_err();
        assert_eq!(error.kind, IndexErrorKind::Rejected);
    }

    /// A rebuild and the indexer applying one plan at once (the rebuild copying v2 from the store
    /// while the indexer applies v3, each having read the index before the other wrote): whatever
    /// order their writes land in, no document of an older version stays joined to the plan.
    pub async fn a_rebuild_overlapping_the_indexer_leaves_no_orphan(index: Index) {
        const ROUNDS: usize = 24;
        let t = tag();
        let versions = |round: usize| {
            let id = format!("race-{t}-{round}");
            let v1 = spec_plan(&id, &Spec { services: &[("alpha", 0.0, 1.0)], ..Spec::default() });
            let v2 = spec_plan(&id, &Spec { services: &[("alpha", 0.0, 1.0), ("orphanword", 0.0, 2.0)], ..Spec::default() });
            let v3 = spec_plan(&id, &Spec { services: &[("alpha", 0.0, 3.0)], ..Spec::default() });
            (v1, v2, v3)
        };
        let target = index.begin_rebuild().await.unwrap();
        for round in 0..ROUNDS {
            let (v1, v2, v3) = versions(round);
            index.apply(&[upsert(&v1, 1)]).await.unwrap();
            index.apply_to(&target, &[upsert(&v1, 1)]).await.unwrap();
            // The rebuild starts first, the indexer a little later each round, so that some
            // round has the indexer read before the rebuild writes and write after it.
            let rebuild = tokio::spawn({
                let (index, target, copied) = (index.clone(), target.clone(), [upsert(&v2, 2)]);
                async move { index.apply_to(&target, &copied).await }
            });
            tokio::time::sleep(std::time::Duration::from_micros(150 * round as u64)).await;
            assert_eq!(index.apply(&[upsert(&v3, 3)]).await.unwrap(), [Applied]);
            rebuild.await.unwrap().unwrap();
        }
        index.finish_rebuild(target).await.unwrap();
        for round in 0..ROUNDS {
            let (_, _, v3) = versions(round);
            let id = v3.object_id.to_string();
            assert_eq!(indexed_ids(&index, &id).await.unwrap(), (Some(3), sorted(object_ids(&v3))), "round {round}");
        }
        assert!(ids(&find(&index, json!({"service": {"name": "orphanword"}})).await).is_empty(), "an orphan service matched");
    }

    pub async fn an_aborted_or_superseded_rebuild_changes_nothing(index: Index) {
        let a = plan_of(unique_plan(&tag()));
        index.apply(&[upsert(&a, 1)]).await.unwrap();
        let first = index.begin_rebuild().await.unwrap();
        let second = index.begin_rebuild().await.unwrap();
        assert_ne!(first, second);
        assert_eq!(index.apply_to(&first, &[upsert(&a, 1)]).await.unwrap_err().kind, IndexErrorKind::Rejected);
        assert_eq!(index.finish_rebuild(first).await.unwrap_err().kind, IndexErrorKind::Rejected);
        index.apply_to(&second, &[]).await.unwrap();
        index.abort_rebuild(second.clone()).await.unwrap();
        assert_eq!(ids(&find(&index, json!({})).await), [a.object_id.to_string()]);
        assert_eq!(index.finish_rebuild(second).await.unwrap_err().kind, IndexErrorKind::Rejected);
    }

    pub async fn reads_are_confined_to_the_tenant(index: Index) {
        let data = Canonical::load(&index).await;
        let other_org = Tenant::org("other.org");
        let sample = &data.sample;
        assert_eq!(index.plan_from_index(&sample.object_id, &other_org).await.unwrap(), None);
        assert_eq!(index.document(&sample.plan_cost_shares.object_id, &other_org).await.unwrap(), None);
        assert_eq!(index.children(ParentRelation::PLAN, &sample.object_id, &other_org).await.unwrap(), None);
        assert!(index.plan_from_index(&data.other.object_id, &other_org).await.unwrap().is_some());
        let page = index.search(&search(json!({})), &other_org).await.unwrap();
        assert_eq!((page.total, ids(&page)), (1, data.ids(&[&data.other])));
        let page = index.search(&search(json!({"org": "other.org"})), &Tenant::org("example.com")).await.unwrap();
        assert_eq!(page.total, 0);
        let page = index.search(&search(json!({"org": "example.com"})), &Tenant::org("example.com")).await.unwrap();
        assert_eq!(page.total, 4);
    }

    pub async fn large_plans_are_indexed_whole(index: Index) {
        let t = tag();
        let names: Vec<String> = (0..400).map(|i| format!("service {i}")).collect();
        let services: Vec<(&str, f64, f64)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), 0.0, i as f64)).collect();
        let plan = spec_plan(&format!("big-{t}"), &Spec { services: &services, ..Spec::default() });
        assert_eq!(index.apply(&[upsert(&plan, 1)]).await.unwrap(), [Applied]);
        assert_eq!(indexed_ids(&index, plan.object_id.as_str()).await.unwrap(), (Some(1), sorted(object_ids(&plan))));
        assert_eq!(index.plan_from_index(&plan.object_id, &Tenant::unrestricted()).await.unwrap().unwrap().body, plan.to_json());
        let page = find(&index, json!({"service": {"copay": {"gte": 390}}})).await;
        assert_eq!(page.hits[0].matched_services.len(), 10);
        let smaller = spec_plan(&format!("big-{t}"), &Spec { services: &services[..3], ..Spec::default() });
        assert_eq!(index.apply(&[upsert(&smaller, 2)]).await.unwrap(), [Applied]);
        assert_eq!(indexed_ids(&index, plan.object_id.as_str()).await.unwrap(), (Some(2), sorted(object_ids(&smaller))));
    }

    pub async fn probe_answers(index: Index) {
        index.ping().await.unwrap();
    }

    // ---- The canonical searches ----

    pub async fn plan_cost_share_ranges(index: Index) {
        let d = Canonical::load(&index).await;
        let page = find(&index, json!({"planCostShares": {"copay": {"gte": 1}}})).await;
        assert_eq!((page.total, ids(&page)), (4, d.ids(&[&d.rich, &d.sample, &d.other, &d.vision])));
        assert!(page.hits.iter().all(|hit| hit.matched_services.is_empty()), "no service filter, no matched services");
        let page = find(&index, json!({"planCostShares": {"deductible": {"gte": 1000}, "copay": {"gte": 1, "lt": 50}}})).await;
        assert_eq!(ids(&page), d.ids(&[&d.sample, &d.other]));
        let page = find(&index, json!({"planCostShares": {"copay": {"gt": 0, "lte": 1}}})).await;
        assert_eq!(ids(&page), d.ids(&[&d.vision]));
    }

    pub async fn a_service_with_a_copay_of_at_least_100(index: Index) {
        let d = Canonical::load(&index).await;
        let page = find(&index, json!({"service": {"copay": {"gte": 100}}})).await;
        assert_eq!((page.total, ids(&page)), (3, d.ids(&[&d.rich, &d.sample, &d.vision])));
        let matched: Vec<Vec<String>> = page.hits.iter().map(|h| h.matched_services.iter().map(|s| s.to_string()).collect()).collect();
        assert_eq!(
            matched,
            [vec![Canonical::service(&d.rich, 0)], vec![Canonical::service(&d.sample, 1)], vec![Canonical::service(&d.vision, 0)]]
        );
    }

    pub async fn a_named_service_and_its_cost_shares_on_the_same_service(index: Index) {
        let d = Canonical::load(&index).await;
        let page = find(&index, json!({"service": {"name": "physical", "copay": {"lte": 20}}})).await;
        assert_eq!(ids(&page), d.ids(&[&d.cheap, &d.sample, &d.other]));
        let matched: Vec<Vec<String>> = page.hits.iter().map(|h| h.matched_services.iter().map(|s| s.to_string()).collect()).collect();
        assert_eq!(
            matched,
            [vec![Canonical::service(&d.cheap, 0)], vec![Canonical::service(&d.sample, 0)], vec![Canonical::service(&d.other, 0)]]
        );
        // The sample plan's "physical" service has copay 0 and another service has 175: no match.
        let page = find(&index, json!({"service": {"name": "physical", "copay": {"gte": 100}}})).await;
        assert_eq!((page.total, ids(&page)), (1, d.ids(&[&d.rich])));
        assert_eq!(page.hits[0].matched_services, [d.rich.linked_plan_services[0].object_id.clone()]);
        // Names are analysed: case and word order do not matter, every word must be in one name.
        assert_eq!(ids(&find(&index, json!({"service": {"name": "PHYSICAL Yearly"}})).await), d.ids(&[&d.sample]));
        assert!(ids(&find(&index, json!({"service": {"name": "yearly therapy"}})).await).is_empty());
        assert!(ids(&find(&index, json!({"service": {"name": "phys"}})).await).is_empty(), "whole words only");
        let any = find(&index, json!({"service": {}})).await;
        assert_eq!(any.total, 5);
        assert_eq!(any.hits[0].matched_services.len(), 2, "every service of the plan matches an empty service filter");
        assert_eq!(ids(&find(&index, json!({"service": {"deductible": {"gt": 0}}})).await), d.ids(&[&d.cheap, &d.sample]));
    }

    pub async fn text_matches_words_anywhere_in_the_plan(index: Index) {
        let d = Canonical::load(&index).await;
        assert_eq!(ids(&find(&index, json!({"text": "well baby"})).await), d.ids(&[&d.sample, &d.vision]));
        assert_eq!(ids(&find(&index, json!({"text": "baby physical"})).await), d.ids(&[&d.sample]), "words from two services of one plan");
        assert_eq!(ids(&find(&index, json!({"text": "PHYSICAL"})).await), d.ids(&[&d.rich, &d.cheap, &d.sample, &d.other]));
        let none = find(&index, json!({"text": "zebra"})).await;
        assert_eq!((none.total, none.hits.len(), none.next_cursor.clone()), (0, 0, None));
    }

    pub async fn plan_type_and_org_filters(index: Index) {
        let d = Canonical::load(&index).await;
        assert_eq!(ids(&find(&index, json!({"planType": "outOfNetwork"})).await), d.ids(&[&d.cheap]));
        assert_eq!(ids(&find(&index, json!({"org": "other.org"})).await), d.ids(&[&d.other]));
        assert_eq!(
            ids(&find(&index, json!({"planType": "inNetwork", "org": "example.com"})).await),
            d.ids(&[&d.rich, &d.sample, &d.vision])
        );
        assert!(ids(&find(&index, json!({"planType": "innetwork"})).await).is_empty(), "plan types compare exactly");
        let page = find(&index, json!({"planType": "inNetwork", "service": {"name": "physical"}, "text": "well"})).await;
        assert_eq!(ids(&page), d.ids(&[&d.sample]));
    }

    pub async fn creation_date_ranges(index: Index) {
        let d = Canonical::load(&index).await;
        assert_eq!(
            ids(&find(&index, json!({"creationDate": {"gte": "2017-01-01", "lte": "2017-12-31"}})).await),
            d.ids(&[&d.sample, &d.other])
        );
        assert_eq!(ids(&find(&index, json!({"creationDate": {"gt": "2017-12-12"}})).await), d.ids(&[&d.rich, &d.cheap]));
        assert_eq!(ids(&find(&index, json!({"creationDate": {"lt": "12-12-2017"}})).await), d.ids(&[&d.other, &d.vision]));
        assert_eq!(ids(&find(&index, json!({"creationDate": {"gte": "12-12-2017", "lte": "2017-12-12"}})).await), d.ids(&[&d.sample]));
    }

    pub async fn pages_cover_every_plan_once_while_plans_are_written(index: Index) {
        let t = tag();
        // 15 days, two plans a day so the plan id breaks ties.
        let originals: Vec<Plan> = (0..30)
            .map(|i| {
                let date = format!("2020-01-{:02}", 1 + i / 2);
                spec_plan(&format!("page-{i:02}-{t}"), &Spec { date: &date, ..Spec::default() })
            })
            .collect();
        let changes: Vec<_> = originals.iter().map(|p| upsert(p, 1)).collect();
        index.apply(&changes).await.unwrap();
        let writer = {
            let index = index.clone();
            let t = t.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    // Plans newer than everything, older than everything, and on the same days.
                    let date = match i % 3 {
                        0 => format!("2021-02-{:02}", 1 + i % 28),
                        1 => format!("2019-03-{:02}", 1 + i % 28),
                        _ => format!("2020-01-{:02}", 1 + i % 15),
                    };
                    let plan = spec_plan(&format!("new-{i:02}-{t}"), &Spec { date: &date, ..Spec::default() });
                    index.apply(&[upsert(&plan, 1)]).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut body = json!({"size": 4, "text": "checkup"});
            if let Some(c) = &cursor {
                body["cursor"] = json!(c);
            }
            let page = find(&index, body).await;
            assert!(page.hits.len() <= 4);
            seen.extend(page.hits.iter().map(|h| (h.plan.creation_date.clone(), h.plan.object_id.to_string())));
            pages += 1;
            assert!(pages < 100, "pagination does not end");
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            if pages == 3 {
                // Between pages: a new plan on a day already passed, and one still ahead.
                let behind = spec_plan(&format!("behind-{t}"), &Spec { date: "2020-01-15", ..Spec::default() });
                let ahead = spec_plan(&format!("ahead-{t}"), &Spec { date: "2020-01-02", ..Spec::default() });
                index.apply(&[upsert(&behind, 1), upsert(&ahead, 1)]).await.unwrap();
            }
        }
        writer.await.unwrap();
        let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), seen.len(), "no plan twice: {seen:?}");
        for plan in &originals {
            assert!(unique.contains(&plan.object_id.to_string()), "{} skipped", plan.object_id);
        }
        assert!(unique.contains(&format!("ahead-{t}")), "a plan written ahead of the cursor appears");
        assert!(!unique.contains(&format!("behind-{t}")), "a plan written behind the cursor does not");
        let keys: Vec<(i32, String)> = seen.iter().map(|(date, id)| (-plan_index::query::day_number(date).unwrap(), id.clone())).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "creationDate descending, then plan id");
        // Without writes, every page but the last is full and the total is exact.
        let first = find(&index, json!({"size": 100})).await;
        assert_eq!(first.total, 30 + 40 + 2);
        assert_eq!(first.hits.len(), 72);
        assert_eq!(first.next_cursor, None);
        let small = find(&index, json!({"size": 1})).await;
        assert_eq!((small.total, small.hits.len(), small.next_cursor.is_some()), (72, 1, true));
    }
}

macro_rules! contract {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            contract!(@cases $make, [
                upsert_then_read_back_every_view,
                replays_change_nothing,
                older_versions_never_regress_the_index,
                objects_dropped_from_a_plan_disappear,
                a_deleted_plan_leaves_nothing_and_stays_deleted,
                a_delete_that_overtakes_the_create_wins,
                an_object_id_moving_between_plans,
                a_bad_change_is_rejected_alone,
                a_rebuild_swaps_in_atomically,
                a_rebuild_overlapping_the_indexer_leaves_no_orphan,
                an_aborted_or_superseded_rebuild_changes_nothing,
                reads_are_confined_to_the_tenant,
                large_plans_are_indexed_whole,
                probe_answers,
                plan_cost_share_ranges,
                a_service_with_a_copay_of_at_least_100,
                a_named_service_and_its_cost_shares_on_the_same_service,
                text_matches_words_anywhere_in_the_plan,
                plan_type_and_org_filters,
                creation_date_ranges,
                pages_cover_every_plan_once_while_plans_are_written,
            ]);
        }
    };
    (@cases $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $make else { return };
                cases::$case(backend.index.clone()).await;
                backend.tear_down().await;
            }
        )*
    };
}

contract!(embedded, Backend::embedded());
contract!(opensearch_osmem, Backend::osmem());
contract!(opensearch_cluster, Backend::cluster());

/// Checks only an OpenSearch backend can answer, and the two backends compared on random data.
mod opensearch_only {
    use super::*;
    use plan_index::analysis;

    async fn analyzer_agrees(backend: Backend) {
        let adapter = backend.adapter().expect("an OpenSearch backend").clone();
        let texts = [
            "Yearly physical",
            "well baby",
            "Well-baby visits",
            "Physical therapy (PT/OT)",
            "U.S.A. plan",
            "don't stop",
            "co-pay 1,000.50",
            "v1.2.3 ab1.cd2 1.a",
            "İstanbul Ünïcode ÉCOLE Straße",
            "x_y _x y_ x__y",
            "e.g. l’école rock'n'roll 1'000",
            "a:b hello...world",
            "カタカナ ひらがな 日本語 한국어",
            "ΣΑΣ ¼ cup x²",
            "emergency room visit, 2nd opinion; X-ray/MRI",
        ];
        for text in texts {
            assert_eq!(analysis::words(text), adapter.analyze(text).await.unwrap(), "{text:?}");
        }
        backend.tear_down().await;
    }

    async fn the_index_has_an_explicit_mapping_behind_an_alias(backend: Backend) {
        let adapter = backend.adapter().expect("an OpenSearch backend").clone();
        adapter.apply(&[upsert(&plan_of(unique_plan(&tag())), 1)]).await.unwrap();
        let indices = adapter.indices().await.unwrap();
        assert_eq!(indices, [format!("{}-initial", adapter.alias())]);
        let mapping = adapter.mapping().await.unwrap();
        let mappings = &mapping[&indices[0]]["mappings"];
        assert_eq!(mappings["dynamic"], json!("strict"));
        let properties = &mappings["properties"];
        for (field, kind) in [
            ("objectId", "keyword"),
            ("objectType", "keyword"),
            ("_org", "keyword"),
            ("planId", "keyword"),
            ("planType", "keyword"),
            ("copay", "double"),
            ("deductible", "double"),
            ("creationDate", "date"),
            ("name", "text"),
            ("relation", "join"),
        ] {
            assert_eq!(properties[field]["type"], json!(kind), "{field}");
        }
        assert_eq!(properties["creationDate"]["format"], json!("MM-dd-yyyy||yyyy-MM-dd"));
        assert_eq!(properties["name"]["fields"]["keyword"]["type"], json!("keyword"));
        // A rebuild moves the alias to a new index and removes the old one.
        let target = adapter.begin_rebuild().await.unwrap();
        adapter.finish_rebuild(target.clone()).await.unwrap();
        assert_eq!(adapter.indices().await.unwrap(), [target.name().to_owned()]);
        backend.tear_down().await;
    }

    /// A tiny deterministic generator, so a failure can be replayed from its seed.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }

        fn money(&mut self) -> f64 {
            match self.below(4) {
                0 => 0.0,
                1 => self.below(40) as f64,
                2 => self.below(400) as f64 + 0.5,
                _ => (self.below(3000) * 5) as f64,
            }
        }
    }

    const WORDS: [&str; 10] = ["physical", "Yearly", "well", "baby", "dental", "vision", "therapy", "X-ray", "urgent", "care"];
    const TYPES: [&str; 3] = ["inNetwork", "outOfNetwork", "HMO"];
    const ORGS: [&str; 3] = ["example.com", "other.org", "third.net"];

    fn random_plans(random: &mut Random, tag: &str, count: usize) -> Vec<Plan> {
        (0..count)
            .map(|i| {
                let names: Vec<String> = (0..random.below(4))
                    .map(|_| (0..1 + random.below(3)).map(|_| random.pick(&WORDS)).collect::<Vec<_>>().join(" "))
                    .collect();
                let services: Vec<(&str, f64, f64)> = names.iter().map(|n| (n.as_str(), random.money(), random.money())).collect();
                let date = format!("{}-{:02}-{:02}", 2015 + random.below(5), 1 + random.below(12), 1 + random.below(28));
                let date = if random.below(2) == 0 { date } else { format!("{}-{}-{}", &date[5..7], &date[8..10], &date[..4]) };
                let spec = Spec {
                    plan_type: random.pick(&TYPES),
                    date: &date,
                    org: random.pick(&ORGS),
                    deductible: random.money(),
                    copay: random.money(),
                    services: &services,
                };
                spec_plan(&format!("r{i:03}-{tag}"), &spec)
            })
            .collect()
    }

    fn random_range(random: &mut Random, dates: bool) -> Value {
        // Money, or a month as (year, month): both ordered the way the range compares them.
        let mut value = || if dates { (2015 + random.below(5)) as f64 * 100.0 + (1 + random.below(12)) as f64 } else { random.money() };
        let render = |x: f64| if dates { json!(format!("{}-{:02}-01", (x / 100.0) as u64, x as u64 % 100)) } else { json!(x) };
        let (a, b) = (value(), value());
        let (low, high) = (a.min(b), a.max(b));
        let mut range = serde_json::Map::new();
        match random.below(3) {
            0 => range.insert(if random.below(2) == 0 { "gt" } else { "gte" }.into(), render(low)),
            1 => range.insert(if random.below(2) == 0 { "lt" } else { "lte" }.into(), render(high)),
            _ => {
                range.insert("gte".into(), render(low));
                range.insert("lte".into(), render(high))
            }
        };
        Value::Object(range)
    }

    fn random_search(random: &mut Random) -> Value {
        let mut body = serde_json::Map::new();
        if random.below(4) == 0 {
            body.insert("planType".into(), json!(random.pick(&TYPES)));
        }
        if random.below(4) == 0 {
            body.insert("org".into(), json!(random.pick(&ORGS)));
        }
        if random.below(4) == 0 {
            body.insert("creationDate".into(), random_range(random, true));
        }
        if random.below(3) == 0 {
            let field = if random.below(2) == 0 { "copay" } else { "deductible" };
            body.insert("planCostShares".into(), json!({field: random_range(random, false)}));
        }
        if random.below(2) == 0 {
            let mut service = serde_json::Map::new();
            if random.below(2) == 0 {
                service.insert("name".into(), json!(random.pick(&WORDS)));
            }
            if random.below(2) == 0 {
                service.insert("copay".into(), random_range(random, false));
            }
            if random.below(3) == 0 {
                service.insert("deductible".into(), random_range(random, false));
            }
            body.insert("service".into(), Value::Object(service));
        }
        if random.below(3) == 0 {
            let words: Vec<&str> = (0..1 + random.below(2)).map(|_| random.pick(&WORDS)).collect();
            body.insert("text".into(), json!(words.join(" ")));
        }
        body.insert("size".into(), json!(1 + random.below(25)));
        Value::Object(body)
    }

    /// Every page of a search, as (total, [(plan id, version, matched services)]).
    async fn walk(index: &Index, body: &Value, tenant: &Tenant) -> (Vec<u64>, Vec<(String, u64, Vec<String>)>) {
        let mut totals = Vec::new();
        let mut out = Vec::new();
        let mut body = body.clone();
        loop {
            let page = index.search(&search(body.clone()), tenant).await.unwrap();
            totals.push(page.total);
            out.extend(page.hits.iter().map(|h| (h.plan.to_json(), h.version, h.matched_services.iter().map(|s| s.to_string()).collect())));
            match page.next_cursor {
                Some(cursor) => body["cursor"] = json!(cursor),
                None => return (totals, out),
            }
        }
    }

    async fn embedded_and_opensearch_give_the_same_answers(backend: Backend) {
        let seed = 0x5eed_1234_u64;
        let mut random = Random(seed);
        let embedded: Index = Arc::new(plan_index::EmbeddedIndex::new());
        let t = tag();
        let plans = random_plans(&mut random, &t, 150);
        // Some plans change and some go away, as in life.
        let mut changes: Vec<_> = plans.iter().map(|p| upsert(p, 1)).collect();
        let later = random_plans(&mut Random(seed ^ 0xffff), &t, 150);
        for (i, plan) in later.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
            changes.push(upsert(plan, 2 + (i % 2) as u64));
        }
        changes.extend(plans.iter().filter(|_| random.below(10) == 0).map(|p| delete(p.object_id.as_str(), 9)));
        for batch in changes.chunks(37) {
            assert_eq!(embedded.apply(batch).await.unwrap(), backend.index.apply(batch).await.unwrap());
        }
        let mut answered = 0;
        for n in 0..150 {
            let body = random_search(&mut random);
            let tenant = match random.below(4) {
                0 => Tenant::org(random.pick(&ORGS)),
                _ => Tenant::unrestricted(),
            };
            let expected = walk(&embedded, &body, &tenant).await;
            let got = walk(&backend.index, &body, &tenant).await;
            assert_eq!(got, expected, "search #{n} (seed {seed:#x}) {body} as {tenant:?}");
            answered += usize::from(!expected.1.is_empty());
        }
        // The comparison means something only if many searches find plans.
        assert!(answered >= 50, "only {answered} of 150 random searches found a plan");
        backend.tear_down().await;
    }

    macro_rules! opensearch_cases {
        ($backend:ident, $make:expr) => {
            mod $backend {
                use super::*;

                #[tokio::test]
                async fn analyzer_agrees_with_the_cluster() {
                    let Some(backend) = $make else { return };
                    analyzer_agrees(backend).await;
                }

                #[tokio::test]
                async fn explicit_mapping_behind_an_alias() {
                    let Some(backend) = $make else { return };
                    the_index_has_an_explicit_mapping_behind_an_alias(backend).await;
                }

                #[tokio::test]
                async fn same_answers_as_the_embedded_index() {
                    let Some(backend) = $make else { return };
                    embedded_and_opensearch_give_the_same_answers(backend).await;
                }
            }
        };
    }

    opensearch_cases!(osmem, Backend::osmem());
    opensearch_cases!(cluster, Backend::cluster());

    #[tokio::test]
    async fn an_unreachable_cluster_is_unavailable_not_an_answer() {
        // Nothing listens on port 9 of the loopback interface (discard, never enabled).
        let mut config = plan_index::OpenSearchConfig::for_tests("http://127.0.0.1:9", &plan_e2e::index::test_alias());
        config.timeout = std::time::Duration::from_millis(500);
        let index = plan_index::OpenSearchIndex::new(&config).unwrap();
        let error = index.apply(&[upsert(&plan_of(unique_plan(&tag())), 1)]).await.unwrap_err();
        assert_eq!(error.kind, IndexErrorKind::Unavailable, "{error}");
        let error = index.search(&search(json!({})), &Tenant::unrestricted()).await.unwrap_err();
        assert_eq!(error.kind, IndexErrorKind::Unavailable);
        assert!(plan::probe::Probe::ping(&index).await.is_err());
    }
}
