use super::*;

#[test]
fn escape_neutralises_terminal_controls() {
    for (raw, want) in [
        ("plain.example", "plain.example"),
        (
            "a\u{1b}[2J\u{1b}]0;pwned\u{7}b",
            "a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}b",
        ),
        ("line\nbreak\r", "line\\u{a}break\\u{d}"),
        ("abc\u{202e}gpj.exe", "abc\\u{202e}gpj.exe"),
        ("zero\u{200b}width", "zero\\u{200b}width"),
        ("sep\u{2028}nel\u{85}", "sep\\u{2028}nel\\u{85}"),
        ("nul\0", "nul\\u{0}"),
        ("пример.испытание", "пример.испытание"),
    ] {
        assert_eq!(escape(raw), want, "{raw:?}");
    }
}

#[test]
fn cell_truncates_with_an_ellipsis_after_escaping() {
    assert_eq!(cell("short", 10), "short");
    assert_eq!(cell("exactly10!", 10), "exactly10!");
    assert_eq!(cell("0123456789abc", 10), "012345678…");
    assert_eq!(cell("ééééééééééé", 5), "éééé…");
    assert_eq!(cell("\u{202e}\u{202e}", 8), "\\u{202e…");
}

#[test]
fn times_are_shown_in_utc_without_fraction() {
    assert_eq!(when("2026-11-27T20:53:22.123Z"), "2026-11-27 20:53:22");
    assert_eq!(when("not a time\u{1b}"), "not a time\\u{1b}");
}

#[test]
fn json_output_escapes_what_serde_json_leaves_raw() {
    let v = json!({"v": "a\u{202e}b\u{7f}c\u{85}d\u{200b}e\u{2028}f\u{1b}g пример"});
    let raw = serde_json::to_vec(&v).unwrap();
    let safe = json_safe(&raw).into_owned();
    let text = String::from_utf8(safe.clone()).unwrap();
    assert!(!text.chars().any(crate::text::is_unsafe), "{text}");
    assert!(text.contains("пример"));
    let back: Value = serde_json::from_slice(&safe).unwrap();
    assert_eq!(back, v);
    let plain = serde_json::to_vec(&json!({"v": "ok"})).unwrap();
    assert!(matches!(json_safe(&plain), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn csv_columns_match_the_export_row() {
    let row = ExportRow {
        detection_id: 1,
        alarm_id: 2.into(),
        rule_name: "r".into(),
        date_inserted: "d".into(),
        entity_name: None,
        rbp_max: Some(3),
        decision: "accepted".parse().unwrap(),
        ioc_type: "ip".into(),
        value: "8.8.8.8".into(),
        field: "originIP".into(),
        state: "sent".parse().unwrap(),
        reason: None,
        attempts: 1,
        last_error: None,
        created_at: "c".into(),
        updated_at: "u".into(),
        sent_at: None,
        submission_id: Some(4),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(&row).unwrap();
    let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
    assert_eq!(text.lines().next().unwrap(), EXPORT_COLUMNS.join(","));
}

#[test]
fn durations_read_well() {
    assert_eq!(human_duration(None), "-");
    assert_eq!(human_duration(Some(2.345)), "2.3s");
    assert_eq!(human_duration(Some(62.0)), "1m02s");
    assert_eq!(human_duration(Some(7322.0)), "2h02m");
}

#[test]
fn status_covers_whole_hours_before_the_current_one() {
    use chrono::TimeZone;
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 42, 7).unwrap();
    let (from, to) = last_days(now, 2);
    assert_eq!(to, Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap());
    assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap());
}
