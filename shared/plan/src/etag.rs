//! Entity tags and conditional requests (RFC 9110 §8.8.3 and §13).

use std::fmt;

use sha2::{Digest, Sha256};

/// An entity tag. Ours are always strong; clients may send weak ones, which only weak comparison
/// (If-None-Match) can match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag {
    weak: bool,
    opaque: String,
}

impl ETag {
    /// The strong tag of a representation: 128 bits of its SHA-256, so equal bytes, equal tag.
    pub fn of(representation: &[u8]) -> Self {
        let digest = Sha256::digest(representation);
        let opaque = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self { weak: false, opaque }
    }

    /// Parses one stored or header tag such as `"abc"` or `W/"abc"`.
    pub fn parse(raw: &str) -> Result<Self, InvalidEntityTag> {
        let (weak, quoted) = match raw.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let opaque =
            quoted.strip_prefix('"').and_then(|r| r.strip_suffix('"')).filter(|o| o.bytes().all(is_etagc)).ok_or(InvalidEntityTag)?;
        Ok(Self { weak, opaque: opaque.to_owned() })
    }

    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// Strong comparison: both strong and the same opaque tag.
    pub fn strong_eq(&self, other: &ETag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque tag, weak or not.
    pub fn weak_eq(&self, other: &ETag) -> bool {
        self.opaque == other.opaque
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

/// `etagc = %x21 / %x23-7E / obs-text`
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an entity-tag: expected \"tag\", W/\"tag\", a comma-separated list of them, or *")]
pub struct InvalidEntityTag;

/// The value of an If-Match or If-None-Match header: `*` or a list of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    Any,
    Tags(Vec<ETag>),
}

impl TagCondition {
    /// Parses every occurrence of the header (a list may be split over several field lines).
    pub fn parse<'a>(field_lines: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidEntityTag> {
        let mut tags = Vec::new();
        let mut any = false;
        for line in field_lines {
            for element in split_list(line)? {
                if element == "*" {
                    any = true;
                } else {
                    tags.push(ETag::parse(element)?);
                }
            }
        }
        match (any, tags.is_empty()) {
            (true, true) => Ok(Self::Any),
            // `#entity-tag` allows an empty list (RFC 9110 §5.6.1): a condition no tag matches,
            // so an empty If-None-Match lets every request through and an empty If-Match none.
            (false, _) => Ok(Self::Tags(tags)),
            // "*" mixed with tags is not a valid field value.
            (true, false) => Err(InvalidEntityTag),
        }
    }

    /// If-Match: strong comparison against the current representation, if there is one.
    pub fn matches_strong(&self, current: Option<&ETag>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(current)) => tags.iter().any(|t| t.strong_eq(current)),
        }
    }

    /// If-None-Match: weak comparison against the current representation, if there is one.
    pub fn matches_weak(&self, current: Option<&ETag>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(current)) => tags.iter().any(|t| t.weak_eq(current)),
        }
    }
}

/// Splits a list field on commas outside quoted strings, dropping empty elements and optional
/// whitespace (RFC 9110 §5.6.1). A comma may appear inside an opaque tag.
fn split_list(line: &str) -> Result<Vec<&str>, InvalidEntityTag> {
    let mut elements = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                elements.push(line[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(InvalidEntityTag);
    }
    elements.push(line[start..].trim_matches([' ', '\t']));
    Ok(elements.into_iter().filter(|e| !e.is_empty()).collect())
}

/// The conditional headers of one request, already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<TagCondition>,
    pub if_none_match: Option<TagCondition>,
}

/// What a read should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Send,
    NotModified,
    PreconditionFailed,
}

impl Preconditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// RFC 9110 §13.2.2 for a state-changing method: If-Match first, then If-None-Match.
    /// `current` is the tag of the target as it is now, `None` when it does not exist.
    pub fn allow_write(&self, current: Option<&ETag>) -> bool {
        if let Some(condition) = &self.if_match
            && !condition.matches_strong(current)
        {
            return false;
        }
        match &self.if_none_match {
            Some(condition) => !condition.matches_weak(current),
            None => true,
        }
    }

    /// RFC 9110 §13.2.2 for GET: a failed If-Match is 412, a matching If-None-Match is 304.
    pub fn for_read(&self, current: &ETag) -> ReadOutcome {
        if let Some(condition) = &self.if_match
            && !condition.matches_strong(Some(current))
        {
            return ReadOutcome::PreconditionFailed;
        }
        match &self.if_none_match {
            Some(condition) if condition.matches_weak(Some(current)) => ReadOutcome::NotModified,
            _ => ReadOutcome::Send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(s: &str) -> ETag {
        ETag::parse(s).unwrap()
    }

    fn cond(s: &str) -> TagCondition {
        TagCondition::parse([s]).unwrap()
    }

    #[test]
    fn tags_of_equal_bytes_are_equal_and_strong() {
        let a = ETag::of(b"{\"a\":1}");
        assert_eq!(a, ETag::of(b"{\"a\":1}"));
        assert_ne!(a, ETag::of(b"{\"a\":2}"));
        assert!(!a.is_weak());
        assert_eq!(a.to_string().len(), 34);
        assert_eq!(tag(&a.to_string()), a);
    }

    #[test]
    fn entity_tag_grammar() {
        assert_eq!(tag("\"xyzzy\"").to_string(), "\"xyzzy\"");
        assert!(tag("W/\"xyzzy\"").is_weak());
        assert_eq!(tag("\"\"").to_string(), "\"\"");
        for bad in ["xyzzy", "\"unterminated", "w/\"lower\"", "\"a\"b\"", "\"sp ace\"", "W/ \"x\""] {
            assert_eq!(ETag::parse(bad), Err(InvalidEntityTag), "{bad}");
        }
    }

    #[test]
    fn lists_stars_and_split_field_lines() {
        assert_eq!(cond("*"), TagCondition::Any);
        assert_eq!(cond(" \"a\" ,W/\"b\", ,\"c,d\""), TagCondition::Tags(vec![tag("\"a\""), tag("W/\"b\""), tag("\"c,d\"")]));
        assert_eq!(TagCondition::parse(["\"a\"", "\"b\""]).unwrap(), TagCondition::Tags(vec![tag("\"a\""), tag("\"b\"")]));
        for empty in ["", " , ", ","] {
            assert_eq!(TagCondition::parse([empty]).unwrap(), TagCondition::Tags(Vec::new()), "{empty:?}");
        }
        let nothing = Preconditions { if_match: None, if_none_match: Some(cond("")) };
        assert_eq!(nothing.for_read(&tag("\"v1\"")), ReadOutcome::Send, "an empty If-None-Match matches nothing");
        assert!(nothing.allow_write(Some(&tag("\"v1\""))));
        let none_match = Preconditions { if_match: Some(cond("")), if_none_match: None };
        assert!(!none_match.allow_write(Some(&tag("\"v1\""))), "an empty If-Match matches nothing");
        for bad in ["*, \"a\"", "\"a", "a"] {
            assert!(TagCondition::parse([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strong_and_weak_comparison_follow_rfc_9110_table() {
        // RFC 9110 §8.8.3.2 example table.
        let (w1, w2, s1) = (tag("W/\"1\""), tag("W/\"2\""), tag("\"1\""));
        assert!(!w1.strong_eq(&w1) && w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2) && !w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1) && w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1) && s1.weak_eq(&s1));
    }

    #[test]
    fn write_preconditions() {
        let current = tag("\"v1\"");
        let p = |m: Option<&str>, n: Option<&str>| Preconditions { if_match: m.map(cond), if_none_match: n.map(cond) };
        assert!(p(None, None).allow_write(Some(&current)));
        assert!(p(Some("\"v1\""), None).allow_write(Some(&current)));
        assert!(p(Some("\"v0\", \"v1\""), None).allow_write(Some(&current)));
        assert!(!p(Some("W/\"v1\""), None).allow_write(Some(&current)), "If-Match is strong");
        assert!(!p(Some("\"v0\""), None).allow_write(Some(&current)));
        assert!(p(Some("*"), None).allow_write(Some(&current)));
        assert!(!p(Some("*"), None).allow_write(None), "If-Match: * needs a current representation");
        assert!(p(None, Some("*")).allow_write(None), "create-only on an absent target");
        assert!(!p(None, Some("*")).allow_write(Some(&current)));
        assert!(!p(None, Some("W/\"v1\"")).allow_write(Some(&current)), "If-None-Match is weak");
    }

    #[test]
    fn read_preconditions() {
        let current = tag("\"v1\"");
        let p = |m: Option<&str>, n: Option<&str>| Preconditions { if_match: m.map(cond), if_none_match: n.map(cond) };
        assert_eq!(p(None, Some("W/\"v1\"")).for_read(&current), ReadOutcome::NotModified);
        assert_eq!(p(None, Some("\"a\", \"v1\"")).for_read(&current), ReadOutcome::NotModified);
        assert_eq!(p(None, Some("*")).for_read(&current), ReadOutcome::NotModified);
        assert_eq!(p(None, Some("\"v0\"")).for_read(&current), ReadOutcome::Send);
        assert_eq!(p(Some("\"v0\""), None).for_read(&current), ReadOutcome::PreconditionFailed);
        assert_eq!(p(None, None).for_read(&current), ReadOutcome::Send);
    }

    proptest! {
        #[test]
        fn any_list_of_tags_round_trips(tags in prop::collection::vec(("[!#-~]{0,20}", any::<bool>()), 1..6)) {
            let tags: Vec<ETag> = tags.into_iter().map(|(opaque, weak)| ETag { weak, opaque }).collect();
            let line = tags.iter().map(ToString::to_string).collect::<Vec<_>>().join(" , ");
            prop_assert_eq!(TagCondition::parse([line.as_str()]).unwrap(), TagCondition::Tags(tags));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(line in "\\PC{0,64}") {
            let _ = TagCondition::parse([line.as_str()]);
        }

        #[test]
        fn strong_match_implies_weak_match(a in "[a-z0-9]{1,8}", weak in any::<bool>()) {
            let current = ETag { weak: false, opaque: a.clone() };
            let condition = TagCondition::Tags(vec![ETag { weak, opaque: a }]);
            if condition.matches_strong(Some(&current)) {
                prop_assert!(condition.matches_weak(Some(&current)));
            }
            prop_assert!(condition.matches_weak(Some(&current)));
        }
    }
}
