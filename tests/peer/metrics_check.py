"""Parses lrci's --metrics-file with prometheus_client's own text-format parser
(the one the Prometheus Python ecosystem uses) and checks the series lrci promises.

Usage: metrics_check.py FILE
Prints TAP-style `ok - ` / `not ok - ` lines; exits 1 when a check failed.
"""
import sys

from prometheus_client.parser import text_string_to_metric_families

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
failed = False


def check(name, ok, detail=""):
    global failed
    print(f"ok - {name}" if ok else f"not ok - {name}: {detail}")
    failed = failed or not ok


try:
    families = {f.name: f for f in text_string_to_metric_families(text)}
except Exception as e:  # the parser raises ValueError and friends on bad input
    check("metrics: the file parses as Prometheus text format", False, repr(e))
    sys.exit(1)
check("metrics: the file parses as Prometheus text format", True)


def samples(name):
    f = families.get(name)
    return [] if f is None else f.samples


def one(name, **labels):
    found = [s for s in samples(name) if all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0].value if len(found) == 1 else None


RUN = ["lrci_last_run_timestamp_seconds", "lrci_last_run_duration_seconds",
       "lrci_last_run_exit_code", "lrci_last_success_timestamp_seconds"]
LEDGER = ["lrci_budget_used", "lrci_budget_limit", "lrci_coverage_lag_seconds",
          "lrci_visibility_lag_seconds", "lrci_saturated_slices", "lrci_alarms_in_error"]
for name in RUN + LEDGER + ["lrci_detections"]:
    check(f"metrics: {name} is present and a gauge",
          name in families and families[name].type == "gauge",
          sorted(families))

# Two profiles ran: "good" succeeded, "bad" was refused (77); each keeps its own series.
for profile, code in (("good", 0), ("bad", 77)):
    check(f"metrics: exit code of sync for profile {profile} is {code}",
          one("lrci_last_run_exit_code", command="sync", profile=profile) == code,
          [s for s in samples("lrci_last_run_exit_code")])
    ts = one("lrci_last_run_timestamp_seconds", command="sync", profile=profile)
    check(f"metrics: last run time of {profile} is a plausible Unix time",
          ts is not None and ts > 1.6e9, ts)
    d = one("lrci_last_run_duration_seconds", command="sync", profile=profile)
    check(f"metrics: duration of {profile} is >= 0", d is not None and d >= 0, d)
check("metrics: the successful profile has a last success time",
      one("lrci_last_success_timestamp_seconds", command="sync", profile="good") is not None)
check("metrics: the refused profile has none",
      one("lrci_last_success_timestamp_seconds", command="sync", profile="bad") is None)
states = {s.labels.get("state") for s in samples("lrci_detections")
          if s.labels.get("profile") == "good"}
check("metrics: detections by state", states >= {"pending", "sent", "failed", "rejected", "excluded"},
      states)
sent = one("lrci_detections", profile="good", state="sent")
check("metrics: the good profile sent detections", sent is not None and sent > 0, sent)
limit = one("lrci_budget_limit", profile="good")
used = one("lrci_budget_used", profile="good")
check("metrics: budget used <= limit", None not in (used, limit) and 0 < used <= limit, (used, limit))
lag = one("lrci_coverage_lag_seconds", profile="good")
check("metrics: coverage lag is known and under an hour after a sync", lag is not None and 0 <= lag < 3600, lag)
vis = one("lrci_visibility_lag_seconds", profile="good")
check("metrics: visibility lag observed (first seen - dateInserted) is >= 0", vis is not None and vis >= 0, vis)
sys.exit(1 if failed else 0)
