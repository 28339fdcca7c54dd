//! Words of a text, as OpenSearch's `standard` analyzer makes them: Unicode word boundaries
//! (UAX #29, the rules that matter for names) and lower case. The embedded index analyses with
//! this, and the OpenSearch adapter sends the words it yields as exact terms, so both backends
//! compare the same words. The contract suite checks it against the cluster's `_analyze`.
//!
//! Known simplifications: ideographs and hiragana are one word per character, as in Lucene;
//! South-East Asian scripts stay whole runs; emoji are single-character words; the general
//! category of digits is approximated.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Katakana,
    /// A word on its own: ideographs, hiragana, emoji.
    Single,
    /// `_` and the other connectors: join anything (WB13a/b).
    ExtendNumLet,
    /// Between two letters (WB6/7).
    MidLetter,
    /// Between two digits (WB11/12).
    MidNum,
    /// Between two letters or two digits.
    MidNumLet,
    /// Combining marks and joiners: belong to the character before (WB4).
    Extend,
    Other,
}

fn class(c: char) -> Class {
    let u = u32::from(c);
    match c {
        '_' | '\u{203F}' | '\u{2040}' | '\u{2054}' | '\u{FE33}' | '\u{FE34}' | '\u{FE4D}'..='\u{FE4F}' | '\u{FF3F}' | '\u{202F}' => {
            Class::ExtendNumLet
        }
        ':' | '\u{00B7}' | '\u{0387}' | '\u{055F}' | '\u{05F4}' | '\u{2027}' | '\u{FE13}' | '\u{FE55}' | '\u{FF1A}' => Class::MidLetter,
        '.' | '\'' | '\u{2018}' | '\u{2019}' | '\u{2024}' | '\u{FE52}' | '\u{FF07}' | '\u{FF0E}' => Class::MidNumLet,
        ',' | ';' | '\u{037E}' | '\u{0589}' | '\u{060C}' | '\u{060D}' | '\u{066C}' | '\u{07F8}' | '\u{2044}' | '\u{FE10}' | '\u{FE14}'
        | '\u{FE50}' | '\u{FE54}' | '\u{FF0C}' | '\u{FF1B}' => Class::MidNum,
        _ if matches!(u, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F | 0xFE00..=0xFE0F | 0x200C | 0x200D) => {
            Class::Extend
        }
        _ if matches!(u, 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F) => Class::Katakana,
        _ if matches!(u, 0x3040..=0x309F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF) => Class::Single,
        _ if matches!(u, 0x1F000..=0x1FAFF | 0x2600..=0x27BF) => Class::Single,
        _ if c.is_alphabetic() => Class::Letter,
        _ if c.is_numeric() && !is_other_number(u) => Class::Digit,
        _ => Class::Other,
    }
}

/// Numbers that are not decimal digits (superscripts, fractions, circled numbers): no word.
fn is_other_number(u: u32) -> bool {
    matches!(
        u,
        0xB2 | 0xB3 | 0xB9 | 0xBC..=0xBE | 0x2070..=0x209F | 0x2150..=0x218F | 0x2460..=0x24FF | 0x2776..=0x2793 | 0x3192..=0x3195
            | 0x3220..=0x3229 | 0x3248..=0x325F | 0x3280..=0x3289 | 0x32B1..=0x32BF | 0x1F100..=0x1F10C
    )
}

/// Java's one-to-one lower-casing, which Lucene uses: `İ` becomes `i`, not `i̇`.
fn push_lower(out: &mut String, c: char) {
    if c == '\u{0130}' {
        out.push('i');
    } else {
        out.extend(c.to_lowercase());
    }
}

/// The words of `text`, lower-cased, in order, repeats kept.
pub fn words(text: &str) -> Vec<String> {
    let chars: Vec<(char, Class)> = text.chars().map(|c| (c, class(c))).collect();
    let mut out = Vec::new();
    let mut word = String::new();
    // The class of the last letter, digit, katakana or connector in `word`.
    let mut last: Option<Class> = None;
    let mut has_core = false;
    let flush = |word: &mut String, last: &mut Option<Class>, has_core: &mut bool, out: &mut Vec<String>| {
        if *has_core {
            out.push(std::mem::take(word));
        }
        word.clear();
        *last = None;
        *has_core = false;
    };
    let next_core = |from: usize| chars.iter().skip(from).map(|(_, k)| *k).find(|k| *k != Class::Extend);
    for (i, &(c, k)) in chars.iter().enumerate() {
        match k {
            Class::Extend => {
                if last.is_some() {
                    word.push(c);
                }
            }
            Class::Single => {
                flush(&mut word, &mut last, &mut has_core, &mut out);
                push_lower(&mut word, c);
                has_core = true;
                flush(&mut word, &mut last, &mut has_core, &mut out);
            }
            Class::Letter | Class::Digit | Class::Katakana | Class::ExtendNumLet => {
                let joins = match (last, k) {
                    (None, _) => false,
                    (Some(Class::ExtendNumLet), _) | (Some(_), Class::ExtendNumLet) => true,
                    (Some(Class::Katakana), Class::Katakana) => true,
                    (Some(Class::Letter | Class::Digit), Class::Letter | Class::Digit) => true,
                    _ => false,
                };
                if !joins {
                    flush(&mut word, &mut last, &mut has_core, &mut out);
                }
                push_lower(&mut word, c);
                has_core |= k != Class::ExtendNumLet;
                last = Some(k);
            }
            Class::MidLetter | Class::MidNum | Class::MidNumLet => {
                let next = next_core(i + 1);
                let joins = match (last, next) {
                    (Some(Class::Letter), Some(Class::Letter)) => matches!(k, Class::MidLetter | Class::MidNumLet),
                    (Some(Class::Digit), Some(Class::Digit)) => matches!(k, Class::MidNum | Class::MidNumLet),
                    _ => false,
                };
                if joins {
                    word.push(c);
                } else {
                    flush(&mut word, &mut last, &mut has_core, &mut out);
                }
            }
            Class::Other => flush(&mut word, &mut last, &mut has_core, &mut out),
        }
    }
    flush(&mut word, &mut last, &mut has_core, &mut out);
    out
}

/// The distinct words of `text`, sorted.
pub fn word_set(text: &str) -> Vec<String> {
    let mut words = words(text);
    words.sort_unstable();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as OpenSearch's standard analyzer answered it (osmem-server and OpenSearch agree).
    const CASES: &[(&str, &[&str])] = &[
        ("Yearly physical", &["yearly", "physical"]),
        ("well baby", &["well", "baby"]),
        ("U.S.A. plan", &["u.s.a", "plan"]),
        ("3.5 copay", &["3.5", "copay"]),
        ("don't stop", &["don't", "stop"]),
        ("well-baby care", &["well", "baby", "care"]),
        ("Ünïcode ÉCOLE", &["ünïcode", "école"]),
        ("x_y z", &["x_y", "z"]),
        ("PT/OT", &["pt", "ot"]),
        ("co-pay 1,000.50", &["co", "pay", "1,000.50"]),
        ("rock'n'roll", &["rock'n'roll"]),
        ("ab1.cd2", &["ab1", "cd2"]),
        ("1.a", &["1", "a"]),
        ("v1.2.3", &["v1.2.3"]),
        ("İstanbul", &["istanbul"]),
        ("x__y", &["x__y"]),
        ("hello...world", &["hello", "world"]),
        ("a:b c", &["a:b", "c"]),
        ("_x y_", &["_x", "y_"]),
        ("_", &[]),
        ("カタカナ ひらがな", &["カタカナ", "ひ", "ら", "が", "な"]),
        ("日本語", &["日", "本", "語"]),
        ("한국어 단어", &["한국어", "단어"]),
        ("dogs' toys", &["dogs", "toys"]),
        ("'quoted'", &["quoted"]),
        ("e.g.", &["e.g"]),
        ("1.5x", &["1.5x"]),
        ("x1,000", &["x1,000"]),
        ("a,b", &["a", "b"]),
        ("ΣΑΣ", &["σασ"]),
        ("l’école", &["l’école"]),
        ("1'000", &["1'000"]),
        ("¼ cup", &["cup"]),
        ("x²", &["x"]),
        ("  ", &[]),
    ];

    #[test]
    fn agrees_with_the_standard_analyzer() {
        for (text, expected) in CASES {
            assert_eq!(words(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn word_sets_are_sorted_and_distinct() {
        assert_eq!(word_set("b a B a"), ["a", "b"]);
    }
}
