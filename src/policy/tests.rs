//! Table tests for the indicator policy and the list-file parsers.
use super::*;
use IndicatorType::{Domain, Hash, Ip, Url as U, Vulnerability as Cve};

fn run(kind: IndicatorType, raw: &str, p: &Policy) -> (String, String) {
    let ind = classify(
        &Candidate {
            kind,
            field: "test",
            raw: raw.to_string(),
        },
        p,
    );
    let verdict = match ind.verdict {
        Verdict::Send => "send".to_string(),
        Verdict::Exclude(r) => r,
    };
    (ind.value, verdict)
}

/// (type, input, expected normalised value (`None`: not checked), expected verdict).
type Row = (
    IndicatorType,
    &'static str,
    Option<&'static str>,
    &'static str,
);

fn check(rows: &[Row], p: &Policy) {
    let mut failures = Vec::new();
    for (kind, raw, value, verdict) in rows {
        let (got_value, got_verdict) = run(*kind, raw, p);
        let value_ok = value.is_none_or(|v| v == got_value);
        if !value_ok || got_verdict != *verdict {
            failures.push(format!(
                "{kind} {raw:?}: got ({got_value:?}, {got_verdict:?}), want ({value:?}, {verdict:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ip_rules() {
    check(
        &[
            (Ip, "8.8.8.8", Some("8.8.8.8"), "send"),
            (Ip, "  1.1.1.1\t", Some("1.1.1.1"), "send"),
            (
                Ip,
                "2606:4700:4700::1111",
                Some("2606:4700:4700::1111"),
                "send",
            ),
            (
                Ip,
                "2001:4860:0:0:0:0:0:8888",
                Some("2001:4860::8888"),
                "send",
            ),
            (
                Ip,
                "2A00:1450:4001:0829:0000:0000:0000:200E",
                Some("2a00:1450:4001:829::200e"),
                "send",
            ),
            (Ip, "::ffff:8.8.4.4", Some("8.8.4.4"), "send"),
            (Ip, "::ffff:10.0.0.1", Some("10.0.0.1"), "private ip"),
            (Ip, "10.0.0.1", Some("10.0.0.1"), "private ip"),
            (Ip, "172.16.0.1", None, "private ip"),
            (Ip, "172.31.255.255", None, "private ip"),
            (Ip, "172.32.0.1", None, "send"),
            (Ip, "192.168.1.1", None, "private ip"),
            (Ip, "127.0.0.1", None, "loopback ip"),
            (Ip, "127.255.255.254", None, "loopback ip"),
            (Ip, "169.254.169.254", None, "link-local ip"),
            (Ip, "100.64.0.1", None, "cgnat ip"),
            (Ip, "100.127.255.255", None, "cgnat ip"),
            (Ip, "100.128.0.1", None, "send"),
            (Ip, "224.0.0.251", None, "multicast ip"),
            (Ip, "239.255.255.250", None, "multicast ip"),
            (Ip, "0.0.0.0", None, "unspecified ip"),
            (Ip, "0.1.2.3", None, "reserved ip"),
            (Ip, "255.255.255.255", None, "broadcast ip"),
            (Ip, "240.0.0.1", None, "reserved ip"),
            (Ip, "192.0.0.8", None, "reserved ip"),
            (Ip, "192.0.2.1", None, "documentation ip"),
            (Ip, "198.51.100.7", None, "documentation ip"),
            (Ip, "203.0.113.45", None, "documentation ip"),
            (Ip, "198.18.0.1", None, "benchmarking ip"),
            (Ip, "198.19.255.255", None, "benchmarking ip"),
            (Ip, "::", Some("::"), "unspecified ip"),
            (Ip, "::1", Some("::1"), "loopback ip"),
            (Ip, "fc00::1", None, "unique-local ip"),
            (Ip, "fd12:3456::1", None, "unique-local ip"),
            (Ip, "fe80::1", None, "link-local ip"),
            (Ip, "fe80::1%eth0", Some("fe80::1"), "link-local ip"),
            (Ip, "ff02::1", None, "multicast ip"),
            (Ip, "2001:db8::1", None, "documentation ip"),
            (Ip, "2001:db8:85a3::8a2e:370:7334", None, "documentation ip"),
            (Ip, "3fff::1", None, "documentation ip"),
            (Ip, "2001::1", None, "reserved ip"),
            (Ip, "64:ff9b::808:808", None, "reserved ip"),
            (Ip, "fec0::1", None, "reserved ip"),
            (Ip, "::1.2.3.4", None, "reserved ip"),
            (Ip, "1.2.3.4:8080", None, "invalid ip"),
            (Ip, "[2001:4860::8888]:443", None, "invalid ip"),
            (Ip, "[2001:4860::8888]", None, "invalid ip"),
            (Ip, "010.0.0.1", Some("010.0.0.1"), "invalid ip"),
            (Ip, "0x7f.0.0.1", None, "invalid ip"),
            (Ip, "127.1", None, "invalid ip"),
            (Ip, "2130706433", None, "invalid ip"),
            (Ip, "１.２.３.４", None, "invalid ip"),
            (Ip, "1.2.3.256", None, "invalid ip"),
            (Ip, "1.2.3", None, "invalid ip"),
            (Ip, "8.8.8.8\u{202e}", None, "invalid ip"),
            (
                Ip,
                "8.8.\u{200b}8.8",
                Some("8.8.\\u{200b}8.8"),
                "invalid ip",
            ),
            (Ip, "fe80::1%", None, "invalid ip"),
            (Ip, "fe80::1%e th", None, "invalid ip"),
            (Ip, "2606:4700::1111%eth0", None, "invalid ip"),
            (Ip, "::ffff:8.8.8.8%x", None, "invalid ip"),
            (Ip, "::ffff:10.0.0.1%x", Some("10.0.0.1"), "private ip"),
            (Ip, "example.com", None, "invalid ip"),
        ],
        &Policy::default(),
    );
}

#[test]
fn domain_rules() {
    let long_label = format!("{}.com", "a".repeat(64));
    let ok_label = format!("{}.com", "a".repeat(63));
    let labels = |last: usize| {
        let l63 = "a".repeat(63);
        format!("{l63}.{l63}.{l63}.{}.com", "b".repeat(last))
    };
    let name_253: &'static str = labels(57).leak();
    assert_eq!(name_253.len(), 253);
    let name_254 = labels(58);
    assert_eq!(name_254.len(), 254);
    let long_label: &'static str = long_label.leak();
    let ok_label: &'static str = ok_label.leak();
    let name_254: &'static str = name_254.leak();
    check(
        &[
            (Domain, "example.com", Some("example.com"), "send"),
            (Domain, "EXAMPLE.COM.", Some("example.com"), "send"),
            (
                Domain,
                " Evil.Example.NET ",
                Some("evil.example.net"),
                "send",
            ),
            (
                Domain,
                "xn--80ak6aa92e.com",
                Some("xn--80ak6aa92e.com"),
                "send",
            ),
            (
                Domain,
                "пример.испытание",
                Some("xn--e1afmkfd.xn--80akhbyknj4f"),
                "send",
            ),
            (Domain, "pаypal.com", Some("xn--pypal-4ve.com"), "send"),
            (
                Domain,
                "bücher.example",
                Some("xn--bcher-kva.example"),
                "send",
            ),
            (Domain, "a-b.example.org", None, "send"),
            (Domain, "1password.com", None, "send"),
            (Domain, "evil.example", None, "send"),
            (Domain, ok_label, None, "send"),
            (Domain, long_label, None, "invalid domain"),
            (Domain, name_254, None, "invalid domain"),
            (Domain, name_253, Some(name_253), "send"),
            (Domain, "xn--zz", None, "invalid domain"),
            (Domain, "xn--zz.com", None, "invalid domain"),
            (Domain, "exa\u{200b}mple.com", None, "invalid domain"),
            (Domain, "exam\u{00ad}ple.com", None, "invalid domain"),
            (Domain, "evil\u{202e}moc.example", None, "invalid domain"),
            (Domain, "a..b.com", None, "invalid domain"),
            (Domain, ".example.com", None, "invalid domain"),
            (Domain, "example.com..", None, "invalid domain"),
            (Domain, "under_score.example.com", None, "invalid domain"),
            (Domain, "-lead.example.com", None, "invalid domain"),
            (Domain, "trail-.example.com", None, "invalid domain"),
            (Domain, "ab--cd.example.com", None, "invalid domain"),
            (Domain, "AA--A.com", None, "invalid domain"),
            (Domain, "evil.example/path", None, "invalid domain"),
            (Domain, "user@evil.example", None, "invalid domain"),
            (Domain, "evil[.]example", None, "invalid domain"),
            (Domain, "1.2.3.256", None, "invalid domain"),
            (Domain, "0x7f.0.0.1", None, "invalid domain"),
            (Domain, "127.1", None, "invalid domain"),
            (Domain, "１.２.３.４", None, "invalid domain"),
            (Domain, "2130706433", None, "invalid domain"),
            (
                Domain,
                "'); DROP TABLE indicators;--",
                None,
                "invalid domain",
            ),
            (Domain, "%s%n{}{0}", None, "invalid domain"),
            (Domain, "../../etc/passwd", None, "invalid domain"),
            (Domain, "intranet", Some("intranet"), "single-label host"),
            (Domain, "WEB01", Some("web01"), "single-label host"),
            (Domain, "localhost", None, "single-label host"),
            (Domain, "host.local", None, "internal domain suffix .local"),
            (
                Domain,
                "corp.internal",
                None,
                "internal domain suffix .internal",
            ),
            (Domain, "printer.lan", None, "internal domain suffix .lan"),
            (
                Domain,
                "nas.home.arpa",
                None,
                "internal domain suffix .home.arpa",
            ),
            (
                Domain,
                "app.localhost",
                None,
                "internal domain suffix .localhost",
            ),
            (Domain, "dc1.ad.corp", None, "internal domain suffix .corp"),
            (
                Domain,
                "box.localdomain",
                None,
                "internal domain suffix .localdomain",
            ),
            (
                Domain,
                "wiki.intranet",
                None,
                "internal domain suffix .intranet",
            ),
            (Domain, "router.home", None, "internal domain suffix .home"),
            (Domain, "local.example.com", None, "send"),
            (Domain, "notlocal", None, "single-label host"),
            (Domain, "evillocal.com", None, "send"),
        ],
        &Policy::default(),
    );
}

#[test]
fn url_rules() {
    let long = format!("https://evil.example/?q={}", "a".repeat(MAX_URL_LEN));
    let long: &'static str = long.leak();
    let huge = format!("https://evil.example/?q={}", "a".repeat(100_000));
    let huge: &'static str = huge.leak();
    check(
        &[
            (U, "https://evil.example/x?y=1", Some("https://evil.example/x?y=1"), "send"),
            (U, "HTTPS://EVIL.Example/Path", Some("https://evil.example/Path"), "send"),
            (U, "http://evil.example", Some("http://evil.example/"), "send"),
            (U, "ftp://files.example.net/a.bin", None, "send"),
            (U, "evil.example/path?q=1", Some("http://evil.example/path?q=1"), "send"),
            (U, "evil.example:8080/x", Some("http://evil.example:8080/x"), "send"),
            (U, "https://user:pass@evil.example/", Some("https://evil.example/"), "send"),
            (U, "https://user@evil.example/a#token=abc", Some("https://evil.example/a"), "send"),
            (U, "https://пример.испытание/", Some("https://xn--e1afmkfd.xn--80akhbyknj4f/"), "send"),
            (U, "https://evil.example./", Some("https://evil.example/"), "send"),
            (U, "http://8.8.8.8/x", Some("http://8.8.8.8/x"), "send"),
            (U, "http://[2606:4700::1111]:8443/", Some("http://[2606:4700::1111]:8443/"), "send"),
            (U, "https://evil.example/a b", None, "invalid url"),
            (U, "https://evil.example/\u{202e}", None, "invalid url"),
            (U, "https://shop.example.org/search?q=%24%7Bjndi%3Aldap%3A%2F%2Fattacker.example.net%2Fa%7D&lang=en", None, "send"),
            (U, "hxxp://evil[.]example", None, "defanged value"),
            (U, "hxxps://evil.example/", None, "defanged value"),
            (U, "http://evil[.]example/", None, "defanged value"),
            (U, "javascript:alert(1)", None, "unsupported url scheme"),
            (U, "file:///etc/passwd", None, "unsupported url scheme"),
            (U, "data:text/html,<script>", None, "unsupported url scheme"),
            (U, "mailto:a@evil.example", None, "unsupported url scheme"),
            (U, "http://10.0.0.1/admin", None, "url host internal: private ip"),
            (U, "http://127.0.0.1:8080/", None, "url host internal: loopback ip"),
            (U, "http://[::1]/", None, "url host internal: loopback ip"),
            (U, "http://[::ffff:10.0.0.1]/", None, "url host internal: private ip"),
            (U, "http://[fe80::1]/", None, "url host internal: link-local ip"),
            (U, "http://intranet/", None, "url host internal: single-label host"),
            (U, "https://wiki.corp.internal/page", None, "url host internal: internal domain suffix .internal"),
            (U, "http://printer.local/", None, "url host internal: internal domain suffix .local"),
            (U, "http://0x7f.0.0.1/", None, "invalid url"),
            (U, "http://2130706433/", None, "invalid url"),
            (U, "http://010.0.0.1/", None, "invalid url"),
            (U, "http://127.1/", None, "invalid url"),
            (U, "http://1.2.3.256/", None, "invalid url"),
            (U, "http://ex%61mple.com/", None, "invalid url"),
            (U, "http://under_score.example/", None, "invalid url"),
            (U, "http:evil.example", None, "invalid url"),
            (U, "http:///path", None, "invalid url"),
            (U, "http://", None, "invalid url"),
            (U, "https://exa\u{200b}mple.com/", None, "invalid url"),
            (U, long, None, "url too long"),
            (U, huge, None, "url too long"),
        ],
        &Policy::default(),
    );
}

#[test]
fn cve_and_hash_rules() {
    check(
        &[
            (Cve, "CVE-2021-44228", Some("CVE-2021-44228"), "send"),
            (Cve, "cve-2021-44228", Some("CVE-2021-44228"), "send"),
            (Cve, " CVE-2014-0001 ", Some("CVE-2014-0001"), "send"),
            (Cve, "CVE-2024-1234567", Some("CVE-2024-1234567"), "send"),
            (Cve, "CVE-21-1", None, "invalid vulnerability"),
            (Cve, "CVE-2021-123", None, "invalid vulnerability"),
            (
                Cve,
                "CVE-2021-44228 CVE-2022-22965",
                None,
                "invalid vulnerability",
            ),
            (Cve, "CVE-2021-1234567890123", None, "invalid vulnerability"),
            (Cve, "CVE_2021_44228", None, "invalid vulnerability"),
            (
                Hash,
                "D41D8CD98F00B204E9800998ECF8427E",
                Some("d41d8cd98f00b204e9800998ecf8427e"),
                "send",
            ),
            (
                Hash,
                "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                None,
                "send",
            ),
            (
                Hash,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                None,
                "send",
            ),
            (
                Hash,
                "d41d8cd98f00b204e9800998ecf8427",
                None,
                "invalid hash",
            ),
            (
                Hash,
                "g41d8cd98f00b204e9800998ecf8427e",
                None,
                "invalid hash",
            ),
            (
                Hash,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
                None,
                "invalid hash",
            ),
        ],
        &Policy::default(),
    );
}

fn user_policy() -> Policy {
    let internal = parse_internal_domains("int.example.com\n.acme.test\n").unwrap();
    let ex = parse_exclusions(
        "10.9.0.0/16\n8.8.8.8\n2606:4700::/32\nsafe.example.net\nhttps://evil.example/ok\nCVE-2020-0001\nd41d8cd98f00b204e9800998ecf8427e\n",
    )
    .unwrap();
    Policy::new(internal, ex)
}

#[test]
fn user_lists() {
    check(
        &[
            (
                Domain,
                "int.example.com",
                None,
                "user internal domain int.example.com",
            ),
            (
                Domain,
                "mail.int.example.com",
                None,
                "user internal domain int.example.com",
            ),
            (Domain, "mailint.example.com", None, "send"),
            (Domain, "example.com", None, "send"),
            (
                Domain,
                "dc.example.corp",
                None,
                "internal domain suffix .corp",
            ),
            (
                Domain,
                "x.y.acme.test",
                None,
                "user internal domain acme.test",
            ),
            (Domain, "acme.test.evil.example", None, "send"),
            (
                Domain,
                "safe.example.net",
                None,
                "user excluded domain safe.example.net",
            ),
            (
                Domain,
                "a.safe.example.net",
                None,
                "user excluded domain safe.example.net",
            ),
            (Domain, "unsafe.example.net", None, "send"),
            (Ip, "10.9.1.1", None, "private ip"),
            (Ip, "8.8.8.8", None, "user excluded value"),
            (Ip, "::ffff:8.8.8.8", None, "user excluded value"),
            (Ip, "8.8.4.4", None, "send"),
            (
                Ip,
                "2606:4700:4700::1111",
                None,
                "user excluded cidr 2606:4700::/32",
            ),
            (U, "https://evil.example/ok", None, "user excluded value"),
            (
                U,
                "https://user:pw@EVIL.example/ok#frag",
                None,
                "user excluded value",
            ),
            (U, "https://evil.example/other", None, "send"),
            (
                U,
                "http://8.8.8.8/",
                None,
                "url host internal: user excluded value",
            ),
            (
                U,
                "https://a.safe.example.net/",
                None,
                "url host internal: user excluded domain safe.example.net",
            ),
            (
                U,
                "https://mail.int.example.com/",
                None,
                "url host internal: user internal domain int.example.com",
            ),
            (Cve, "cve-2020-0001", None, "user excluded value"),
            (Cve, "CVE-2020-0002", None, "send"),
            (
                Hash,
                "D41D8CD98F00B204E9800998ECF8427E",
                None,
                "user excluded value",
            ),
        ],
        &user_policy(),
    );
}

#[test]
fn user_cidr_applies_to_global_addresses() {
    let ex = parse_exclusions("81.2.69.0/24\n").unwrap();
    let p = Policy::new(vec![], ex);
    check(
        &[
            (Ip, "81.2.69.160", None, "user excluded cidr 81.2.69.0/24"),
            (Ip, "81.2.70.1", None, "send"),
            (
                U,
                "http://81.2.69.1/",
                None,
                "url host internal: user excluded cidr 81.2.69.0/24",
            ),
        ],
        &p,
    );
}

#[test]
fn safe_raw_escapes_and_truncates() {
    assert_eq!(safe_raw("a\u{202e}b\nc\\"), "a\\u{202e}b\\u{a}c\\u{5c}");
    let big = "x".repeat(1 << 20);
    let s = safe_raw(&big);
    assert!(s.starts_with(&"x".repeat(256)));
    assert!(s.ends_with("…[1048576B]"));
    assert!(!s.chars().any(is_forbidden_char));
    assert!(s.chars().count() < 300);
}

#[test]
fn internal_domains_parser() {
    let text = "\u{FEFF}# internal\r\nExample.CORP\r\n\r\n  .acme.test  \n*.Wild.example\ncorp\nexample.corp\n";
    assert_eq!(
        parse_internal_domains(text).unwrap(),
        vec!["example.corp", "acme.test", "wild.example", "corp"]
    );
    assert_eq!(parse_internal_domains("").unwrap(), Vec::<String>::new());
    for (text, line) in [
        ("ok.example\nbad_name.example\n", 2),
        ("# c\n\nok.example\r\nxn--zz\r\n", 4),
        ("a..b\n", 1),
        ("exa\u{200b}mple.com\n", 1),
    ] {
        let err = parse_internal_domains(text).unwrap_err();
        assert_eq!(err.line, line, "{text:?}");
        assert!(matches!(err.kind, LineErrorKind::InvalidDomain));
        assert!(err.to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn exclusions_parser_accepts() {
    let text = "\u{FEFF}# exclusions\r\n10.0.0.0/8\r\n2001:db8::/32\n1.2.3.4\n::ffff:5.6.7.8\n\
                EXAMPLE.net.\nhttps://u:p@Evil.example/x#f\ncve-2021-44228\n\
                D41D8CD98F00B204E9800998ECF8427E\n10.0.0.0/8\n0.0.0.0/0\n";
    let ex = parse_exclusions(text).unwrap();
    assert_eq!(
        ex.nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        vec!["10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"]
    );
    assert_eq!(ex.domains, vec!["example.net"]);
    let mut values: Vec<_> = ex.values.iter().cloned().collect();
    values.sort();
    let want = [
        (Ip, "1.2.3.4"),
        (Ip, "5.6.7.8"),
        (U, "https://evil.example/x"),
        (Cve, "CVE-2021-44228"),
        (Hash, "d41d8cd98f00b204e9800998ecf8427e"),
    ];
    let mut want: Vec<_> = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
    want.sort();
    assert_eq!(values, want);
}

#[test]
fn exclusions_parser_rejects() {
    type IsKind = fn(&LineErrorKind) -> bool;
    let cases: [(&str, IsKind); 12] = [
        ("10.0.0.0/33", |k| {
            matches!(k, LineErrorKind::InvalidPrefix { max: 32 })
        }),
        ("2001:db8::/129", |k| {
            matches!(k, LineErrorKind::InvalidPrefix { max: 128 })
        }),
        ("10.0.0.0/", |k| {
            matches!(k, LineErrorKind::InvalidPrefix { .. })
        }),
        ("10.0.0.0/+8", |k| {
            matches!(k, LineErrorKind::InvalidPrefix { .. })
        }),
        ("10.0.0.0/255.0.0.0", |k| {
            matches!(k, LineErrorKind::InvalidPrefix { .. })
        }),
        ("10.0.0.1/8", |k| {
            matches!(k, LineErrorKind::HostBitsSet { prefix: 8, .. })
        }),
        ("010.0.0.0/8", |k| {
            matches!(k, LineErrorKind::InvalidNetworkAddress(_))
        }),
        ("127.1", |k| matches!(k, LineErrorKind::InvalidIp)),
        ("1.2.3.4:80", |k| matches!(k, LineErrorKind::InvalidIp)),
        ("https://evil.example/a\u{200b}b", |k| {
            matches!(k, LineErrorKind::InvalidUrl { .. })
        }),
        ("javascript://x", |k| {
            matches!(k, LineErrorKind::InvalidUrl { .. })
        }),
        ("bad_domain.example", |k| {
            matches!(k, LineErrorKind::InvalidDomain)
        }),
    ];
    for (line, is_kind) in cases {
        let text = format!("# header\nok.example\n{line}\n");
        let err = parse_exclusions(&text).unwrap_err();
        assert_eq!(err.line, 3, "{line}");
        assert_eq!(err.text, line);
        assert!(is_kind(&err.kind), "{line}: {:?}", err.kind);
    }
    let err = parse_exclusions("10.0.0.1/8").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: host bits set (did you mean 10.0.0.0/8?): \"10.0.0.1/8\""
    );
}

#[test]
fn rule_list_parser() {
    let text = "\u{FEFF}# rules\r\n  AIE: Exploit Attempt  \r\n\r\nRF: Risk List Match\n# x\nAIE: Exploit Attempt\n\u{202e}odd\n";
    assert_eq!(
        parse_rule_list(text),
        vec!["AIE: Exploit Attempt", "RF: Risk List Match", "\u{202e}odd"]
    );
    assert!(parse_rule_list("").is_empty());
    assert!(parse_rule_list("\n\n# only\r\n").is_empty());
}

#[test]
fn million_line_files_parse() {
    let mut domains = String::new();
    let mut excl = String::new();
    let mut rules = String::new();
    for i in 0..1_000_000u32 {
        domains.push_str(&format!("h{i}.example.corp\n"));
        let (a, b, c) = (11 + (i >> 16), (i >> 8) & 255, i & 255);
        excl.push_str(&format!("{a}.{b}.{c}.0/24\n"));
        rules.push_str(&format!("rule {i}\r\n"));
    }
    // Not timed strictly (shared CI machines); the figures are printed for reports.
    let start = std::time::Instant::now();
    assert_eq!(parse_internal_domains(&domains).unwrap().len(), 1_000_000);
    eprintln!("1M internal-domain lines: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    assert_eq!(parse_exclusions(&excl).unwrap().nets.len(), 1_000_000);
    eprintln!("1M exclusion lines: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    assert_eq!(parse_rule_list(&rules).len(), 1_000_000);
    eprintln!("1M rule lines: {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------
// Issue 10: LogRhythm's own classification, learned and configured knowledge.
// ---------------------------------------------------------------------------

fn record(begin: &str, end: &str, name: &str) -> NetworkRecord {
    NetworkRecord {
        begin: begin.parse().unwrap(),
        end: end.parse().unwrap(),
        name: name.to_string(),
        zone: "DMZ".to_string(),
    }
}

fn facts(
    zone: Option<crate::model::OrgZone>,
    network: Option<NetworkRecord>,
    address: Option<&str>,
    external: bool,
) -> SideFacts {
    SideFacts {
        zone,
        network,
        external,
        address: address.map(|a| a.parse().unwrap()),
        alarm_networks: vec![],
    }
}

fn on(kind: IndicatorType, raw: &str, p: &Policy, f: &SideFacts) -> String {
    let c = Candidate {
        kind,
        field: "test",
        raw: raw.to_string(),
    };
    match classify_on(&c, p, f).verdict {
        Verdict::Send => "send".to_string(),
        Verdict::Exclude(r) => r,
    }
}

#[test]
fn organisation_sides_networks_learning_and_configuration() {
    use crate::model::OrgZone::{Dmz, Internal};
    let dmz = record("62.60.128.0", "62.60.128.63", "DMZ public");
    let learned = Policy::default().with_knowledge(vec![dmz.clone()], vec!["example.co.uk".into()]);
    let configured = learned
        .clone()
        .with_own_networks(vec!["81.2.69.0/24".parse().unwrap()])
        .with_allowed(
            vec!["partner.example.co.uk".into()],
            vec!["62.60.128.32/28".parse().unwrap()],
        );
    let none = SideFacts::default();
    let dmz_side = facts(Some(Dmz), None, Some("62.60.128.10"), false);
    let internal = facts(Some(Internal), None, Some("10.20.1.1"), false);
    let external = facts(None, None, Some("62.60.128.11"), true);
    let attached = facts(
        None,
        Some(record("91.1.0.0", "91.1.0.255", "Branch")),
        Some("91.1.0.7"),
        false,
    );
    let rows: &[(IndicatorType, &str, &Policy, &SideFacts, &str)] = &[
        // Zones: everything on an Internal or DMZ side.
        (
            Ip,
            "62.60.128.10",
            &Policy::default(),
            &dmz_side,
            "logrhythm zone DMZ",
        ),
        (
            Ip,
            "52.1.2.3",
            &Policy::default(),
            &internal,
            "logrhythm zone Internal",
        ),
        (
            Domain,
            "evil.example.net",
            &Policy::default(),
            &internal,
            "logrhythm zone Internal",
        ),
        // Attached network record: the address, and a name beside an address in it.
        (
            Ip,
            "91.1.0.9",
            &Policy::default(),
            &attached,
            "logrhythm network Branch (91.1.0.0-91.1.0.255)",
        ),
        (
            Domain,
            "gw.branch.example.org",
            &Policy::default(),
            &attached,
            "logrhythm network Branch (91.1.0.0-91.1.0.255) holds the address beside it",
        ),
        (
            Ip,
            "91.1.1.9",
            &Policy::default(),
            &attached,
            "logrhythm network Branch (91.1.0.0-91.1.0.255) holds the address beside it",
        ),
        // Known network records: an address alone, a URL on it; an External side's
        // address in a known range is still excluded, its names are not.
        (
            Ip,
            "62.60.128.40",
            &learned,
            &none,
            "logrhythm network DMZ public (62.60.128.0-62.60.128.63)",
        ),
        (
            U,
            "http://62.60.128.40/x",
            &learned,
            &none,
            "url host internal: logrhythm network DMZ public (62.60.128.0-62.60.128.63)",
        ),
        (
            Ip,
            "62.60.128.11",
            &learned,
            &external,
            "logrhythm network DMZ public (62.60.128.0-62.60.128.63)",
        ),
        (Domain, "mail.evil.example.net", &learned, &external, "send"),
        (Ip, "62.60.129.1", &learned, &none, "send"),
        // Learned domains: names under them alone, URLs on them; not a look-alike.
        (
            Domain,
            "ws-0412.hq.example.co.uk",
            &learned,
            &none,
            "learned organisation domain example.co.uk",
        ),
        (
            Domain,
            "EXAMPLE.CO.UK",
            &learned,
            &none,
            "learned organisation domain example.co.uk",
        ),
        (
            U,
            "https://dc01.hq.example.co.uk/a",
            &learned,
            &none,
            "url host internal: learned organisation domain example.co.uk",
        ),
        (Domain, "example.co.uk.evil.net", &learned, &none, "send"),
        (Domain, "notexample.co.uk", &learned, &none, "send"),
        (
            Domain,
            "ws-1.hq.example.co.uk",
            &Policy::default(),
            &none,
            "send",
        ),
        // Configured wins: own networks are excluded, allowed ones sent although
        // learned or in a DMZ zone; fixed rules are never overridden.
        (
            Ip,
            "81.2.69.160",
            &configured,
            &none,
            "configured own network 81.2.69.0/24",
        ),
        (Ip, "62.60.128.40", &configured, &dmz_side, "send"),
        (
            Ip,
            "62.60.128.10",
            &configured,
            &dmz_side,
            "logrhythm network DMZ public (62.60.128.0-62.60.128.63)",
        ),
        (
            Domain,
            "www.partner.example.co.uk",
            &configured,
            &none,
            "send",
        ),
        (
            Domain,
            "www.partner.example.co.uk",
            &configured,
            &internal,
            "send",
        ),
        (
            Domain,
            "www.example.co.uk",
            &configured,
            &none,
            "learned organisation domain example.co.uk",
        ),
        (Domain, "intranet", &configured, &none, "single-label host"),
        (
            Ip,
            "10.1.2.3",
            &Policy::default().with_allowed(vec![], vec!["10.0.0.0/8".parse().unwrap()]),
            &none,
            "private ip",
        ),
        // CVEs have no side and are never the organisation's.
        (Cve, "CVE-2024-3400", &learned, &internal, "send"),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(kind, raw, p, f, want)| {
            let got = on(*kind, raw, p, f);
            (got != *want).then(|| format!("{kind} {raw:?}: got {got:?}, want {want:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn registered_domains_follow_the_public_suffix_list() {
    for (name, want) in [
        ("ws-0412.hq.acme.com", Some("acme.com")),
        (
            "ws-0412.hq.kestrel-logistics.co.uk",
            Some("kestrel-logistics.co.uk"),
        ),
        ("acme.com", Some("acme.com")),
        ("co.uk", None),
        ("com", None),
        ("a.b.corp.example", Some("corp.example")),
    ] {
        assert_eq!(registered_domain(name).as_deref(), want, "{name}");
    }
}

#[test]
fn unjudged_domains_need_several_names_or_earlier_evidence() {
    let hosts: Vec<String> = [
        "a.acme.com",
        "b.acme.com",
        "c.acme.com",
        "x.evil.net",
        "y.evil.net",
        "one.seen.org",
        "p.mine.com",
        "q.mine.com",
        "r.mine.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let p = Policy::new(vec!["mine.com".into()], Exclusions::default());
    let got = unjudged_domains(&hosts, &p, &["seen.org".to_string()]);
    let names: Vec<(&str, usize)> = got.iter().map(|u| (u.domain.as_str(), u.hosts)).collect();
    assert_eq!(names, [("acme.com", 3), ("seen.org", 1)]);
}
