//! Reading configuration from environment variables. Each adapter reads its own variables
//! (`from_vars` beside the adapter) with these helpers, and every problem goes into one list, so
//! that a process names all of them at once when it starts.

use std::collections::HashMap;

/// Where a process runs. Defaults differ: on Lambda real backends are mandatory and nothing is
/// created implicitly; locally the embedded backends and a one-broker Kafka are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Lambda,
    Local,
}

/// A variable's value: trimmed, and `None` when unset or empty.
pub fn var<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `raw` parsed with `parse`, `default` when unset; a value that does not parse is a problem
/// (`NAME: expected ..., got "..."`) and gives the default.
pub fn parse_or<T>(
    raw: Option<&str>,
    default: T,
    name: &str,
    expected: &str,
    problems: &mut Vec<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> T {
    match raw {
        None => default,
        Some(raw) => parse(raw).unwrap_or_else(|| {
            problems.push(format!("{name}: expected {expected}, got {raw:?}"));
            default
        }),
    }
}

/// `true`, `1`, `yes` / `false`, `0`, `no`, in any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Items of a comma- (or space-) separated list.
pub fn list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// Milliseconds within `range`, as a [`parse_or`] parser.
pub fn millis_in(range: std::ops::RangeInclusive<u64>) -> impl Fn(&str) -> Option<u64> {
    move |v| v.parse::<u64>().ok().filter(|ms| range.contains(ms))
}

/// Variables from name-value pairs: what tests and tools hand to a `from_vars` instead of the
/// process environment.
pub fn vars_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}
