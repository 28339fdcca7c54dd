//! The typed search request: parsed from the JSON body of `POST /v1/search` or the query
//! parameters of `GET /v1/search`, every problem reported at once with a JSON pointer. Adapters
//! translate it; nothing from the caller reaches a backend unparsed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plan::{ObjectId, Violation, Violations};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::analysis;

pub const DEFAULT_SIZE: usize = 20;
pub const MAX_SIZE: usize = 100;
/// Bounds on free text, so one request cannot ask for unbounded work.
pub const MAX_TEXT_CHARS: usize = 256;
pub const MAX_WORDS: usize = 16;

/// A validated search. Every given part must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    pub filters: Filters,
    /// Plans per page, 1 to [`MAX_SIZE`].
    pub size: usize,
    /// Where the page starts: after this plan in the result order.
    pub after: Option<SortKey>,
}

/// The conditions of a search, without its paging.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Filters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<DateRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_cost_shares: Option<CostShares>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Words>,
}

/// Ranges on a cost share's money fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CostShares {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deductible: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copay: Option<Range>,
}

/// At least one linked plan service whose linkedService's name has all these words and whose
/// planserviceCostShares are in these ranges: all on the same plan service.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ServiceFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Words>,
    #[serde(flatten)]
    pub cost_shares: CostShares,
}

/// Analysed words (see [`analysis`]), all of which must be found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Words {
    pub words: Vec<String>,
}

/// A range of numbers; at least one bound.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Range {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<Bound<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<Bound<f64>>,
}

/// A range of calendar days (days since 1970-01-01); at least one bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DateRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower: Option<Bound<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<Bound<i32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bound<T> {
    pub value: T,
    pub inclusive: bool,
}

impl Range {
    pub fn contains(&self, x: f64) -> bool {
        self.lower.is_none_or(|b| if b.inclusive { x >= b.value } else { x > b.value })
            && self.upper.is_none_or(|b| if b.inclusive { x <= b.value } else { x < b.value })
    }
}

impl DateRange {
    pub fn contains(&self, day: i32) -> bool {
        self.lower.is_none_or(|b| if b.inclusive { day >= b.value } else { day > b.value })
            && self.upper.is_none_or(|b| if b.inclusive { day <= b.value } else { day < b.value })
    }
}

/// A plan's place in the result order: creationDate descending, then plan id ascending.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SortKey {
    pub day: std::cmp::Reverse<i32>,
    pub plan_id: ObjectId,
}

impl SortKey {
    pub fn new(day: i32, plan_id: ObjectId) -> Self {
        Self { day: std::cmp::Reverse(day), plan_id }
    }

    pub fn day(&self) -> i32 {
        self.day.0
    }
}

/// Days since 1970-01-01 of a creationDate in either accepted layout.
pub fn day_number(raw: &str) -> Option<i32> {
    let (year, month, day) = plan::validate::calendar_date(raw)?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.to_julian_day() - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day())
}

/// `yyyy-MM-dd` of a day number.
pub fn day_string(day: i32) -> String {
    let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).map(|d| d.to_julian_day()).unwrap_or(2_440_588);
    match time::Date::from_julian_day(epoch + day) {
        Ok(date) => format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()),
        Err(_) => String::from("1970-01-01"),
    }
}

const CURSOR_PREFIX: &str = "s1";

impl SearchQuery {
    /// The opaque cursor of the page that starts after `key`. It names this search's filters, so
    /// it is refused with other filters.
    pub fn cursor_after(&self, key: &SortKey) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}|{}|{}|{}", key.day(), key.plan_id, self.filters.fingerprint()))
    }

    /// The JSON body of `POST /v1/search`.
    pub fn from_json(body: &Value) -> Result<Self, Violations> {
        let mut v = Collector::default();
        let Some(object) = body.as_object() else {
            return Err(Violations::one("", "a search is a JSON object"));
        };
        v.unknown_fields(object, "", &["planType", "org", "creationDate", "planCostShares", "service", "text", "size", "cursor"]);
        let plan_type = object.get("planType").and_then(|x| v.keyword(x, "/planType"));
        let org = object.get("org").and_then(|x| v.keyword(x, "/org"));
        let creation_date = object.get("creationDate").and_then(|x| v.date_range(x, "/creationDate"));
        let plan_cost_shares = object.get("planCostShares").and_then(|x| v.cost_shares(x, "/planCostShares", &[]));
        let service = object.get("service").and_then(|x| {
            let cost_shares = v.cost_shares(x, "/service", &["name"])?;
            let name = x.get("name").and_then(|n| v.words(n, "/service/name"));
            Some(ServiceFilter { name, cost_shares })
        });
        let text = object.get("text").and_then(|x| v.words(x, "/text"));
        let size = match object.get("size") {
            None => Some(DEFAULT_SIZE),
            Some(x) => v.size(&x.as_u64().map_or_else(String::new, |n| n.to_string()), "/size"),
        };
        let filters = Filters { plan_type, org, creation_date, plan_cost_shares, service, text };
        let cursor = match object.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(raw.as_str()),
            Some(_) => {
                v.push("/cursor", "cursor is the nextCursor string of a previous page");
                None
            }
        };
        let after = cursor.and_then(|raw| v.cursor(raw, &filters, "/cursor"));
        v.finish(Self { filters, size: size.unwrap_or(DEFAULT_SIZE), after })
    }

    /// The query parameters of `GET /v1/search`: `planType`, `org`, `serviceName`, `minCopay`,
    /// `maxCopay` (both inclusive, on the same linked plan service as `serviceName`), `text`,
    /// `size`, `cursor`.
    pub fn from_params(params: &[(String, String)]) -> Result<Self, Violations> {
        const KNOWN: [&str; 8] = ["planType", "org", "serviceName", "minCopay", "maxCopay", "text", "size", "cursor"];
        let mut v = Collector::default();
        let mut seen = std::collections::HashSet::new();
        for (name, _) in params {
            if !KNOWN.contains(&name.as_str()) {
                v.0.push_with(|| {
                    Violation::new(format!("/{}", pointer_escape(name)), format!("unknown parameter; known: {}", KNOWN.join(", ")))
                });
            } else if !seen.insert(name.as_str()) {
                v.push(format!("/{name}"), "given more than once");
            }
        }
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str());
        let plan_type = get("planType").and_then(|x| v.keyword(&Value::from(x), "/planType"));
        let org = get("org").and_then(|x| v.keyword(&Value::from(x), "/org"));
        let name = get("serviceName").and_then(|x| v.words(&Value::from(x), "/serviceName"));
        let mut bound = |param: &str| -> Option<f64> {
            let raw = get(param)?;
            match raw.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    v.push(format!("/{param}"), "a number");
                    None
                }
            }
        };
        let (min, max) = (bound("minCopay"), bound("maxCopay"));
        let copay = (min.is_some() || max.is_some()).then(|| Range {
            lower: min.map(|value| Bound { value, inclusive: true }),
            upper: max.map(|value| Bound { value, inclusive: true }),
        });
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            v.push("/minCopay", "minCopay is above maxCopay");
        }
        let service =
            (name.is_some() || copay.is_some()).then_some(ServiceFilter { name, cost_shares: CostShares { deductible: None, copay } });
        let text = get("text").and_then(|x| v.words(&Value::from(x), "/text"));
        let size = match get("size") {
            None => Some(DEFAULT_SIZE),
            Some(raw) => v.size(raw, "/size"),
        };
        let filters = Filters { plan_type, org, creation_date: None, plan_cost_shares: None, service, text };
        let after = get("cursor").and_then(|raw| v.cursor(raw, &filters, "/cursor"));
        v.finish(Self { filters, size: size.unwrap_or(DEFAULT_SIZE), after })
    }
}

impl Filters {
    /// A short digest of the filters, carried by cursors.
    fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&json).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

fn pointer_escape(raw: &str) -> String {
    raw.chars().take(64).collect::<String>().replace('~', "~0").replace('/', "~1")
}

/// The violations of one search, counted in full but listed only up to the cap (a body of
/// 90,000 unknown keys is one short answer, not 90,000 messages).
#[derive(Default)]
struct Collector(Violations);

impl Collector {
    fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation::new(pointer, message));
    }

    fn finish<T>(self, value: T) -> Result<T, Violations> {
        self.0.finish(value)
    }

    fn unknown_fields(&mut self, object: &Map<String, Value>, at: &str, known: &[&str]) {
        for name in object.keys().filter(|k| !known.contains(&k.as_str())) {
            self.0.push_with(|| {
                Violation::new(format!("{at}/{}", pointer_escape(name)), format!("unknown field; known: {}", known.join(", ")))
            });
        }
    }

    fn keyword(&mut self, value: &Value, at: &str) -> Option<String> {
        match value.as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_TEXT_CHARS => Some(s.to_owned()),
            _ => {
                self.push(at, format!("a non-empty string of at most {MAX_TEXT_CHARS} characters"));
                None
            }
        }
    }

    fn words(&mut self, value: &Value, at: &str) -> Option<Words> {
        let text = self.keyword(value, at)?;
        let words = analysis::word_set(&text);
        if words.is_empty() {
            self.push(at, "has no words to match (letters or digits)");
            None
        } else if words.len() > MAX_WORDS {
            self.push(at, format!("at most {MAX_WORDS} distinct words"));
            None
        } else {
            Some(Words { words })
        }
    }

    fn size(&mut self, raw: &str, at: &str) -> Option<usize> {
        match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_SIZE).contains(&n) => Some(n),
            _ => {
                self.push(at, format!("size is an integer from 1 to {MAX_SIZE}"));
                None
            }
        }
    }

    fn cursor(&mut self, raw: &str, filters: &Filters, at: &str) -> Option<SortKey> {
        let decoded = URL_SAFE_NO_PAD.decode(raw).ok().and_then(|bytes| String::from_utf8(bytes).ok());
        let parts: Option<(i32, ObjectId, String)> = decoded.as_deref().and_then(|text| {
            let mut parts = text.split('|');
            if parts.next()? != CURSOR_PREFIX {
                return None;
            }
            let day = parts.next()?.parse().ok()?;
            let id = ObjectId::parse(parts.next()?).ok()?;
            let fingerprint = parts.next()?.to_owned();
            parts.next().is_none().then_some((day, id, fingerprint))
        });
        match parts {
            None => {
                self.push(at, "cursor is not one this API returned");
                None
            }
            Some((_, _, fingerprint)) if fingerprint != filters.fingerprint() => {
                self.push(at, "cursor belongs to a search with other filters; send the same filters with it");
                None
            }
            Some((day, id, _)) => Some(SortKey::new(day, id)),
        }
    }

    fn range(&mut self, value: &Value, at: &str) -> Option<Range> {
        let (lower, upper) = self.bounds(value, at, |v, x, at| match x.as_f64() {
            Some(n) if n.is_finite() && x.is_number() => Some(n),
            _ => {
                v.push(at, "a number");
                None
            }
        })?;
        Some(Range { lower, upper })
    }

    fn date_range(&mut self, value: &Value, at: &str) -> Option<DateRange> {
        let (lower, upper) = self.bounds(value, at, |v, x, at| match x.as_str().and_then(day_number) {
            Some(day) => Some(day),
            None => {
                v.push(at, "a calendar date, yyyy-MM-dd or MM-dd-yyyy");
                None
            }
        })?;
        Some(DateRange { lower, upper })
    }

    /// `{"gt"|"gte": x, "lt"|"lte": y}`: at least one bound, at most one per side, not empty.
    #[allow(clippy::type_complexity)]
    fn bounds<T: PartialOrd + Copy>(
        &mut self,
        value: &Value,
        at: &str,
        parse: impl Fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<(Option<Bound<T>>, Option<Bound<T>>)> {
        let Some(object) = value.as_object() else {
            self.push(at, "a range: an object with gt, gte, lt or lte");
            return None;
        };
        let before = self.0.total();
        self.unknown_fields(object, at, &["gt", "gte", "lt", "lte"]);
        let side = |exclusive: &str, inclusive: &str, this: &mut Self| -> Option<Bound<T>> {
            match (object.get(exclusive), object.get(inclusive)) {
                (Some(_), Some(_)) => {
                    this.push(format!("{at}/{inclusive}"), format!("give {exclusive} or {inclusive}, not both"));
                    None
                }
                (Some(x), None) => parse(this, x, &format!("{at}/{exclusive}")).map(|value| Bound { value, inclusive: false }),
                (None, Some(x)) => parse(this, x, &format!("{at}/{inclusive}")).map(|value| Bound { value, inclusive: true }),
                (None, None) => None,
            }
        };
        let lower = side("gt", "gte", self);
        let upper = side("lt", "lte", self);
        if object.is_empty() {
            self.push(at, "a range needs gt, gte, lt or lte");
        }
        if let (Some(l), Some(u)) = (lower, upper) {
            let empty = if l.inclusive && u.inclusive { l.value > u.value } else { l.value >= u.value };
            if empty {
                self.push(at, "the range is empty: its lower bound is above its upper bound");
            }
        }
        (self.0.total() == before).then_some((lower, upper))
    }

    /// A cost-share filter: `deductible` and `copay` ranges (plus `extra` known fields).
    fn cost_shares(&mut self, value: &Value, at: &str, extra: &[&str]) -> Option<CostShares> {
        let Some(object) = value.as_object() else {
            self.push(at, "an object");
            return None;
        };
        let mut known = vec!["deductible", "copay"];
        known.extend_from_slice(extra);
        self.unknown_fields(object, at, &known);
        let deductible = object.get("deductible").and_then(|x| self.range(x, &format!("{at}/deductible")));
        let copay = object.get("copay").and_then(|x| self.range(x, &format!("{at}/copay")));
        Some(CostShares { deductible, copay })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(body: Value) -> Vec<String> {
        SearchQuery::from_json(&body).unwrap_err().into_iter().map(|v| v.pointer).collect()
    }

    #[test]
    fn the_issue_example_parses() {
        let query = SearchQuery::from_json(&json!({
            "planType": "inNetwork",
            "org": "example.com",
            "creationDate": {"gte": "2017-01-01", "lte": "12-31-2017"},
            "planCostShares": {"deductible": {"gte": 1000}, "copay": {"gte": 1, "lt": 50}},
            "service": {"name": "Physical", "copay": {"lte": 20}, "deductible": {"gte": 0}},
            "text": "well baby",
            "size": 20
        }))
        .unwrap();
        let f = &query.filters;
        assert_eq!(f.plan_type.as_deref(), Some("inNetwork"));
        assert_eq!(f.creation_date.unwrap().lower.unwrap().value, day_number("2017-01-01").unwrap());
        assert_eq!(f.creation_date.unwrap().upper.unwrap().value, day_number("2017-12-31").unwrap());
        let copay = f.plan_cost_shares.as_ref().unwrap().copay.unwrap();
        assert!(copay.contains(1.0) && copay.contains(49.99) && !copay.contains(50.0) && !copay.contains(0.5));
        assert_eq!(f.service.as_ref().unwrap().name.as_ref().unwrap().words, ["physical"]);
        assert_eq!(f.text.as_ref().unwrap().words, ["baby", "well"]);
        assert_eq!(query.size, 20);
        assert_eq!(SearchQuery::from_json(&json!({})).unwrap().size, DEFAULT_SIZE);
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let mut got = pointers(json!({
            "color": "red",
            "planType": "",
            "creationDate": {"gte": "2017-02-30"},
            "planCostShares": {"copay": {"gte": 5, "gt": 4}, "deductible": {"lte": "x"}, "oops": 1},
            "service": {"copay": {"gte": 50, "lte": 10}, "name": "!!"},
            "text": 3,
            "size": 0,
            "cursor": "not-a-cursor"
        }));
        got.sort();
        assert_eq!(
            got,
            [
                "/color",
                "/creationDate/gte",
                "/cursor",
                "/planCostShares/copay/gte",
                "/planCostShares/deductible/lte",
                "/planCostShares/oops",
                "/planType",
                "/service/copay",
                "/service/name",
                "/size",
                "/text"
            ]
        );
        assert_eq!(pointers(json!([1])), [""]);
        assert_eq!(pointers(json!({"service": {"copay": {}}})), ["/service/copay"]);
        assert_eq!(pointers(json!({"service": {"copay": {"gt": 5, "lt": 5}}})), ["/service/copay"]);
        assert_eq!(pointers(json!({"size": 101})), ["/size"]);
        assert_eq!(pointers(json!({"size": "5"})), ["/size"]);
    }

    #[test]
    fn a_flood_of_unknown_keys_lists_the_first_hundred_and_counts_all() {
        let body: Map<String, Value> = (0..90_000).map(|i| (format!("k{i}"), Value::from(1))).collect();
        let violations = SearchQuery::from_json(&Value::Object(body)).unwrap_err();
        assert_eq!(violations.total(), 90_000);
        assert_eq!(violations.listed().len(), plan::validate::MAX_LISTED_VIOLATIONS);
        let params: Vec<(String, String)> = (0..5_000).map(|i| (format!("p{i}"), String::new())).collect();
        let violations = SearchQuery::from_params(&params).unwrap_err();
        assert_eq!((violations.total(), violations.listed().len()), (5_000, 100));
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_filters() {
        let query = SearchQuery::from_json(&json!({"planType": "inNetwork", "size": 5})).unwrap();
        let key = SortKey::new(17_512, ObjectId::parse("plan-1").unwrap());
        let cursor = query.cursor_after(&key);
        let next = SearchQuery::from_json(&json!({"planType": "inNetwork", "size": 7, "cursor": cursor})).unwrap();
        assert_eq!(next.after, Some(key));
        assert_eq!(pointers(json!({"planType": "outOfNetwork", "cursor": cursor})), ["/cursor"]);
        let params = [("planType".to_owned(), "inNetwork".to_owned()), ("cursor".to_owned(), cursor)];
        assert!(SearchQuery::from_params(&params).unwrap().after.is_some(), "GET and POST cursors are interchangeable");
    }

    #[test]
    fn query_parameters() {
        let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let query = SearchQuery::from_params(&p(&[("serviceName", "physical"), ("maxCopay", "20"), ("size", "3")])).unwrap();
        let service = query.filters.service.unwrap();
        assert_eq!(service.name.unwrap().words, ["physical"]);
        assert!(service.cost_shares.copay.unwrap().contains(20.0));
        assert!(!service.cost_shares.copay.unwrap().contains(20.5));
        assert_eq!(query.size, 3);
        let errors = SearchQuery::from_params(&p(&[("minCopay", "x"), ("foo", "1"), ("org", "a"), ("org", "b")])).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/foo", "/org", "/minCopay"]);
        assert_eq!(SearchQuery::from_params(&p(&[("minCopay", "9"), ("maxCopay", "1")])).unwrap_err()[0].pointer, "/minCopay");
    }

    #[test]
    fn day_numbers() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("12-12-2017"), day_number("2017-12-12"));
        assert_eq!(day_string(day_number("02-29-2024").unwrap()), "2024-02-29");
        assert_eq!(day_number("2017-13-01"), None);
    }
}
