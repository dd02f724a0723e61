#!/usr/bin/env python3
"""A sequential, stateless vendor-style fetch of LogRhythm alarms: the baseline
contrib/bench/pipeline.sh compares lrci with (issue 13).

Like the vendor's script: one request at a time, list pages first (count=100,
offset paging, ascending by dateInserted), then for every alarm its details
(GET /alarms/{id}) and its events (GET /alarms/{id}/events), one after another.
Nothing is kept between runs and nothing is extracted or sent: this is only the
LogRhythm side, so the comparison favours the baseline.

    vendor_baseline.py URL KEY FROM TO     # FROM/TO: RFC 3339, UTC

Prints one JSON object: alarms, requests, wall_seconds. Standard library only;
loopback only (the URL must be http://127.x.x.x).
"""
import json
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

PAGE = 100


def main():
    url, key, start, end = sys.argv[1:5]
    host = urllib.parse.urlparse(url).hostname or ""
    if not host.startswith("127."):
        sys.exit("vendor_baseline.py: only loopback (127.0.0.0/8) may be the target")
    base = url.rstrip("/") + "/lr-alarm-api/"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    hdr = {"Authorization": "Bearer " + key}
    requests = 0

    def get(path):
        nonlocal requests
        requests += 1
        req = urllib.request.Request(base + path, headers=hdr)
        with opener.open(req, timeout=60) as r:
            return json.load(r)

    def parse(s):
        s = s.rstrip("Z")
        if "." in s:
            head, frac = s.split(".", 1)
            s = head + "." + (frac + "000000")[:6]
        d = datetime.fromisoformat(s)
        return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d

    t_from = parse(start)
    t_to = parse(end)
    since = t_from.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    began = time.monotonic()
    ids = []
    offset = 0
    while True:
        q = urllib.parse.urlencode({
            "dateInserted": since, "orderby": "DateInserted", "dir": "ascending",
            "count": PAGE, "offset": offset,
        })
        page = get("alarms?" + q).get("alarmsSearchDetails") or []
        for row in page:
            if t_from <= parse(row["dateInserted"]) < t_to:
                ids.append(row["alarmId"])
        if len(page) < PAGE or parse(page[-1]["dateInserted"]) >= t_to:
            break
        offset += PAGE
    ids = list(dict.fromkeys(ids))
    for i in ids:
        get("alarms/%d" % i)
        try:
            get("alarms/%d/events" % i)
        except urllib.error.HTTPError:
            pass
    wall = time.monotonic() - began
    print(json.dumps({"alarms": len(ids), "requests": requests, "wall_seconds": round(wall, 3)}))


if __name__ == "__main__":
    main()
