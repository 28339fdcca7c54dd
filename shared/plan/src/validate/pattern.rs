//! The schema's `pattern` keyword for the compiled-in validator, matched with DFAs made when the
//! crate is built.
//!
//! jsonschema's compiled validator matches `pattern` with the `regex` crate, compiling each pattern
//! at its first use, so every writing function linked a whole regex compiler: regex-syntax with
//! its Unicode tables, regex-automata's engines, aho-corasick and the relocations of their pointer
//! tables, about 1.5 MB of each bootstrap for three ASCII patterns. Here build.rs compiles the
//! patterns ahead of time into dense DFAs (regex-automata's serialization, made for this), and at
//! run time a DFA is only deserialized (validated, not copied) and searched: one table lookup per
//! byte of the string, no compiler linked. The validator is compiled from
//! `schema/plan.compiled.schema.json`, which is the served schema with each `pattern` renamed to
//! [`KEYWORD`] (a unit test checks that the two files say that, and no more), and this keyword
//! reports a mismatch exactly as jsonschema's own `pattern` does.

use jsonschema::paths::Location;
use jsonschema::{Keyword, ValidationError};
use regex_automata::Input;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense::DFA;
use regex_automata::util::wire::AlignAs;
use serde_json::{Map, Value};

include!(concat!(env!("OUT_DIR"), "/patterns.rs"));

/// The name `pattern` has in the compiled schema.
pub(super) const KEYWORD: &str = "x-pattern";

/// A pattern's DFA and its source, which mismatch messages quote.
struct Pattern {
    source: &'static str,
    dfa: DFA<&'static [u32]>,
}

/// Builds the keyword for one `x-pattern` of the compiled schema (run once per pattern, at its
/// first use: the schema is a constant, so a pattern build.rs did not compile fails every test).
pub(super) fn factory<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let wanted = value.as_str().ok_or_else(|| ValidationError::schema(format!("{KEYWORD} must be a string")))?;
    let (source, bytes) = PATTERNS
        .iter()
        .find(|(source, _)| *source == wanted)
        .ok_or_else(|| ValidationError::schema(format!("{KEYWORD} {wanted:?} is not a pattern of the served schema")))?;
    let (dfa, _) = DFA::from_bytes(&bytes.bytes).map_err(|e| ValidationError::schema(format!("{KEYWORD} {source:?}: {e}")))?;
    Ok(Box::new(Pattern { source, dfa }))
}

impl<'i> Keyword<'i> for Pattern {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        // jsonschema's message for `pattern`: the instance as JSON, then the pattern. The
        // instance is cut at the violation's own limit: a message never quotes a long value.
        let quoted = super::display_clipped(instance, super::MAX_MESSAGE_CHARS);
        Err(ValidationError::custom(format!(r#"{quoted} does not match "{}""#, self.source)))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        // Like `pattern`, it says nothing about what is not a string. A search can fail only on
        // quit bytes or a Unicode word boundary, which build.rs's DFAs do not have; a failure
        // would count as a mismatch.
        instance.as_str().is_none_or(|text| matches!(self.dfa.try_search_fwd(&Input::new(text).earliest(true)), Ok(Some(_))))
    }
}
