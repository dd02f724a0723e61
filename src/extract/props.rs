//! Property tests (reliability bar T10). `PROPTEST_CASES` raises the case count.
use super::*;
use crate::model::Verdict;
use crate::policy::{classify, is_forbidden_char};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const KINDS: [IndicatorType; 5] = IndicatorType::ALL;

fn judge(kind: IndicatorType, raw: &str) -> (String, Verdict) {
    let ind = classify(
        &Candidate {
            kind,
            field: "prop",
            raw: raw.to_string(),
        },
        &Policy::default(),
    );
    (ind.value, ind.verdict)
}

/// Strings that are mostly indicator-shaped, sometimes hostile, sometimes huge.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9.:/%@\\[\\]_?#=&-]{0,80}",
        2 => "(https?|ftp|hxxp|javascript|file|data)?(://)?[a-zA-Z0-9.-]{0,30}(:[0-9]{1,5})?(/[ -~]{0,30})?",
        2 => any::<String>(),
        1 => "[\\PC\\p{Cc}\\p{Cf}\\p{Zs}\\p{Zl}]{0,200}",
        1 => proptest::collection::vec(any::<char>(), 0..65536)
            .prop_map(|v| v.into_iter().collect::<String>()),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any_text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{1,5}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

// ---- independent oracle for "globally routable", written from the range table ----

fn v4_global(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b == 18 || b == 19)))
}

fn v6_global(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_global(v4);
    }
    let s = ip.segments();
    let first = s[0];
    // Global unicast 2000::/3 only, minus documentation and IETF assignments.
    (0x2000..=0x3fff).contains(&first)
        && !(first == 0x2001 && s[1] == 0x0db8)
        && !(first == 0x3fff && s[1] < 0x1000)
        && !(first == 0x2001 && s[1] < 0x0200)
}

fn oracle_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_global(v4),
        IpAddr::V6(v6) => v6_global(v6),
    }
}

/// An address inside `net/prefix` or just outside it (prefix one shorter).
fn v4_in(net: u32, prefix: u32, r: u32, widen: bool) -> u32 {
    let prefix = if widen {
        prefix.saturating_sub(1)
    } else {
        prefix
    };
    let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
    (net & !host_mask) | (r & host_mask)
}

fn any_v4() -> impl Strategy<Value = Ipv4Addr> {
    // Uniform, or inside/next to one of the special ranges (the policy's list,
    // re-typed here), so every range and its edges are hit with few cases.
    let ranges: Vec<(u32, u32)> = vec![
        (0x0000_0000, 8),
        (0x0A00_0000, 8),
        (0x6440_0000, 10),
        (0x7F00_0000, 8),
        (0xA9FE_0000, 16),
        (0xAC10_0000, 12),
        (0xC000_0000, 24),
        (0xC000_0200, 24),
        (0xC0A8_0000, 16),
        (0xC612_0000, 15),
        (0xC633_6400, 24),
        (0xCB00_7100, 24),
        (0xE000_0000, 4),
        (0xF000_0000, 4),
        (0xFFFF_FFFF, 32),
        (0x0000_0000, 32),
    ];
    prop_oneof![
        any::<u32>(),
        (
            proptest::sample::select(ranges),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|((net, prefix), r, widen)| v4_in(net, prefix, r, widen)),
    ]
    .prop_map(Ipv4Addr::from)
}

fn any_v6() -> impl Strategy<Value = Ipv6Addr> {
    let ranges: Vec<(u128, u32)> = vec![
        (0, 128),
        (1, 128),
        (0, 96),
        (0xfc00 << 112, 7),
        (0xfe80 << 112, 10),
        (0xff00 << 112, 8),
        (0x2001_0db8 << 96, 32),
        (0x3fff << 112, 20),
        (0x2001 << 112, 23),
        (0x2000 << 112, 3),
        (0x0064_ff9b << 96, 96),
        (0xfec0 << 112, 10),
        (0x2002 << 112, 16),
        (0x2400 << 112, 12),
    ];
    prop_oneof![
        any::<u128>(),
        (
            proptest::sample::select(ranges),
            any::<u128>(),
            any::<bool>()
        )
            .prop_map(|((net, prefix), r, widen)| {
                let prefix = if widen {
                    prefix.saturating_sub(1)
                } else {
                    prefix
                };
                let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
                (net & !host_mask) | (r & host_mask)
            }),
        any::<u32>().prop_map(|v4| (0xffffu128 << 32) | u128::from(v4)),
    ]
    .prop_map(Ipv6Addr::from)
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any_v4().prop_map(IpAddr::V4), any_v6().prop_map(IpAddr::V6)]
}

// ---- generators of plausible indicators, for idempotence ----

fn any_domain() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        4 => "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?",
        1 => "[a-zäöüßпримеаσ]{1,8}",
        1 => "xn--[a-z0-9]{2,8}",
    ];
    (
        proptest::collection::vec(label, 1..5),
        "(com|org|NET|example|испытание|local|lan|corp)",
        any::<bool>(),
    )
        .prop_map(|(labels, tld, dot)| {
            format!("{}.{}{}", labels.join("."), tld, if dot { "." } else { "" })
        })
}

fn any_url() -> impl Strategy<Value = String> {
    (
        "(http://|https://|ftp://|HTTPS://|)",
        "(user(:pw)?@)?",
        prop_oneof![
            any_domain(),
            any_ip().prop_map(|ip| match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            })
        ],
        "(:[0-9]{1,4})?",
        "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,20}){0,3}",
        "(\\?[a-zA-Z0-9=&%-]{0,20})?(#[a-z]{0,5})?",
    )
        .prop_map(|(s, u, h, port, path, q)| format!("{s}{u}{h}{port}{path}{q}"))
}

fn any_cve() -> impl Strategy<Value = String> {
    ("[cC][vV][eE]", 1990u32..2100, "[0-9]{4,12}").prop_map(|(c, y, n)| format!("{c}-{y}-{n}"))
}

fn any_indicator() -> impl Strategy<Value = (IndicatorType, String)> {
    prop_oneof![
        any_ip().prop_map(|ip| (IndicatorType::Ip, ip.to_string())),
        any_domain().prop_map(|d| (IndicatorType::Domain, d)),
        any_url().prop_map(|u| (IndicatorType::Url, u)),
        any_cve().prop_map(|c| (IndicatorType::Vulnerability, c)),
        "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}".prop_map(|h| (IndicatorType::Hash, h)),
        (proptest::sample::select(KINDS.to_vec()), any_text()),
    ]
}

/// Whether a verdict/value pair came from a successful normalisation.
fn normalised(v: &Verdict) -> bool {
    match v {
        Verdict::Send => true,
        Verdict::Exclude(r) => {
            !(r.starts_with("invalid")
                || r == "url too long"
                || r == "defanged value"
                || r == "unsupported url scheme")
        }
    }
}

fn validates(kind: IndicatorType, v: &str) -> Result<(), String> {
    if v.chars().any(is_forbidden_char) || !v.is_ascii() {
        return Err("forbidden character".into());
    }
    let ok = match kind {
        IndicatorType::Ip => v.parse::<IpAddr>().is_ok_and(|ip| ip.to_string() == v),
        IndicatorType::Domain => {
            v.len() <= 253
                && v.contains('.')
                && v.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && idna::domain_to_ascii_strict(v).is_ok_and(|a| a == v)
        }
        IndicatorType::Url => url::Url::parse(v).is_ok_and(|u| {
            ["http", "https", "ftp"].contains(&u.scheme())
                && u.username().is_empty()
                && u.password().is_none()
                && u.fragment().is_none()
                && v.len() <= 2048
        }),
        IndicatorType::Vulnerability => {
            let b = v.as_bytes();
            v.starts_with("CVE-")
                && b.len() >= 13
                && b[4..8].iter().all(u8::is_ascii_digit)
                && b[8] == b'-'
                && b[9..].iter().all(u8::is_ascii_digit)
        }
        IndicatorType::Hash => {
            matches!(v.len(), 32 | 40 | 64 | 128)
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{kind} value {v:?} does not validate"))
    }
}

/// Characters that must never reach the ledger or a log, sent or not.
fn has_unsafe_char(v: &str) -> bool {
    v.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}')
    })
}

proptest! {
    /// (1) No string panics extraction or classification, in any field, as any kind.
    #[test]
    fn never_panics(s in any_text(), j in any_json()) {
        for kind in KINDS {
            let _ = judge(kind, &s);
        }
        for (field, _) in FIELDS {
            let event = serde_json::json!({ field: s.clone() });
            let _ = indicators(&[event], &Policy::default());
            let event = serde_json::json!({ field: j.clone() });
            let _ = indicators(&[event], &Policy::default());
        }
        let _ = indicators(&[j], &Policy::default());
    }

    /// (2) No non-global IP is ever sent, as an IP, a host-field IP or a URL host;
    /// and every global one is (the oracle and the policy agree exactly).
    #[test]
    fn only_global_ips_are_sent(ip in any_ip()) {
        let global = oracle_global(ip);
        let (_, v) = judge(IndicatorType::Ip, &ip.to_string());
        prop_assert_eq!(v == Verdict::Send, global, "{} -> {:?}", ip, v);
        let host = match ip { IpAddr::V6(v6) => format!("[{v6}]"), v4 => v4.to_string() };
        let (_, v) = judge(IndicatorType::Url, &format!("https://{host}/x"));
        prop_assert_eq!(v == Verdict::Send, global, "url host {} -> {:?}", ip, v);
        let event = serde_json::json!({ "impactedHostName": ip.to_string() });
        let inds = indicators(&[event], &Policy::default());
        prop_assert_eq!(inds.len(), 1);
        prop_assert_eq!(inds[0].verdict == Verdict::Send, global);
    }

    /// (3) Normalisation is idempotent.
    #[test]
    fn normalisation_is_idempotent((kind, s) in any_indicator()) {
        let (value, verdict) = judge(kind, &s);
        if normalised(&verdict) {
            let (again, verdict2) = judge(kind, &value);
            prop_assert_eq!(&again, &value);
            prop_assert_eq!(verdict2, verdict);
        }
    }

    /// (4) Every sent value validates and holds no whitespace, control, bidi or
    /// zero-width character.
    #[test]
    fn sent_values_validate((kind, s) in any_indicator()) {
        let (value, verdict) = judge(kind, &s);
        if verdict == Verdict::Send {
            prop_assert!(validates(kind, &value).is_ok(), "{:?} -> {}", s, validates(kind, &value).unwrap_err());
        }
        prop_assert!(!has_unsafe_char(&value), "unsafe character in {:?}", value);
    }

    /// (5) The CVE splitter does not depend on the context around the ids.
    #[test]
    fn cve_splitter_is_context_invariant(
        ids in proptest::collection::vec(any_cve(), 1..5),
        wrap in proptest::sample::select(vec![
            ("", ""), (" ", " "), ("\t", "\t"), ("\r\n", "\r\n"), (",", ","), ("[", "]"),
            ("(", ")"), ("<", ">"), ("\"", "\""), ("['", "']"), ("", "."), ("", ","), ("", ";"),
            ("see ", " for details"), ("{\"cve\": \"", "\"}"),
        ]),
        sep in proptest::sample::select(vec![" ", ",", ", ", ";", "\t", "\r\n", " | ", "/", "\n"]),
    ) {
        let text = format!("{}{}{}", wrap.0, ids.join(sep), wrap.1);
        prop_assert_eq!(split_cves(&text), ids.iter().map(String::as_str).collect::<Vec<_>>());
        let event = serde_json::json!({ "cve": text });
        let got: Vec<String> = candidates(&event).into_iter().map(|c| c.raw).collect();
        prop_assert_eq!(got, ids);
    }
}

/// An IPv4 range and an address inside it.
fn range_and_inside() -> impl Strategy<Value = (u32, u32, u32)> {
    (any::<u32>(), 0u32..(1 << 24)).prop_flat_map(|(begin, width)| {
        let end = begin.saturating_add(width);
        (Just(begin), Just(end), begin..=end)
    })
}

proptest! {
    /// Issue 10: no address inside a range LogRhythm has shown is ever sent,
    /// whichever field holds it, whatever the event's zones say, whether the
    /// range is attached to the event or only known from an earlier one (the
    /// ledger's), and as the host of a URL.
    #[test]
    fn no_address_inside_a_range_logrhythm_has_shown_is_sent(
        (begin, end, inside) in range_and_inside(),
        field in prop::sample::select(vec!["impactedIP", "originIP", "impactedNATIP", "originNATIP", "impactedHostName", "originName", "domain"]),
        zone in prop::sample::select(vec!["Internal", "DMZ", "External", "Unknown", ""]),
        attached in any::<bool>(),
        as_url in any::<bool>(),
    ) {
        let (b, e, ip) = (Ipv4Addr::from(begin), Ipv4Addr::from(end), Ipv4Addr::from(inside));
        let record = serde_json::json!({
            "beginIPRange": {"value": b.to_string()}, "endIPRange": {"value": e.to_string()},
            "hostZone": "Internal", "name": "Shown", "recordStatus": "Active",
        });
        let side = if field.starts_with("origin") { "origin" } else { "impacted" };
        let mut event = serde_json::json!({});
        event[format!("{side}Zone")] = Value::from(zone);
        if as_url {
            event["url"] = Value::from(format!("http://{ip}/x"));
        } else {
            event[field] = Value::from(ip.to_string());
        }
        let policy = if attached {
            event[format!("{side}Network")] = record;
            Policy::default()
        } else {
            let shown = crate::model::NetworkRecord {
                begin: IpAddr::V4(b), end: IpAddr::V4(e), name: "Shown".into(), zone: "Internal".into(),
            };
            Policy::default().with_knowledge(vec![shown], vec![])
        };
        // A URL has no side: only the ranges known from earlier events apply to it.
        prop_assume!(!(as_url && attached));
        for ind in indicators(&[event], &policy) {
            prop_assert_ne!(ind.verdict, Verdict::Send, "{} {} sent", ind.kind, ind.value);
        }
    }
}
