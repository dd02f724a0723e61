#!/usr/bin/env python3
"""Peer check: every detection item lrci sends passes psengine 2.14.0's own models.

Driven by tests/peer/run.sh after an `lrci sync` with every item option on
(a detection-types file with each type, mitre_codes, malwares). Reads the
simulator's GET /_sim/received (only lrci's items: run.sh resets the simulator
first) and validates:
  - each item with psengine's `Insight` model, extra fields forbidden
    (RF_MODEL_EXTRA=forbid, read by psengine when its models are defined);
  - all of them together as the `data` of psengine's request model `InsightsOut`;
  - that every shape was produced: each detection.type, detection_rule with
    sub_type and id, mitre_codes, malwares, ioc.source_type, incident.name;
  - lrci's own rules: no empty string anywhere, strict ATT&CK ids only.

Arguments: the /_sim/received URL. Prints `ok - ...` / `not ok - ...` lines.
"""

import json
import os
import re
import sys
import urllib.request

os.environ['RF_MODEL_EXTRA'] = 'forbid'

FAILED = []


def check(name, condition, detail=''):
    if condition:
        print(f'ok - {name}', flush=True)
    else:
        FAILED.append(name)
        print(f'not ok - {name}: {detail}', flush=True)


def empty_strings(value, path='item'):
    """Paths of every empty string (or list of nothing) inside value."""
    if isinstance(value, str):
        return [path] if value == '' else []
    if isinstance(value, list):
        found = [path] if not value else []
        for i, v in enumerate(value):
            found += empty_strings(v, f'{path}[{i}]')
        return found
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            found += empty_strings(v, f'{path}.{k}')
        return found
    return []


def main():
    (url,) = sys.argv[1:]
    from pydantic import ValidationError
    from psengine.collective_insights.insight import Insight, InsightsOut

    with urllib.request.urlopen(url, timeout=30) as response:
        items = json.load(response)
    check('items: lrci sent some', len(items) > 50, f'{len(items)} items')

    refused = []
    for item in items:
        try:
            Insight.model_validate(item)
        except ValidationError as e:
            refused.append((item.get('ioc', {}).get('value'), str(e).splitlines()[:3]))
    check(f'items: psengine Insight accepts all {len(items)} (extra fields forbidden)',
          not refused, f'{len(refused)} refused, e.g. {refused[:3]}')
    try:
        InsightsOut.model_validate({'data': items, 'options': {'debug': False, 'summary': True}})
        whole = True
    except ValidationError as e:
        whole = str(e).splitlines()[:3]
    check('items: psengine InsightsOut accepts them as one request', whole is True, whole)

    types = {i['detection']['type'] for i in items}
    for t in ('correlation', 'playbook', 'sandbox', 'detection_rule'):
        check(f'shape: detection.type {t} sent', t in types, sorted(types))
    rules = [i['detection'] for i in items if i['detection']['type'] == 'detection_rule']
    check('shape: detection_rule carries sub_type and id',
          rules and all(r.get('sub_type') and r.get('id') for r in rules), rules[:2])
    mitre = [c for i in items for c in i.get('mitre_codes') or []]
    check('shape: mitre_codes sent', bool(mitre), 'none')
    strict = re.compile(r'^T\d{4}(\.\d{3})?$')
    check('mitre_codes: strict technique ids only',
          all(strict.match(c) for c in mitre), sorted({c for c in mitre if not strict.match(c)}))
    check('shape: malwares sent', any(i.get('malwares') for i in items), 'none')
    sources = {i['ioc'].get('source_type') for i in items}
    check('shape: ioc.source_type is the log source, not one constant',
          len(sources - {None}) >= 2, sorted(map(str, sources)))
    check('shape: incident.name is the rule name, not the id',
          all(i['incident'].get('name') and i['incident']['name'] != i['incident']['id']
              for i in items if 'incident' in i), 'an incident without its rule name')
    empties = [p for i in items for p in empty_strings(i)]
    check('items: no empty string or empty list is sent', not empties, empties[:5])
    print(f'# {len(items)} items: types {sorted(types)}, {len(mitre)} mitre codes, '
          f'{sum(1 for i in items if i.get("malwares"))} with malwares', flush=True)
    sys.exit(1 if FAILED else 0)


if __name__ == '__main__':
    main()
