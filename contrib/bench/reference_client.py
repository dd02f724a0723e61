#!/usr/bin/env python3
"""The machine's floor for contrib/bench/pipeline.sh: the LogRhythm requests a
sync needs (list pages, then every alarm's events), made by the simplest
concurrent client, with nothing else done (no parsing beyond the list, no
ledger, no extraction, nothing sent). Its wall ÷ ideal says how far latency
and concurrency alone can be met on this machine with this simulator (which
shares the CPU), so lrci's own ratio can be read against it.

    reference_client.py URL KEY FROM TO CONCURRENCY     # FROM/TO: RFC 3339, UTC

List pages go one after another (count=1000, offset paging); then the events
requests run CONCURRENCY at a time on threads. Prints one JSON object:
alarms, requests, wall_seconds. Standard library only; loopback only.
"""
import json
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PAGE = 1000


def main():
    url, key, start, end, conc = sys.argv[1:6]
    host = urllib.parse.urlparse(url).hostname or ""
    if not host.startswith("127."):
        sys.exit("reference_client.py: only loopback (127.0.0.0/8) may be the target")
    base = url.rstrip("/") + "/lr-alarm-api/"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    hdr = {"Authorization": "Bearer " + key}

    def get(path):
        req = urllib.request.Request(base + path, headers=hdr)
        try:
            with opener.open(req, timeout=60) as r:
                return r.read()
        except urllib.error.HTTPError:
            return b"null"

    began = time.monotonic()
    requests = 0
    ids = []
    offset = 0
    since = start.rstrip("Z")
    while True:
        q = urllib.parse.urlencode({
            "dateInserted": since, "orderby": "DateInserted", "dir": "ascending",
            "count": PAGE, "offset": offset,
        })
        requests += 1
        page = json.loads(get("alarms?" + q)).get("alarmsSearchDetails") or []
        ids += [r["alarmId"] for r in page if r["dateInserted"].rstrip("Z") < end.rstrip("Z")]
        if len(page) < PAGE or page[-1]["dateInserted"].rstrip("Z") >= end.rstrip("Z"):
            break
        offset += PAGE
    ids = list(dict.fromkeys(ids))
    with ThreadPoolExecutor(int(conc)) as pool:
        for _ in pool.map(lambda i: get("alarms/%d/events" % i), ids):
            requests += 1
    wall = time.monotonic() - began
    print(json.dumps({"alarms": len(ids), "requests": requests, "wall_seconds": round(wall, 3)}))


if __name__ == "__main__":
    main()
