//! Object identifiers: parsed once at the edge, so no key or query can be built from an unchecked id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest id accepted; keeps every Redis key and log line bounded.
pub const MAX_ID_LEN: usize = 128;

/// An `objectId`: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`, unique across all plans.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an objectId is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")]
pub struct InvalidObjectId;

impl ObjectId {
    pub fn parse(raw: &str) -> Result<Self, InvalidObjectId> {
        let bytes = raw.as_bytes();
        let valid_first = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
        let valid_rest = bytes.iter().skip(1).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid_first && valid_rest && bytes.len() <= MAX_ID_LEN { Ok(Self(raw.to_owned())) } else { Err(InvalidObjectId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for ObjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_sample_ids() {
        for id in ["12xvxc345ssdsds-508", "1234vxc2324sdf-501", "a", "A.b_c-9"] {
            assert_eq!(ObjectId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_what_could_inject_into_a_key_or_query() {
        let too_long = "a".repeat(MAX_ID_LEN + 1);
        for id in ["", "-a", ".a", "_a", "a b", "a{b}", "a:b", "a*", "a/b", "é", too_long.as_str()] {
            assert_eq!(ObjectId::parse(id), Err(InvalidObjectId), "{id:?}");
        }
        assert!(ObjectId::parse(&"a".repeat(MAX_ID_LEN)).is_ok());
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_schema_pattern(raw in "\\PC{0,140}") {
            let pattern_ok = raw.len() <= MAX_ID_LEN
                && raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && raw.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            prop_assert_eq!(ObjectId::parse(&raw).is_ok(), pattern_ok);
        }

        #[test]
        fn valid_ids_round_trip(raw in "[A-Za-z0-9][A-Za-z0-9._-]{0,127}") {
            prop_assert_eq!(ObjectId::parse(&raw).unwrap().to_string(), raw);
        }
    }
}
