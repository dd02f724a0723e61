//! The one table of characters that must never reach a terminal, a log line, an
//! error message or a stored value raw, and the escaping helpers built on it.
//!
//! Every place that shows or stores text from outside (log lines, `ledger`
//! tables and JSON, HTTP error bodies, the raw text policy keeps of a value it
//! could not normalise) asks [`is_unsafe`]; only how a character is made safe
//! differs (escaped visibly, or flattened away). One table, so the sets cannot
//! drift apart: this is a security property (terminal control sequences, bidi
//! spoofing of file names and domains, log-line forging).
//!
//! Pure: no I/O, imports nothing from the crate.

use std::borrow::Cow;

/// The classes of [`is_unsafe`], each with a representative range; the unit
/// test walks every one.
pub const CLASSES: [(&str, char, char); 13] = [
    (
        "C0 controls (incl. ESC, the ANSI introducer)",
        '\u{0}',
        '\u{1f}',
    ),
    ("DEL", '\u{7f}', '\u{7f}'),
    ("C1 controls (incl. CSI U+9B, NEL U+85)", '\u{80}', '\u{9f}'),
    ("soft hyphen (invisible)", '\u{ad}', '\u{ad}'),
    ("Arabic letter mark (bidi)", '\u{61c}', '\u{61c}'),
    (
        "Mongolian vowel separator (invisible)",
        '\u{180e}',
        '\u{180e}',
    ),
    (
        "zero-width space/non-joiner/joiner, LRM, RLM",
        '\u{200b}',
        '\u{200f}',
    ),
    ("line and paragraph separators", '\u{2028}', '\u{2029}'),
    ("bidi embeddings and overrides", '\u{202a}', '\u{202e}'),
    ("word joiner, invisible operators", '\u{2060}', '\u{2065}'),
    ("bidi isolates", '\u{2066}', '\u{2069}'),
    ("zero-width no-break space (BOM)", '\u{feff}', '\u{feff}'),
    ("interlinear annotation controls", '\u{fff9}', '\u{fffb}'),
];

/// True for a character that must never be shown or stored raw: C0 and C1
/// controls (which hold the ANSI escape introducers ESC and CSI), DEL, the bidi
/// marks, embeddings, overrides and isolates, zero-width and other invisible
/// format characters, and the line and paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

/// A line break in the wide sense: what [`flatten`] turns into a space.
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `s` with every [`is_unsafe`] character written as `\u{hex}` (tables and
/// terminal output of stored values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` with every [`is_unsafe`] character written as a visible escape (`\n`,
/// `\r`, `\t`, otherwise `\u{hex}`), borrowed when nothing needed escaping (log
/// lines: one event stays on one line).
pub fn escape_log(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `s` on one line: line breaks and tabs become
/// spaces, every other [`is_unsafe`] character is dropped (server text that
/// ends up in error messages).
pub fn flatten(s: &str, max: usize) -> String {
    s.chars()
        .filter_map(|c| match c {
            c if is_break(c) => Some(' '),
            c if is_unsafe(c) => None,
            c => Some(c),
        })
        .take(max)
        .collect()
}

/// JSON text (as serde_json writes it) with the [`is_unsafe`] characters it
/// leaves raw (DEL, C1, bidi, zero-width, separators) escaped as `\uXXXX`. They
/// can only occur inside JSON strings, where the escape means the same
/// character, so the document parses to the same value. Borrowed when clean.
pub fn json_safe(raw: &[u8]) -> Cow<'_, [u8]> {
    // serde_json escapes C0 itself; everything left is DEL or non-ASCII.
    let needs = raw.iter().any(|b| *b >= 0x7f);
    let Ok(text) = std::str::from_utf8(raw) else {
        return raw.into();
    };
    if !needs || !text.chars().any(is_unsafe) {
        return raw.into();
    }
    let mut s = String::with_capacity(raw.len() + 16);
    for c in text.chars() {
        // Every unsafe character is in the BMP, so one \uXXXX is enough.
        if is_unsafe(c) && !c.is_ascii_control() || c == '\u{7f}' {
            s.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            s.push(c);
        }
    }
    s.into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character of every class, plus the neighbours just outside it.
    fn every_unsafe() -> Vec<char> {
        CLASSES.iter().flat_map(|(_, lo, hi)| *lo..=*hi).collect()
    }

    #[test]
    fn every_class_is_unsafe_and_its_neighbours_are_not() {
        for (name, lo, hi) in CLASSES {
            for c in lo..=hi {
                assert!(is_unsafe(c), "{name}: {c:?}");
            }
        }
        let safe = [
            ' ', 'a', '~', '\u{a0}', '\u{ac}', '\u{ae}', 'é', '中', 'п', '\u{200a}', '\u{2027}',
            '\u{202f}', '\u{205f}', '\u{206a}', '\u{fefe}', '\u{fff8}', '\u{fffc}', '\u{fffd}',
            '😀',
        ];
        for c in safe {
            assert!(!is_unsafe(c), "{c:?} is not in the table");
        }
        // The table in CLASSES and the match in is_unsafe are the same set.
        let listed = every_unsafe();
        let matched: Vec<char> = ('\0'..='\u{ffff}').filter(|c| is_unsafe(*c)).collect();
        assert_eq!(listed, matched);
    }

    #[test]
    fn every_helper_leaves_no_unsafe_character() {
        for c in every_unsafe() {
            let s = format!("a{c}b");
            assert!(!escape(&s).chars().any(is_unsafe), "escape {c:?}");
            assert!(!escape_log(&s).chars().any(is_unsafe), "escape_log {c:?}");
            assert!(!flatten(&s, 10).chars().any(is_unsafe), "flatten {c:?}");
            let json = serde_json::to_vec(&serde_json::json!({ "v": s })).unwrap();
            let safe = json_safe(&json);
            let text = std::str::from_utf8(&safe).unwrap();
            assert!(!text.chars().any(is_unsafe), "json_safe {c:?}: {text}");
            let back: serde_json::Value = serde_json::from_slice(&safe).unwrap();
            assert_eq!(back["v"], s.as_str());
        }
    }

    #[test]
    fn helpers_table() {
        // (input, escape, escape_log, flatten(…, 200))
        let cases = [
            ("plain é 中", "plain é 中", "plain é 中", "plain é 中"),
            (
                "a\r\nb\tc",
                "a\\u{d}\\u{a}b\\u{9}c",
                "a\\r\\nb\\tc",
                "a  b c",
            ),
            (
                "\u{1b}[2J\u{1b}]0;pwned\u{7}",
                "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}",
                "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}",
                "[2J]0;pwned",
            ),
            ("csi\u{9b}31m", "csi\\u{9b}31m", "csi\\u{9b}31m", "csi31m"),
            ("del\u{7f}", "del\\u{7f}", "del\\u{7f}", "del"),
            (
                "bidi\u{202e}txt",
                "bidi\\u{202e}txt",
                "bidi\\u{202e}txt",
                "biditxt",
            ),
            (
                "iso\u{2066}x\u{2069}",
                "iso\\u{2066}x\\u{2069}",
                "iso\\u{2066}x\\u{2069}",
                "isox",
            ),
            (
                "zw\u{200b}\u{feff}",
                "zw\\u{200b}\\u{feff}",
                "zw\\u{200b}\\u{feff}",
                "zw",
            ),
            (
                "l\u{2028}p\u{2029}n\u{85}",
                "l\\u{2028}p\\u{2029}n\\u{85}",
                "l\\u{2028}p\\u{2029}n\\u{85}",
                "l p n ",
            ),
        ];
        for (raw, esc, log, flat) in cases {
            assert_eq!(escape(raw), esc, "{raw:?}");
            assert_eq!(escape_log(raw), log, "{raw:?}");
            assert_eq!(flatten(raw, 200), flat, "{raw:?}");
        }
        assert!(matches!(escape_log("clean"), Cow::Borrowed(_)));
        assert_eq!(flatten("abcdef", 3), "abc");
        let plain = serde_json::to_vec(&serde_json::json!({"v": "ok пример"})).unwrap();
        assert!(matches!(json_safe(&plain), Cow::Borrowed(_)));
    }

    /// The places that show or store outside text all use this table: log lines,
    /// HTTP error bodies, policy's forbidden characters and stored raw text,
    /// and the `ledger` tables (which call [`escape`] directly).
    #[test]
    fn logging_http_policy_and_tables_agree() {
        for c in every_unsafe() {
            let s = format!("x{c}y");
            assert!(!crate::logging::sanitize(&s).contains(c), "log {c:?}");
            assert!(!crate::http::sanitize(&s, 100).contains(c), "http {c:?}");
            assert!(crate::policy::is_forbidden_char(c), "policy {c:?}");
            assert!(!crate::policy::safe_raw(&s).contains(c), "safe_raw {c:?}");
            assert!(!escape(&s).contains(c), "table {c:?}");
        }
        for c in ['a', 'é', '中', '.', '-'] {
            let s = format!("x{c}y");
            assert_eq!(crate::logging::sanitize(&s), s);
            assert_eq!(crate::http::sanitize(&s, 100), s);
            assert!(!crate::policy::is_forbidden_char(c));
            assert_eq!(escape(&s), s);
        }
    }
}
