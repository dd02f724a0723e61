//! What each detection carries besides the indicator: `detection.type`/`sub_type`/
//! `id` chosen by rule-name pattern, opt-in `mitre_codes` (technique ids in the
//! rule name) and opt-in `malwares` (the event's `threatName`). Pure code.
//!
//! The detection-types file (setting `detection_types_file`) holds one
//! `PATTERN = TYPE[:SUB_TYPE][,ID]` a line; `#` comments and blank lines are
//! ignored. PATTERN is matched against the whole rule name, case-insensitively,
//! with `*` (any run of characters) and `?` (one character); the first matching
//! line wins, so `* = playbook` as the last line sets the global default. Without
//! a match the type is `correlation`. TYPE is `correlation`, `playbook`,
//! `detection_rule` or `sandbox`; `detection_rule` needs a SUB_TYPE (`sigma`,
//! `yara`, `snort`) and an ID (psengine refuses it otherwise, spec §2.1).

/// The `detection.type` values CI accepts on submit.
pub const DETECTION_TYPES: [&str; 4] = ["correlation", "playbook", "detection_rule", "sandbox"];
/// The `detection.sub_type` values of `detection_rule` (spec §2.1, RF-KB).
pub const SUB_TYPES: [&str; 3] = ["sigma", "yara", "snort"];
/// `detection.type` when no line matches.
pub const DEFAULT_TYPE: &str = "correlation";

/// One line of the detection-types file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRule {
    /// Lower-cased glob.
    pattern: String,
    pub kind: &'static str,
    pub sub_type: Option<&'static str>,
    pub id: Option<String>,
}

/// Everything that shapes a detection beyond the ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    pub rules: Vec<TypeRule>,
    /// Send `mitre_codes` found in rule names.
    pub mitre_codes: bool,
    /// Send `malwares` from `threatName`.
    pub malwares: bool,
    /// `detection.type` when no rule matches (setting `detection_type`);
    /// `None` is [`DEFAULT_TYPE`].
    pub default_type: Option<&'static str>,
}

/// The `detection` object chosen for a rule name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen<'a> {
    pub kind: &'static str,
    pub sub_type: Option<&'static str>,
    pub id: Option<&'a str>,
}

impl Fields {
    /// The detection type, sub type and id for `rule_name`.
    pub fn detection(&self, rule_name: &str) -> Chosen<'_> {
        let name = rule_name.to_lowercase();
        self.rules
            .iter()
            .find(|r| glob(r.pattern.as_bytes(), name.as_bytes()))
            .map(|r| Chosen {
                kind: r.kind,
                sub_type: r.sub_type,
                id: r.id.as_deref(),
            })
            .unwrap_or(Chosen {
                kind: self.default_type.unwrap_or(DEFAULT_TYPE),
                sub_type: None,
                id: None,
            })
    }
}

/// `*` and `?` glob over bytes (patterns and names are lower-cased first).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// A bad line of the detection-types file: 1-based line number and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// Parses the detection-types file.
pub fn parse_type_rules(text: &str) -> Result<Vec<TypeRule>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| LineError {
            line: i + 1,
            reason,
        };
        out.push(parse_line(line).map_err(err)?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<TypeRule, String> {
    let (pattern, rhs) = line
        .rsplit_once('=')
        .ok_or_else(|| "expected PATTERN = TYPE[:SUB_TYPE][,ID]".to_string())?;
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err("the pattern is empty".into());
    }
    let (ty, id) = match rhs.split_once(',') {
        Some((t, id)) => (t.trim(), Some(id.trim())),
        None => (rhs.trim(), None),
    };
    let (ty, sub) = match ty.split_once(':') {
        Some((t, s)) => (t.trim(), Some(s.trim())),
        None => (ty, None),
    };
    let kind = DETECTION_TYPES
        .into_iter()
        .find(|t| *t == ty)
        .ok_or_else(|| format!("unknown detection type {ty:?} (expected correlation, playbook, detection_rule or sandbox)"))?;
    let sub_type =
        match sub {
            None => None,
            Some(s) => Some(SUB_TYPES.into_iter().find(|t| *t == s).ok_or_else(|| {
                format!("unknown sub type {s:?} (expected sigma, yara or snort)")
            })?),
        };
    if let Some(id) = id {
        if id.is_empty()
            || id.len() > 200
            || id.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(
                "the id must be non-empty visible text without spaces (at most 200 characters)"
                    .into(),
            );
        }
    }
    match (kind, sub_type, id) {
        ("detection_rule", None, _) | ("detection_rule", _, None) => Err(
            "detection_rule needs a sub type and an id, e.g. detection_rule:sigma,doc:r1U_LB"
                .into(),
        ),
        (k, Some(_), _) if k != "detection_rule" => Err(format!(
            "a sub type is only allowed with detection_rule, not {k}"
        )),
        _ => Ok(TypeRule {
            pattern: pattern.to_lowercase(),
            kind,
            sub_type,
            id: id.map(str::to_string),
        }),
    }
}

/// Strict ATT&CK technique ids in `text`, in order, without repeats: `T` +
/// 4 digits, optionally `.` + 3 digits, not inside a longer word (letters,
/// digits and `_` around it disqualify it).
pub fn mitre_codes(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let digits =
        |from: usize, n: usize| (from..from + n).all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let mut out: Vec<String> = Vec::new();
    for i in 0..b.len() {
        if b[i] != b'T' || (i > 0 && word(i - 1)) || !digits(i + 1, 4) {
            continue;
        }
        let end = if b.get(i + 5) == Some(&b'.') && digits(i + 6, 3) && !word(i + 9) {
            i + 9
        } else if !(word(i + 5) || (b.get(i + 5) == Some(&b'.') && word(i + 6))) {
            i + 5
        } else {
            continue;
        };
        let code = &text[i..end];
        if !out.iter().any(|c| c == code) {
            out.push(code.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mitre_table() {
        let cases: &[(&str, &[&str])] = &[
            ("AIE: T1059.001 PowerShell", &["T1059.001"]),
            ("T1071 and T1055", &["T1071", "T1055"]),
            ("(T1566.002)", &["T1566.002"]),
            ("T1059, T1059 again", &["T1059"]),
            ("end T1003.", &["T1003"]),
            ("T1059.0012 too long", &[]),
            ("T1059.01 short sub", &[]),
            ("T105 three digits", &[]),
            ("T10599 five digits", &[]),
            ("XT1059 inside a word", &[]),
            ("T1059x glued", &[]),
            ("t1059 lower case", &[]),
            ("T_1059", &[]),
            ("TA0001 tactic", &[]),
            ("Rule 1059", &[]),
            ("", &[]),
            ("Ťëšt T1105", &["T1105"]),
        ];
        for (text, want) in cases {
            assert_eq!(mitre_codes(text), *want, "{text:?}");
        }
    }

    #[test]
    fn glob_table() {
        for (p, n, want) in [
            ("*", "anything", true),
            ("recorded future*", "recorded future: c2", true),
            ("*risk list*", "aie: rf ip risk list match", true),
            ("a?c", "abc", true),
            ("a?c", "abbc", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*x", "abc", false),
            ("", "", true),
        ] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }

    #[test]
    fn type_rules_and_choice() {
        let text = "# comment\n\nRecorded Future* = correlation,p_default_ip_risklist\n*Sigma* = detection_rule:sigma,doc:r1U_LB\n* = playbook\n";
        let f = Fields {
            rules: parse_type_rules(text).unwrap(),
            ..Fields::default()
        };
        let c = f.detection("Recorded Future: C2");
        assert_eq!(
            (c.kind, c.sub_type, c.id),
            ("correlation", None, Some("p_default_ip_risklist"))
        );
        let c = f.detection("AIE sigma hit");
        assert_eq!(
            (c.kind, c.sub_type, c.id),
            ("detection_rule", Some("sigma"), Some("doc:r1U_LB"))
        );
        assert_eq!(f.detection("Other").kind, "playbook");
        assert_eq!(Fields::default().detection("x").kind, "correlation");
        // The global default applies where no line matches; lines still win.
        let g = Fields {
            default_type: Some("sandbox"),
            rules: parse_type_rules("Recorded Future* = correlation\n").unwrap(),
            ..Fields::default()
        };
        assert_eq!(g.detection("AIE: x").kind, "sandbox");
        assert_eq!(g.detection("Recorded Future: y").kind, "correlation");
    }

    #[test]
    fn bad_type_lines() {
        for (text, needle) in [
            ("x", "expected PATTERN"),
            (" = playbook", "pattern is empty"),
            ("a = bogus", "unknown detection type"),
            ("a = detection_rule", "needs a sub type"),
            ("a = detection_rule:sigma", "needs a sub type and an id"),
            ("a = detection_rule:foo,doc:x", "unknown sub type"),
            ("a = playbook:sigma", "only allowed with detection_rule"),
            ("a = playbook,has space", "id must be"),
        ] {
            let e = parse_type_rules(&format!("# c\n{text}")).unwrap_err();
            assert_eq!(e.line, 2, "{text}");
            assert!(e.reason.contains(needle), "{text}: {}", e.reason);
        }
    }
}
