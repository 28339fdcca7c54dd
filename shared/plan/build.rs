//! Reads what the code needs from the plan schema when the crate is built: every `pattern`,
//! compiled into a serialized DFA (regex-automata) for the compiled validator's `x-pattern`
//! keyword, which matches with it and links no regex compiler (src/validate/pattern.rs says why),
//! and the bound on `linkedPlanServices`. Each pattern is first translated from ECMA-262 as
//! jsonschema translates it for its own `regex` engine, so both accept the same strings; the unit
//! tests check that against jsonschema's runtime validator.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

use regex_automata::dfa::dense;
use serde_json::Value;

const SCHEMA: &str = "schema/plan.schema.json";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed={SCHEMA}");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(SCHEMA)?)?;
    let mut patterns = Vec::new();
    collect_patterns(&schema, &mut patterns);
    patterns.sort();
    patterns.dedup();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let big_endian = std::env::var("CARGO_CFG_TARGET_ENDIAN")? == "big";
    let mut table = String::from("/// Every pattern of the served schema and its DFA, made by build.rs.\n");
    table.push_str("static PATTERNS: &[(&str, &AlignAs<[u8], u32>)] = &[\n");
    for (n, pattern) in patterns.iter().enumerate() {
        let translated = jsonschema_regex::to_rust_regex(pattern).map_err(|()| format!("{SCHEMA}: pattern {pattern:?} is not ECMA-262"))?;
        let dfa = dense::Builder::new()
            .configure(dense::DFA::config().minimize(true))
            .build(&translated)
            .map_err(|e| format!("{SCHEMA}: pattern {pattern:?}: {e}"))?;
        let (bytes, pad) = if big_endian { dfa.to_bytes_big_endian() } else { dfa.to_bytes_little_endian() };
        let file = out_dir.join(format!("pattern-{n}.dfa"));
        std::fs::write(&file, bytes.get(pad..).ok_or("serialized DFA shorter than its padding")?)?;
        writeln!(table, "    ({pattern:?}, &AlignAs {{ _align: [], bytes: *include_bytes!({:?}) }}),", file.display())?;
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("patterns.rs"), table)?;

    let max_services = schema
        .pointer("/$defs/plan/properties/linkedPlanServices/maxItems")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{SCHEMA}: linkedPlanServices has no maxItems"))?;
    std::fs::write(
        out_dir.join("bounds.rs"),
        format!(
            "/// The schema's `maxItems` of `linkedPlanServices`, read by build.rs.\npub(crate) const MAX_PLAN_SERVICES: usize = {max_services};\n"
        ),
    )?;
    Ok(())
}

/// The string value of every `pattern` keyword, anywhere in the schema.
fn collect_patterns(value: &Value, patterns: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(pattern)) = map.get("pattern") {
                patterns.push(pattern.clone());
            }
            map.values().for_each(|v| collect_patterns(v, patterns));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, patterns)),
        _ => {}
    }
}
