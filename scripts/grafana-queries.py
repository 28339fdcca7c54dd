#!/usr/bin/env python3
"""Evaluate every query of the Grafana dashboard against a real Prometheus.

Usage: grafana-queries.py PROMETHEUS_URL DASHBOARD_JSON

Waits until Prometheus has scraped plan-local (job "plan-local" up), then runs each panel's PromQL
(Grafana's $__rate_interval as 1m) through /api/v1/query. Fails on any query Prometheus refuses,
and when the request panels show nothing although the run before sent requests.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # 400: a query Prometheus cannot parse or run
        return json.load(error)


def main():
    base, path = sys.argv[1].rstrip("/"), sys.argv[2]
    deadline = time.monotonic() + 20
    while True:
        up = query(base, 'up{job="plan-local"}')
        if up.get("status") == "success" and any(r["value"][1] == "1" for r in up["data"]["result"]):
            break
        if time.monotonic() > deadline:
            sys.exit(f"Prometheus never scraped plan-local: {up}")
        time.sleep(0.5)
    # Two scrapes at least, so that rate() has two samples.
    time.sleep(2.5)
    with open(path) as file:
        dashboard = json.load(file)
    failures, answered = [], {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            result = query(base, expr)
            if result.get("status") != "success":
                failures.append(f"{panel['title']}: {expr}: {result.get('error')}")
                continue
            series = result["data"]["result"]
            answered[panel["title"]] = answered.get(panel["title"], 0) + len(series)
            print(f"    {panel['title']}: {len(series)} series  {expr}")
    for title in ("API requests", "API latency"):
        if not answered.get(title):
            failures.append(f"{title}: no data, although requests were sent")
    if failures:
        sys.exit("Grafana queries Prometheus refused or answered empty:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
