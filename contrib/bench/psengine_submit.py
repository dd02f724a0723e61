#!/usr/bin/env python3
"""The vendor-SDK side of contrib/bench/submit_cpu.sh: Recorded Future's own Python
SDK (psengine 2.14.0) building and posting the detections an lrci ledger holds as
due (`pending` or `failed`), the same items `lrci replay` posts, to the same
Collective Insights endpoint.

    RF_BASE_URL=http://127.0.0.1:PORT RF_TOKEN=... python psengine_submit.py LEDGER [BATCH]

The rows are read from the ledger with Python's sqlite3 (read-only, one query, in
id order, as lrci pages them), each becomes a psengine detection with lrci's
mapping (DESIGN.md section 1: incident id = alarm id, name = rule name, type
`logrhythm-alarm`, detection type `correlation`, the rule name as detection name,
ioc.field, ioc.source_type or `logrhythm`, the alarm's dateInserted as timestamp),
and they are submitted in batches of BATCH (default 500, lrci's batch_size) with
debug=False. Prints the number of items posted.
"""

import sqlite3
import sys


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit('usage: psengine_submit.py LEDGER [BATCH]')
    ledger = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) == 3 else 500
    # psengine reads RF_BASE_URL and RF_TOKEN when it is imported.
    from psengine.collective_insights import CollectiveInsights

    ci = CollectiveInsights()
    db = sqlite3.connect(f'file:{ledger}?mode=ro', uri=True)
    rows = db.execute(
        """SELECT d.alarm_id, a.rule_name, a.date_inserted, d.ioc_type, d.value, d.field,
                  d.source_type
           FROM detections d JOIN alarms a ON a.alarm_id = d.alarm_id
           WHERE d.state IN ('pending', 'failed') ORDER BY d.id"""
    )
    posted = 0
    items = []
    for alarm_id, rule, at, kind, value, field, source in rows:
        items.append(
            ci.create(
                ioc_value=value,
                ioc_type=kind,
                timestamp=at,
                detection_type='correlation',
                detection_name=rule,
                ioc_field=field,
                ioc_source_type=source or 'logrhythm',
                incident_id=str(alarm_id),
                incident_name=rule,
                incident_type='logrhythm-alarm',
            )
        )
        if len(items) == batch:
            ci.submit(items, debug=False)
            posted += len(items)
            items = []
    if items:
        ci.submit(items, debug=False)
        posted += len(items)
    print(f'psengine: posted {posted} detections')


if __name__ == '__main__':
    main()
