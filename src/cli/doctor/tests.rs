use super::*;

#[test]
fn exit_code_takes_the_most_important_class() {
    let fail = |c| Check::fail("x", c, "d");
    assert_eq!(exit_code(&[Check::ok("a", ""), Check::warn("b", "")]), 0);
    assert_eq!(exit_code(&[fail(69), fail(77)]), 77);
    assert_eq!(exit_code(&[fail(77), fail(65)]), 65);
    assert_eq!(exit_code(&[fail(65), fail(78), fail(69)]), 78);
    assert_eq!(exit_code(&[Check::info("i", ""), fail(69)]), 69);
}

#[test]
fn rf_token_form() {
    assert!(looks_like_rf_token("0123456789abcdef0123456789abcdef"));
    assert!(!looks_like_rf_token("0123456789ABCDEF0123456789abcdef"));
    assert!(!looks_like_rf_token("short"));
}

#[test]
fn chain_skips_transparent_repeats() {
    let inner = std::io::Error::other("disk on fire");
    let e = ledger::Error::CreateDir {
        path: "/x".into(),
        source: inner,
    };
    let text = chain(&e);
    assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
}

#[test]
fn the_clock_check_warns_beyond_thirty_seconds_either_way() {
    let s = chrono::Duration::seconds;
    for (skew, warns, says) in [
        (None, None, ""),
        (Some(s(0)), Some(false), "clocks agree"),
        (Some(s(-30)), Some(false), "clocks agree"),
        (Some(s(-31)), Some(true), "31 s ahead of LogRhythm's"),
        (Some(s(300)), Some(true), "300 s behind LogRhythm's"),
        (Some(s(-10_800)), Some(true), "10800 s ahead of"),
    ] {
        let got = clock_note(skew);
        assert_eq!(got.as_ref().map(|g| g.0), warns, "{skew:?}");
        assert!(
            got.map_or(String::new(), |g| g.1).contains(says),
            "{skew:?}"
        );
    }
}
