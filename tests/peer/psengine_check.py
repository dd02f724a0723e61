#!/usr/bin/env python3
"""Peer check: Recorded Future's own SDK (psengine 2.14.0) against the lrci simulator.

Driven by tests/peer/run.sh. Environment (read by psengine at import time):
  RF_BASE_URL  the simulator's base URL (with or without a trailing slash; with one,
               psengine requests `//collective-insights/...`)
  RF_TOKEN     a 32-character lower-case token the simulator accepts
Arguments:
  1. path of a JSON file to write: {"live": [items as psengine sent them],
     "debug_values": [ioc values sent with debug=True]}, for run.sh to compare with
     the simulator's GET /_sim/received
  2. a short label for this pass (keeps indicator values distinct between passes)

Prints one line per check, `ok - <name>` or `not ok - <name>: <detail>`, and exits
non-zero if any check failed.
"""

import hashlib
import json
import os
import random
import sys

FAILED = []


def check(name, condition, detail=''):
    """Record and print one check."""
    if condition:
        print(f'ok - {name}', flush=True)
    else:
        FAILED.append(name)
        print(f'not ok - {name}: {detail}', flush=True)


def processed_counts(result):
    """The response's summary.processed as a plain dict (psengine names `hash` `hash_`)."""
    p = result.result.summary.processed
    return {
        'ip': p.ip,
        'domain': p.domain,
        'hash': p.hash_,
        'vulnerability': p.vulnerability,
        'url': p.url,
    }


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: psengine_check.py <expectations.json> <label>')
    out_path, label = sys.argv[1], sys.argv[2]
    for var in ('RF_BASE_URL', 'RF_TOKEN'):
        if not os.environ.get(var):
            sys.exit(f'{var} must be set')

    # psengine reads RF_BASE_URL when its endpoints module is imported.
    from psengine.collective_insights import CollectiveInsights, CollectiveInsightsError
    from psengine.endpoints import EP_COLLECTIVE_INSIGHTS_DETECTIONS

    base = os.environ['RF_BASE_URL']
    check(
        f'{label}: psengine builds its URL from RF_BASE_URL',
        EP_COLLECTIVE_INSIGHTS_DETECTIONS == base + '/collective-insights/detections',
        EP_COLLECTIVE_INSIGHTS_DETECTIONS,
    )

    rng = random.Random()
    tag = f'{label}-{rng.randrange(16**8):08x}'
    octet = 10 + 20 * (sum(map(ord, label)) % 10)
    ci = CollectiveInsights()

    incident = {
        'incident_id': f'peer-{tag}',
        'incident_name': 'AIE: peer check',
        'incident_type': 'logrhythm-alarm',
    }
    domain = f'peer-{tag}.example.com'
    live = [
        ci.create(
            ioc_value=f'203.0.113.{octet}',
            ioc_type='ip',
            timestamp='2025-03-14T09:26:53Z',
            detection_type='correlation',
            detection_id='p_default_ip_risklist',
            detection_name='RF IP risk list correlation',
            ioc_field='originIP',
            ioc_source_type='LogRhythm',
            mitre_codes=['T1071.001'],
            malwares='ExampleRAT',
            **incident,
        ),
        ci.create(
            ioc_value=domain,
            ioc_type='domain',
            timestamp='2025-03-14T09:27:00.123Z',
            detection_type='playbook',
            ioc_field='domain',
            **incident,
        ),
        # Same domain in upper case: the simulator counts it once.
        ci.create(
            ioc_value=domain.upper(),
            ioc_type='domain',
            timestamp='2025-03-14T09:28:00Z',
            detection_type='playbook',
            ioc_field='impactedHostName',
            **incident,
        ),
        ci.create(
            ioc_value=hashlib.sha256(tag.encode()).hexdigest(),
            ioc_type='hash',
            timestamp='2025-03-14T08:02:11Z',
            detection_type='detection_rule',
            detection_sub_type='sigma',
            detection_id='doc:o6_lui',
            ioc_field='hash',
        ),
        ci.create(
            ioc_value=f'https://peer-{tag}.example.com/invoice.zip',
            ioc_type='url',
            timestamp='2025-03-14T07:45:00Z',
            detection_type='sandbox',
        ),
        ci.create(
            ioc_value=f'CVE-2099-{rng.randrange(10000, 99999)}',
            ioc_type='vulnerability',
            timestamp='2025-03-13T22:10:05Z',
            detection_type='correlation',
        ),
        # Zone-less timestamp: psengine keeps it naive; the simulator is lenient.
        ci.create(
            ioc_value=f'203.0.113.{octet + 1}',
            ioc_type='ip',
            timestamp='2025-03-14T09:30:00',
            detection_type='correlation',
        ),
    ]
    debug_items = [
        ci.create(
            ioc_value=f'203.0.113.{octet + 5}',
            ioc_type='ip',
            timestamp='2025-03-14T09:26:53Z',
            detection_type='playbook',
        ),
        ci.create(
            ioc_value=f'debug-{tag}.example.com',
            ioc_type='domain',
            timestamp='2025-03-14T09:26:53Z',
            detection_type='playbook',
        ),
        ci.create(
            ioc_value=f'https://debug-{tag}.example.com/x',
            ioc_type='url',
            timestamp='2025-03-14T09:26:53Z',
            detection_type='sandbox',
        ),
    ]

    # Live submission.
    result = ci.submit(live, debug=False)
    check(f'{label}: live submit status ok', result.result.status == 'ok', result.result.status)
    check(f'{label}: live submit echoes debug=false', result.result.debug is False)
    expected = {'ip': 2, 'domain': 1, 'hash': 1, 'vulnerability': 1, 'url': 1}
    got = processed_counts(result)
    check(f'{label}: live submit processed counts', got == expected, f'{got} != {expected}')

    # Debug submission.
    result = ci.submit(debug_items, debug=True)
    check(f'{label}: debug submit echoes debug=true', result.result.debug is True)
    expected = {'ip': 1, 'domain': 1, 'hash': 0, 'vulnerability': 0, 'url': 1}
    got = processed_counts(result)
    check(f'{label}: debug submit processed counts', got == expected, f'{got} != {expected}')

    # Search through psengine's pager (page_size 2 forces several offset pages).
    live_values = {i.ioc.value for i in live}
    debug_values = {i.ioc.value for i in debug_items}
    found = ci.search(
        indicator_type=['ip', 'domain'], submission_method='api', max_results=1000, page_size=2
    )
    ours = [e for e in found if e.indicator.value in live_values | debug_values]
    want = sorted(i.ioc.value for i in live if i.ioc.type_.value in ('ip', 'domain'))
    got_values = sorted(e.indicator.value for e in ours)
    check(f'{label}: search pages through ip+domain events', got_values == want, f'{got_values}')
    check(
        f'{label}: search events are api submissions',
        all(e.submission_method == 'api' for e in ours),
    )
    check(
        f'{label}: search never shows debug items',
        not any(e.indicator.value in debug_values for e in found),
    )
    rules = ci.search(detection_type='detection_rule', max_results=1000)
    check(
        f'{label}: search by detection_type',
        any(e.indicator.value == live[3].ioc.value for e in rules)
        and all(e.detection_type == 'detection_rule' for e in rules),
        [e.detection_type for e in rules],
    )
    future = ci.search(detection_time_from='2099-01-01T00:00:00Z', max_results=10)
    check(f'{label}: search by detection_time finds nothing in the future', future == [])

    # A well-formed token the simulator does not know: 401, surfaced by psengine.
    try:
        CollectiveInsights(rf_token='z' * 32).submit(live[:1], debug=True)
        check(f'{label}: unknown token rejected', False, 'submit succeeded')
    except CollectiveInsightsError as err:
        check(f'{label}: unknown token rejected with 401', '401' in str(err), str(err))

    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(
            {'live': [i.json() for i in live], 'debug_values': sorted(debug_values)},
            f,
        )
    sys.exit(1 if FAILED else 0)


if __name__ == '__main__':
    main()
