#!/usr/bin/env python3
"""Summarises tools/bench/targets.sh output: one row per label and
configuration, every round's figure, and the median."""
import json
import statistics
import sys
from collections import OrderedDict

rows = OrderedDict()
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    v = json.loads(line)
    rows.setdefault((v["label"], v["clients"], v["batch"]), []).append(v)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


print("| run | clients x batch | events/s (each round) | median | p99 ms (median) | "
      "events/sync | server us/event | load tool us/event | growing ceiling | ratio | "
      "pre-written ceiling | ratio | threads | RSS MiB |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (label, c, b), vs in rows.items():
    rate = [v["events_per_sec"] for v in vs]
    srv = [v.get("server") or {} for v in vs]
    ceil = [v.get("ceiling") or {} for v in vs]
    g = [x.get("growing", {}).get("events_per_sec") for x in ceil]
    p = [x.get("prewritten", {}).get("events_per_sec") for x in ceil]
    gr = [x.get("growing", {}).get("ratio") for x in ceil]
    pr = [x.get("prewritten", {}).get("ratio") for x in ceil]
    print(f"| {label} | {c} x {b} | {', '.join(f'{r:,.0f}' for r in rate)} | {med(rate):,.0f} | "
          f"{med([v['latency_ms']['p99'] for v in vs]):.2f} | "
          f"{med([s.get('events_per_sync') for s in srv]):.1f} | "
          f"{med([s.get('cpu_us_per_event') for s in srv]):.2f} | "
          f"{med([v['load_tool']['cpu_us_per_event'] for v in vs]):.2f} | "
          f"{med(g):,.0f} | {med(gr):.2f} | {med(p):,.0f} | {med(pr):.2f} | "
          f"{max(s.get('threads', 0) for s in srv):.0f} | "
          f"{max(s.get('resident_mib', 0) for s in srv):.1f} |")
idle = [v for v in sum(rows.values(), []) if v.get("idle_connections")]
if idle:
    print()
    print("idle connections that failed their ping afterwards:",
          sum(v["idle_failed_ping"] for v in idle), "of",
          sum(v["idle_connections"] for v in idle))
