//! The simulated LogRhythm Alarm API, over real HTTP on 127.0.0.1: auth, every list
//! parameter, paging modes, shapes of details/events/summary, date rendering, and
//! the generator's scenarios.

use crate::harness::*;
use lrci::sim::gen::{self, Scenario};
use lrci::sim::{AlarmsCount, EmptyList, EventsWrapper, OffsetMode, SimConfig};
use serde_json::Value;
use std::collections::BTreeMap;

const LIST: &str = "/lr-alarm-api/alarms";

// ---- auth -------------------------------------------------------------------------

#[tokio::test]
async fn missing_token_is_401_with_envelope() {
    let sim = start(config()).await;
    let r = client()
        .get(format!("{}{LIST}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["statusCode"], 401);
    assert_eq!(v["statusMessage"], "Unauthorized");
    assert!(v["responseMessage"].is_string());
}

#[tokio::test]
async fn unknown_token_is_401() {
    let sim = start(config()).await;
    let r = client()
        .get(format!("{}{LIST}", sim.url()))
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn low_privilege_token_is_403_on_every_route() {
    let sim = start(config()).await;
    for path in [
        LIST,
        "/lr-alarm-api/alarms/1001",
        "/lr-alarm-api/alarms/1001/events",
    ] {
        let r = client()
            .get(format!("{}{path}", sim.url()))
            .bearer_auth("low-priv-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["statusCode"], 403);
        assert_eq!(v["statusMessage"], "Forbidden");
    }
}

// ---- dateInserted -----------------------------------------------------------------

#[tokio::test]
async fn date_inserted_is_an_inclusive_lower_bound() {
    let sim = start(config()).await;
    let t = truth(&sim).await;
    let target = &t[37];
    let d = target["dateInserted"].as_str().unwrap();
    let (s, v) = lr_json(
        &sim,
        &format!("{LIST}?dateInserted={d}&orderby=DateInserted&dir=ascending&count=5"),
    )
    .await;
    assert_eq!(s, 200);
    let first = t.iter().position(|a| a["dateInserted"] == d).unwrap();
    assert_eq!(
        ids(&v)[0],
        t[first]["alarmId"].as_i64().unwrap(),
        "the alarm at exactly the bound is included"
    );
    for r in rows(&v) {
        assert!(r["dateInserted"].as_str().unwrap() >= d);
    }
}

#[tokio::test]
async fn every_listed_date_form_is_accepted_as_utc() {
    let sim = start(config()).await;
    let t = truth(&sim).await;
    // First alarm at or after 10:00:00 UTC on 2024-05-14.
    let want = t
        .iter()
        .find(|a| a["dateInserted"].as_str().unwrap() >= "2024-05-14T10:00:00")
        .unwrap()["alarmId"]
        .as_i64()
        .unwrap();
    for form in [
        "2024-05-14T10:00:00Z",
        "2024-05-14T10:00:00",
        "2024-05-14T10:00:00.0",
        "2024-05-14T10:00:00.000",
        "2024-05-14T10:00:00.0000000",
        "2024-05-14T10:00:00.0000000Z",
        "2024-05-14T12:00:00%2B02:00",
        "2024-05-14%2010:00:00",
        "5/14/2024%2010:00:00",
        "5/14/2024%2010:00",
    ] {
        let (s, v) = lr_json(
            &sim,
            &format!("{LIST}?dateInserted={form}&orderby=DateInserted&dir=ascending&count=1"),
        )
        .await;
        assert_eq!(s, 200, "{form}");
        assert_eq!(ids(&v), vec![want], "{form}");
    }
    // Date-only forms mean midnight UTC: the whole window.
    for form in ["2024-05-14", "5/14/2024"] {
        let (_, v) = lr_json(
            &sim,
            &format!("{LIST}?dateInserted={form}&orderby=DateInserted&dir=ascending&count=1"),
        )
        .await;
        assert_eq!(ids(&v), vec![1001], "{form}");
    }
}

#[tokio::test]
async fn unparseable_date_is_400() {
    let sim = start(config()).await;
    for bad in ["yesterday", "2021-13-45T99:99:99", ""] {
        let (s, v) = lr_json(&sim, &format!("{LIST}?dateInserted={bad}")).await;
        assert_eq!(s, 400, "{bad:?}");
        assert_eq!(v["statusCode"], 400);
    }
}

// ---- ordering ----------------------------------------------------------------------

#[tokio::test]
async fn orderby_without_dir_is_newest_first() {
    let sim = start(config()).await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?orderby=DateInserted&count=10")).await;
    let dates: Vec<String> = rows(&v)
        .iter()
        .map(|r| r["dateInserted"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted);
    assert_eq!(ids(&v)[0], 1240, "the newest of 240 alarms comes first");
}

#[tokio::test]
async fn orderby_ascending_returns_oldest_first() {
    let sim = start(config()).await;
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=10"),
    )
    .await;
    assert_eq!(ids(&v), (1001..=1010).collect::<Vec<_>>());
}

#[tokio::test]
async fn orderby_rule_name_breaks_ties_by_alarm_id_ascending() {
    let sim = start(SimConfig {
        page_cap: 1000,
        ..config()
    })
    .await;
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=AlarmRuleName&dir=descending&count=1000"),
    )
    .await;
    let r = rows(&v);
    assert_eq!(r.len(), 240);
    for w in r.windows(2) {
        let (a, b) = (
            w[0]["alarmRuleName"].as_str().unwrap(),
            w[1]["alarmRuleName"].as_str().unwrap(),
        );
        assert!(a >= b);
        if a == b {
            assert!(w[0]["alarmId"].as_i64() < w[1]["alarmId"].as_i64());
        }
    }
}

#[tokio::test]
async fn bad_orderby_or_dir_is_400() {
    let sim = start(config()).await;
    assert_eq!(lr_get(&sim, &format!("{LIST}?orderby=rbpMax")).await.0, 400);
    assert_eq!(
        lr_get(&sim, &format!("{LIST}?orderby=DateInserted&dir=up"))
            .await
            .0,
        400
    );
}

// ---- paging -------------------------------------------------------------------------

#[tokio::test]
async fn count_above_page_cap_is_silently_truncated() {
    let sim = start(config()).await;
    let (s, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=1000"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(rows(&v).len(), 100);
    assert_eq!(v["alarmsCount"], 100);
}

#[tokio::test]
async fn offset_is_ignored_by_default() {
    let sim = start(config()).await;
    let (_, a) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=50"),
    )
    .await;
    let (_, b) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=50&offset=50"),
    )
    .await;
    assert_eq!(ids(&a), ids(&b));
}

#[tokio::test]
async fn offset_skips_records_in_records_mode() {
    let sim = start(SimConfig {
        offset_mode: OffsetMode::Records,
        ..config()
    })
    .await;
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=50&offset=50"),
    )
    .await;
    assert_eq!(ids(&v), (1051..=1100).collect::<Vec<_>>());
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=50&offset=230"),
    )
    .await;
    assert_eq!(
        ids(&v),
        (1231..=1240).collect::<Vec<_>>(),
        "short last page"
    );
}

#[tokio::test]
async fn offset_is_a_page_index_in_pages_mode() {
    let sim = start(SimConfig {
        offset_mode: OffsetMode::Pages,
        ..config()
    })
    .await;
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=50&offset=2"),
    )
    .await;
    assert_eq!(ids(&v), (1101..=1150).collect::<Vec<_>>());
}

#[tokio::test]
async fn empty_result_is_null_by_default() {
    let sim = start(config()).await;
    let (s, v) = lr_json(&sim, &format!("{LIST}?dateInserted=2030-01-01T00:00:00")).await;
    assert_eq!(s, 200);
    assert!(v["alarmsSearchDetails"].is_null());
    assert_eq!(v["alarmsCount"], 0);
    assert_eq!(v["statusMessage"], "OK");
}

#[tokio::test]
async fn empty_result_can_be_an_empty_array() {
    let sim = start(SimConfig {
        empty_list: EmptyList::Empty,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?dateInserted=2030-01-01T00:00:00")).await;
    assert_eq!(v["alarmsSearchDetails"], serde_json::json!([]));
}

#[tokio::test]
async fn alarms_count_can_be_the_total() {
    let sim = start(SimConfig {
        alarms_count: AlarmsCount::Total,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?count=10")).await;
    assert_eq!(rows(&v).len(), 10);
    assert_eq!(v["alarmsCount"], 240);
}

// ---- filters and parameter names ------------------------------------------------------

#[tokio::test]
async fn alarm_status_filter_accepts_numbers_and_names() {
    let sim = start(SimConfig {
        page_cap: 1000,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?alarmStatus=0&count=1000")).await;
    let by_num = ids(&v);
    assert!(!by_num.is_empty());
    assert!(rows(&v).iter().all(|r| r["alarmStatus"] == 0));
    let (_, v) = lr_json(&sim, &format!("{LIST}?alarmStatus=New&count=1000")).await;
    assert_eq!(ids(&v), by_num);
    assert_eq!(lr_get(&sim, &format!("{LIST}?alarmStatus=12")).await.0, 400);
}

#[tokio::test]
async fn rule_name_and_entity_filters_are_exact() {
    let sim = start(SimConfig {
        page_cap: 1000,
        ..config()
    })
    .await;
    let rule = "Recorded Future: Risk List Match - IP";
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?alarmRuleName={}&count=1000", urlenc(rule)),
    )
    .await;
    assert!(!rows(&v).is_empty());
    assert!(rows(&v).iter().all(|r| r["alarmRuleName"] == rule));
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?alarmRuleName=Recorded%20Future&count=1000"),
    )
    .await;
    assert!(
        v["alarmsSearchDetails"].is_null(),
        "a prefix does not match"
    );
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?entityName=Primary%20Site&count=1000"),
    )
    .await;
    assert!(!rows(&v).is_empty());
    assert!(rows(&v).iter().all(|r| r["entityName"] == "Primary Site"));
}

#[tokio::test]
async fn parameter_names_are_case_insensitive_and_unknown_ones_ignored() {
    let sim = start(config()).await;
    let (_, a) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=7"),
    )
    .await;
    let (s, b) = lr_json(
        &sim,
        &format!(
            "{LIST}?OrderBy=dateinserted&DIR=Ascending&COUNT=7&dateInserted_end=2024-01-01&bogus=1"
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(ids(&a).len(), 7);
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- shapes -----------------------------------------------------------------------

#[tokio::test]
async fn list_rows_have_exactly_the_seven_fields_in_order() {
    let sim = start(config()).await;
    let (_, raw) = lr_get(&sim, &format!("{LIST}?count=3")).await;
    assert_eq!(
        keys_in_order(&raw, &[]),
        [
            "alarmsSearchDetails",
            "alarmsCount",
            "statusCode",
            "statusMessage",
            "responseMessage"
        ]
    );
    for i in ["0", "1", "2"] {
        assert_eq!(
            keys_in_order(&raw, &["alarmsSearchDetails", i]),
            [
                "alarmId",
                "alarmRuleName",
                "alarmStatus",
                "alarmDataCached",
                "associatedCases",
                "entityName",
                "dateInserted"
            ]
        );
    }
}

#[tokio::test]
async fn associated_cases_carry_the_leading_space_quirk() {
    let sim = start(SimConfig {
        page_cap: 1000,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?count=1000")).await;
    let two = rows(&v)
        .into_iter()
        .find(|r| r["associatedCases"].as_array().unwrap().len() == 2)
        .expect("some alarm has two cases");
    let c = two["associatedCases"].as_array().unwrap();
    assert!(!c[0].as_str().unwrap().starts_with(' '));
    assert!(c[1].as_str().unwrap().starts_with(' '));
}

#[tokio::test]
async fn details_have_the_spec_fields_order_and_nulls() {
    let sim = start(config()).await;
    let (s, raw) = lr_get(&sim, "/lr-alarm-api/alarms/1001").await;
    assert_eq!(s, 200);
    assert_eq!(
        keys_in_order(&raw, &["alarmDetails"]),
        [
            "alarmRuleID",
            "alarmId",
            "personId",
            "alarmDate",
            "alarmStatus",
            "alarmStatusName",
            "entityId",
            "entityName",
            "alarmRuleName",
            "lastUpdatedID",
            "lastUpdatedName",
            "dateInserted",
            "dateUpdated",
            "associatedCases",
            "lastPersonID",
            "eventCount",
            "eventDateFirst",
            "eventDateLast",
            "rbpMax",
            "rbpAvg",
            "smartResponseActions",
            "alarmDataCached"
        ]
    );
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let d = &v["alarmDetails"];
    assert_eq!(d["alarmId"], 1001);
    assert!(d["lastPersonID"].is_null() && d["smartResponseActions"].is_null());
    let rbp = d["rbpMax"].as_i64().unwrap();
    assert!((0..=100).contains(&rbp) && d["rbpAvg"].as_i64().unwrap() <= rbp);
    assert_eq!(v["statusCode"], 200);
    assert_eq!(v["responseMessage"], "Success");
}

#[tokio::test]
async fn events_have_all_103_fields_sentinels_and_nested_objects() {
    let sim = start(config()).await;
    let (s, raw) = lr_get(&sim, "/lr-alarm-api/alarms/1001/events").await;
    assert_eq!(s, 200);
    let keys = keys_in_order(&raw, &["alarmEventsDetails", "0"]);
    assert_eq!(keys, gen::EVENT_FIELDS.to_vec());
    assert_eq!(keys.len(), 103);
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let evs = v["alarmEventsDetails"].as_array().unwrap();
    assert_eq!(evs.len(), 1, "one event by default");
    let e = &evs[0];
    assert_eq!(e["normalDateMax"], "0001-01-01T00:00:00");
    assert_eq!(e["impactedLocation"]["type"], "NULL");
    assert_eq!(e["impactedLocation"]["recordStatus"], "Deleted");
    assert_eq!(
        e["originNetwork"]["beginIPRange"],
        serde_json::json!({"value": ""})
    );
    assert_eq!(e["originNetwork"]["hostZone"], "Unknown");
    assert!(e["amount"].is_null() && e["senderIdentityId"].is_null());
    assert_eq!(e["processId"], -1);
}

#[tokio::test]
async fn events_per_alarm_and_wrapper_are_configurable() {
    let sim = start(SimConfig {
        events_per_alarm: 3,
        events_wrapper: EventsWrapper::AlarmsEventDetails,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, "/lr-alarm-api/alarms/1002/events").await;
    assert!(v.get("alarmEventsDetails").is_none());
    assert_eq!(v["alarmsEventDetails"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn summary_has_the_spec_shape() {
    let sim = start(config()).await;
    let (s, raw) = lr_get(&sim, "/lr-alarm-api/alarms/1003/summary").await;
    assert_eq!(s, 200);
    assert_eq!(
        keys_in_order(&raw, &["alarmSummaryDetails"]),
        [
            "dateInserted",
            "rbpMax",
            "rbpAvg",
            "alarmRuleId",
            "alarmRuleGroup",
            "briefDescription",
            "additionalDetails",
            "alarmEventSummary"
        ]
    );
    assert_eq!(
        keys_in_order(&raw, &["alarmSummaryDetails", "alarmEventSummary", "0"]).len(),
        14
    );
    let (_, d) = lr_json(&sim, "/lr-alarm-api/alarms/1003").await;
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        v["alarmSummaryDetails"]["rbpMax"],
        d["alarmDetails"]["rbpMax"]
    );
    assert_eq!(
        v["alarmSummaryDetails"]["alarmRuleId"],
        d["alarmDetails"]["alarmRuleID"]
    );
}

#[tokio::test]
async fn unknown_alarm_is_404_and_non_numeric_id_is_400() {
    let sim = start(config()).await;
    for suffix in ["", "/events", "/summary"] {
        let (s, v) = lr_json(&sim, &format!("/lr-alarm-api/alarms/999999{suffix}")).await;
        assert_eq!(s, 404, "{suffix}");
        assert_eq!(v["responseMessage"], "Alarm ID: 999999 not found.");
        let (s, _) = lr_json(&sim, &format!("/lr-alarm-api/alarms/abc{suffix}")).await;
        assert_eq!(s, 400, "{suffix}");
    }
    assert_eq!(lr_get(&sim, "/lr-alarm-api/alarms/summary").await.0, 400);
}

#[tokio::test]
async fn events_and_summary_are_404_while_an_alarm_is_not_ready() {
    let sim = start(SimConfig {
        not_ready: std::time::Duration::from_secs(3600),
        ..config()
    })
    .await;
    let ids = sim.state().generate(1, chrono::Utc::now());
    let id = ids[0];
    assert_eq!(
        lr_get(&sim, &format!("/lr-alarm-api/alarms/{id}")).await.0,
        200
    );
    assert_eq!(
        lr_get(&sim, &format!("/lr-alarm-api/alarms/{id}/events"))
            .await
            .0,
        404
    );
    assert_eq!(
        lr_get(&sim, &format!("/lr-alarm-api/alarms/{id}/summary"))
            .await
            .0,
        404
    );
    // An old alarm is ready.
    assert_eq!(
        lr_get(&sim, "/lr-alarm-api/alarms/1001/events").await.0,
        200
    );
}

// ---- dates ------------------------------------------------------------------------

#[tokio::test]
async fn dates_are_utc_without_zone_trimmed_and_on_sql_ticks() {
    let sim = start(SimConfig {
        page_cap: 1000,
        ..config()
    })
    .await;
    let (_, v) = lr_json(&sim, &format!("{LIST}?count=1000")).await;
    let mut digits = BTreeMap::new();
    for r in rows(&v) {
        let d = r["dateInserted"].as_str().unwrap();
        assert!(!d.ends_with('Z'), "{d}");
        assert_eq!(&d[10..11], "T");
        let frac = d.get(20..).unwrap_or("");
        *digits.entry(frac.len()).or_insert(0) += 1;
        if !frac.is_empty() {
            assert_eq!(&d[19..20], ".");
            assert!(!frac.ends_with('0'), "trailing zero in {d}");
            let ms: u32 = format!("{frac:0<3}").parse().unwrap();
            assert!(matches!(ms % 10, 0 | 3 | 7), "{d} is not on a tick");
        }
        let parsed = chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert!(parsed.and_utc() < end() && parsed.and_utc() >= end() - chrono::Duration::hours(4));
    }
    // 1, 2 and 3 fraction digits all occur (.x0 and .x00 values get trimmed).
    for n in [1, 2, 3] {
        assert!(
            digits.get(&n).copied().unwrap_or(0) > 0,
            "no {n}-digit fractions: {digits:?}"
        );
    }
}

// ---- generator --------------------------------------------------------------------

#[tokio::test]
async fn same_seed_gives_identical_ground_truth_and_other_seed_differs() {
    let a = start(config()).await;
    let b = start(config()).await;
    let c = start(SimConfig {
        seed: 2,
        ..config()
    })
    .await;
    let get =
        |u: String| async move { client().get(u).send().await.unwrap().bytes().await.unwrap() };
    let ta = get(format!("{}/_sim/alarms", a.url())).await;
    let tb = get(format!("{}/_sim/alarms", b.url())).await;
    let tc = get(format!("{}/_sim/alarms", c.url())).await;
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    let (_, ea) = lr_get(&a, "/lr-alarm-api/alarms/1100/events").await;
    let (_, eb) = lr_get(&b, "/lr-alarm-api/alarms/1100/events").await;
    assert_eq!(ea, eb);
}

#[tokio::test]
async fn ground_truth_matches_what_is_served() {
    let sim = start(config()).await;
    let t = truth(&sim).await;
    assert_eq!(t.len(), 240);
    for a in t.iter().step_by(17) {
        let id = a["alarmId"].as_i64().unwrap();
        let (_, d) = lr_json(&sim, &format!("/lr-alarm-api/alarms/{id}")).await;
        let (_, e) = lr_json(&sim, &format!("/lr-alarm-api/alarms/{id}/events")).await;
        assert_eq!(a["details"], d["alarmDetails"]);
        assert_eq!(a["events"], e["alarmEventsDetails"]);
        assert_eq!(a["dateInserted"], d["alarmDetails"]["dateInserted"]);
        assert_eq!(a["alarmRuleName"], d["alarmDetails"]["alarmRuleName"]);
    }
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn default_mix_is_realistic() {
    let sim = start(SimConfig {
        hours: 24,
        alarms_per_hour: 50,
        ..config()
    })
    .await;
    let t = truth(&sim).await;
    let rf_rules = t
        .iter()
        .filter(|a| {
            a["alarmRuleName"]
                .as_str()
                .unwrap()
                .starts_with("Recorded Future")
        })
        .count();
    assert!(rf_rules > 0 && rf_rules < t.len());
    let rbps: Vec<i64> = t
        .iter()
        .map(|a| a["details"]["rbpMax"].as_i64().unwrap())
        .collect();
    assert!(rbps.iter().any(|&r| r < 10) && rbps.iter().any(|&r| r > 90));
    let (mut public4, mut public6, mut private) = (0, 0, 0);
    let mut fields = Vec::new();
    for a in &t {
        for e in a["events"].as_array().unwrap() {
            for f in ["impactedIP", "originIP"] {
                match e[f]
                    .as_str()
                    .map(|s| s.parse::<std::net::IpAddr>().unwrap())
                {
                    Some(std::net::IpAddr::V4(ip))
                        if ip.is_private()
                            || ip.is_loopback()
                            || ip.is_link_local()
                            || ip.octets()[0] == 100 =>
                    {
                        private += 1
                    }
                    Some(std::net::IpAddr::V4(ip)) => {
                        assert!(!ip.is_documentation(), "{ip}");
                        public4 += 1
                    }
                    Some(std::net::IpAddr::V6(ip)) if (ip.segments()[0] & 0xe000) == 0x2000 => {
                        assert_ne!(ip.segments()[..2], [0x2001, 0x0db8]);
                        public6 += 1
                    }
                    Some(std::net::IpAddr::V6(_)) => private += 1,
                    None => {}
                }
            }
            all_strings(e, &mut fields);
        }
    }
    assert!(
        public4 > 50 && public6 > 10 && private > 50,
        "{public4} {public6} {private}"
    );
    let has = |pred: &dyn Fn(&str) -> bool| fields.iter().any(|s| pred(s));
    assert!(has(&|s| s.ends_with(".local")));
    assert!(has(&|s| s.ends_with(".internal")));
    assert!(has(&|s| s.ends_with(".lan")));
    assert!(has(&|s| s == "fileserver"));
    assert!(
        has(&|s| s.contains("://") && s.contains('@')),
        "a URL with userinfo"
    );
    assert!(
        has(&|s| s.starts_with("CVE-") && s.matches("CVE-").count() == 2),
        "two CVEs in one field"
    );
    assert!(has(&|s| s == "Unknown") && has(&|s| s == "NULL") && has(&|s| s == "-1"));
}

#[tokio::test]
async fn burst_hour_holds_350_alarms_with_120_identical() {
    let cfg = SimConfig {
        scenario: Scenario::Burst,
        ..config()
    };
    let sim = start(cfg).await;
    let t = truth(&sim).await;
    let start_h = gen::burst_hour_start(sim.state().gen_params());
    let lo = lrci::sim::time::render_lr(start_h);
    let hi = lrci::sim::time::render_lr(start_h + chrono::Duration::hours(1));
    let in_hour: Vec<&Value> = t
        .iter()
        .filter(|a| {
            let d = a["dateInserted"].as_str().unwrap();
            d >= lo.as_str() && d < hi.as_str()
        })
        .collect();
    assert_eq!(in_hour.len(), 350);
    let mut same: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &in_hour {
        *same.entry(a["dateInserted"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(same.values().max(), Some(&120));
    assert_eq!(t.len(), 3 * 60 + 350);
    // A full page at that instant shares one timestamp: the saturation case.
    let instant = same.iter().find(|(_, &n)| n == 120).unwrap().0;
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?dateInserted={instant}&orderby=DateInserted&dir=ascending&count=100"),
    )
    .await;
    assert!(rows(&v).iter().all(|r| r["dateInserted"] == *instant));
    assert_eq!(rows(&v).len(), 100);
}

#[tokio::test]
async fn hostile_scenario_serves_everything_and_ground_truth_is_consistent() {
    let sim = start(SimConfig {
        scenario: Scenario::Hostile,
        hours: 6,
        alarms_per_hour: 60,
        ..config()
    })
    .await;
    let t = truth(&sim).await;
    assert_eq!(t.len(), 360);
    let mut unparseable = 0;
    let mut invalid_utf8 = 0;
    for a in &t {
        let id = a["alarmId"].as_i64().unwrap();
        let (s, raw) = lr_get(&sim, &format!("/lr-alarm-api/alarms/{id}/events")).await;
        assert_eq!(s, 200, "alarm {id}");
        if std::str::from_utf8(&raw).is_err() {
            invalid_utf8 += 1;
        }
        match serde_json::from_slice::<Value>(&raw) {
            Ok(v) => {
                let served = v
                    .get("alarmEventsDetails")
                    .or_else(|| v.get("alarmsEventDetails"))
                    .unwrap();
                assert_eq!(&a["events"], served, "alarm {id}");
            }
            Err(_) => {
                unparseable += 1;
                assert!(a["events"].is_null(), "alarm {id}");
                assert!(a["eventsUnparseable"].is_string(), "alarm {id}");
            }
        }
        let (s, d) = lr_json(&sim, &format!("/lr-alarm-api/alarms/{id}")).await;
        assert_eq!(s, 200);
        assert_eq!(a["details"], d["alarmDetails"]);
    }
    // 72 hostile alarms cover the 63-item corpus once: 6 bodies are not parseable JSON
    // (lone surrogate, invalid UTF-8, deep nesting, 1e99999, HTML), one is not UTF-8.
    assert!(unparseable >= 5, "{unparseable}");
    assert!(invalid_utf8 >= 1);
    let normal = t
        .iter()
        .filter(|a| a["alarmId"].as_i64().unwrap() % 5 != 2)
        .count();
    assert_eq!(normal, 288, "most alarms stay normal");
    // Every hostile rule name is listed intact and the list still pages.
    let (_, v) = lr_json(
        &sim,
        &format!("{LIST}?orderby=DateInserted&dir=ascending&count=100"),
    )
    .await;
    assert_eq!(rows(&v).len(), 100);
    let names: Vec<&str> = t
        .iter()
        .map(|a| a["alarmRuleName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"'); DROP TABLE indicators;--"));
    assert!(names.iter().any(|n| n.contains('\u{202e}')));
}
