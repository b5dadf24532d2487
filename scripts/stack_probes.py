#!/usr/bin/env python3
"""One probe per signal against a running stack, through each component's own HTTP API.

Usage (scripts/stack-smoke.sh runs it after `loadgen run scenarios/error-spike.toml`):

  stack_probes.py --since UNIX_SECONDS [--datasources FILE] [--dashboards DIR]

Probes, each a row of the pass/fail table it prints:

  - Prometheus: ALERTS shows HighErrorRate firing during the run, then no longer firing;
  - Loki: target-app error lines since the run started, carrying a trace_id;
  - Tempo: the trace of such a line, and a trace with spans of both target-app and downstream;
  - Pyroscope: CPU samples (process_cpu) of target-app;
  - correlations: an exemplar of the span-metrics latency histogram names a trace Tempo returns;
    span metrics have series for both services and the service graph the edge target-app →
    downstream (Prometheus); the lines of a trace of both services are in Loki by its trace id; a
    /generate-load span's pyroscope.profile.id returns CPU samples from Pyroscope's span selector;
  - Grafana: /api/datasources/uid/<uid>/health OK for every provisioned datasource, every
    dashboard of dashboards/ loading by uid (admin credentials from GRAFANA_ADMIN_USER and
    GRAFANA_ADMIN_PASSWORD);
  - Alertmanager: the webhook received HighErrorRate firing, then resolved.

Exits 1 when any probe fails. Talks to 127.0.0.1 only; every wait is bounded in attempts and
time. The parse_* functions are pure and unit-tested (scripts/tests/test_stack_probes.py)
against response bodies shaped as the upstream API documentation shows. Standard library only.
"""

import argparse
import base64
import collections
import json
import os
import pathlib
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ALERT = "HighErrorRate"
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


class ProbeError(Exception):
    """A response that is not what the API documents, or not what the probe needs."""


# ---------------------------------------------------------------------------------------------
# Parsers: response body (already decoded JSON) in, facts out. Shape errors raise ProbeError.


def _get(obj, *path):
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or key >= len(obj):
                raise ProbeError(f"expected a list with item {key} at {'.'.join(map(str, path))}")
        elif not isinstance(obj, dict) or key not in obj:
            raise ProbeError(f"expected key {key!r} at {'.'.join(map(str, path))}")
        obj = obj[key]
    return obj


def _prometheus_result(body, result_type):
    if _get(body, "status") != "success":
        raise ProbeError(f"Prometheus answered status {body.get('status')!r}: {body.get('error', '')}")
    got = _get(body, "data", "resultType")
    if got != result_type:
        raise ProbeError(f"expected resultType {result_type!r}, got {got!r}")
    result = _get(body, "data", "result")
    if not isinstance(result, list):
        raise ProbeError("data.result is not a list")
    return result


def parse_alert_states(body, alertname=ALERT):
    """Instant query of ALERTS: the alertstate values (pending, firing) of `alertname`."""
    states = set()
    for sample in _prometheus_result(body, "vector"):
        metric = _get(sample, "metric")
        if metric.get("alertname") == alertname:
            states.add(_get(metric, "alertstate"))
    return states


def parse_firing_times(body, alertname=ALERT):
    """Range query of ALERTS: the timestamps (seconds) at which `alertname` was firing."""
    times = []
    for series in _prometheus_result(body, "matrix"):
        metric = _get(series, "metric")
        if metric.get("alertname") != alertname or metric.get("alertstate") != "firing":
            continue
        times += [float(_get(point, 0)) for point in _get(series, "values")]
    return sorted(times)


def parse_loki_trace_ids(body):
    """Loki query_range over streams: (trace_id, line) of every line that carries a valid trace id.

    The id comes from the stream's labels (structured metadata and parsed JSON fields are
    merged into them) or, failing that, from the line's own JSON."""
    if _get(body, "status") != "success":
        raise ProbeError(f"Loki answered status {body.get('status')!r}")
    if _get(body, "data", "resultType") != "streams":
        raise ProbeError(f"expected resultType 'streams', got {body['data']['resultType']!r}")
    found = []
    for stream in _get(body, "data", "result"):
        labels = _get(stream, "stream")
        for entry in _get(stream, "values"):
            line = _get(entry, 1)
            trace_id = labels.get("trace_id", "")
            if not TRACE_ID.match(trace_id):
                trace_id = _line_trace_id(line)
            if TRACE_ID.match(trace_id):
                found.append((trace_id, line))
    return found


def parse_trace_services(body):
    """Tempo trace by id (v2 `{"trace": {"resourceSpans": …}}` or v1 `{"batches": …}`, OTLP JSON):
    the number of spans per service.name."""
    spans = collections.Counter()
    for rs in _resource_spans(body):
        service = _attribute(rs.get("resource", {}).get("attributes"), "service.name") or "?"
        for scope in rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", [])):
            spans[service] += len(scope.get("spans", []))
    return dict(spans)


def parse_search_trace_ids(body):
    """Tempo search (`/api/search`): the trace ids found."""
    traces = _get(body, "traces")
    if not isinstance(traces, list):
        raise ProbeError("'traces' is not a list")
    return [_get(t, "traceID") for t in traces]


def parse_flamebearer_ticks(body):
    """Pyroscope `/pyroscope/render` (flamebearer): total samples (numTicks) and function names."""
    fb = _get(body, "flamebearer")
    ticks = _get(fb, "numTicks")
    if not isinstance(ticks, int):
        raise ProbeError(f"flamebearer.numTicks is not a number: {ticks!r}")
    names = [n for n in _get(fb, "names") if n != "total"]
    return ticks, names


def parse_exemplar_trace_ids(body):
    """Prometheus `/api/v1/query_exemplars`: the trace ids of the exemplars, newest series first as
    returned, each once. The label is `trace_id` (what Tempo's metrics-generator writes here) or
    `traceID` (Grafana's default); ids that are not 32 hex digits are left out."""
    if _get(body, "status") != "success":
        raise ProbeError(f"Prometheus answered status {body.get('status')!r}: {body.get('error', '')}")
    data = _get(body, "data")
    if not isinstance(data, list):
        raise ProbeError("data is not a list of series with exemplars")
    ids = []
    for series in data:
        _get(series, "seriesLabels")
        for exemplar in _get(series, "exemplars"):
            labels = _get(exemplar, "labels")
            trace_id = labels.get("trace_id", labels.get("traceID", ""))
            if TRACE_ID.match(trace_id) and trace_id not in ids:
                ids.append(trace_id)
    return ids


def parse_label_values(body, label):
    """Instant query: the values of `label` over the result's series."""
    return {_get(sample, "metric").get(label) for sample in _prometheus_result(body, "vector")} - {None}


def parse_service_graph_edges(body):
    """Instant query of `traces_service_graph_request_total` (summed by client and server): the
    (client, server) edges of the service graph that have a non-zero count."""
    edges = set()
    for sample in _prometheus_result(body, "vector"):
        metric = _get(sample, "metric")
        if float(_get(sample, "value", 1)) > 0:
            edges.add((_get(metric, "client"), _get(metric, "server")))
    return edges


def parse_trace_log_services(body, trace_id):
    """Loki query_range of the lines of one trace: the number of lines per service_name. A line that
    carries another trace id means the trace filter did not hold."""
    services = collections.Counter()
    found = parse_loki_trace_ids(body)
    for got, _ in found:
        if got != trace_id:
            raise ProbeError(f"asked for the lines of trace {trace_id}, got one of {got}")
    for stream in _get(body, "data", "result"):
        labels = _get(stream, "stream")
        lines = [e for e in _get(stream, "values") if trace_id in (labels.get("trace_id", ""), _line_trace_id(_get(e, 1)))]
        if lines:
            services[labels.get("service_name", "?")] += len(lines)
    return dict(services)


def _line_trace_id(line):
    try:
        return str(json.loads(line).get("trace_id", ""))
    except (ValueError, AttributeError):
        return ""


def _resource_spans(body):
    if "trace" in body:
        return _get(body, "trace").get("resourceSpans", [])
    if "batches" in body or "resourceSpans" in body:
        return body.get("batches", body.get("resourceSpans"))
    raise ProbeError("expected a trace: no 'trace', 'batches' or 'resourceSpans' key")


def _attribute(attributes, key):
    for attr in attributes or []:
        if attr.get("key") == key:
            value = attr.get("value", {})
            return value.get("stringValue", value.get("intValue"))
    return None


def parse_span_profile_ids(body):
    """Tempo trace by id: (service.name, span name, profile id) of every span that carries
    `pyroscope.profile.id`, the attribute Grafana's "Profiles for this span" follows."""
    found = []
    for rs in _resource_spans(body):
        service = _attribute(rs.get("resource", {}).get("attributes"), "service.name") or "?"
        for scope in rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", [])):
            for span in scope.get("spans", []):
                profile_id = _attribute(span.get("attributes"), "pyroscope.profile.id")
                if profile_id:
                    found.append((service, span.get("name", ""), str(profile_id)))
    return found


def parse_span_profile(body):
    """Pyroscope `SelectMergeSpanProfile` (Connect, JSON): the flame graph's total (samples' value;
    proto3 JSON writes int64 as a string) and its function names."""
    flamegraph = _get(body, "flamegraph")
    total = flamegraph.get("total", 0)
    try:
        total = int(total)
    except (TypeError, ValueError):
        raise ProbeError(f"flamegraph.total is not a number: {total!r}") from None
    return total, [n for n in flamegraph.get("names", []) if n != "total"]


def parse_datasource_health(body):
    """Grafana `/api/datasources/uid/<uid>/health`: (ok, message), or None when the datasource has no
    backend health check (frontend-only plugins such as Alertmanager: Grafana answers 404 without a
    status)."""
    if not isinstance(body, dict):
        raise ProbeError("expected a JSON object")
    if "status" not in body:
        return None
    return body["status"] == "OK", str(body.get("message", ""))


def parse_alertmanager_status(body):
    """Alertmanager `GET /api/v2/status` (through Grafana's datasource proxy): its version."""
    return str(_get(body, "versionInfo", "version"))


def parse_dashboard(body, uid):
    """Grafana `/api/dashboards/uid/<uid>`: (title, number of panels); the uid must match."""
    dashboard = _get(body, "dashboard")
    if dashboard.get("uid") != uid:
        raise ProbeError(f"asked for dashboard {uid!r}, got {dashboard.get('uid')!r}")
    panels = dashboard.get("panels") or []
    count = len(panels) + sum(len(p.get("panels") or []) for p in panels if p.get("type") == "row")
    return str(dashboard.get("title", "")), count


def parse_webhook_deliveries(body, alertname=ALERT):
    """The webhook receiver's `GET /alerts` (newest first; each item holds the received time and
    Alertmanager's webhook payload): the (received, status) of `alertname`, oldest first."""
    if not isinstance(body, list):
        raise ProbeError("expected a list of notifications")
    seen = []
    for item in body:
        received = _get(item, "received")
        for alert in _get(item, "notification", "alerts"):
            if _get(alert, "labels").get("alertname") == alertname:
                seen.append((received, _get(alert, "status")))
    return sorted(seen)


def fired_then_resolved(deliveries):
    """True when a 'firing' delivery is followed by a 'resolved' one."""
    statuses = [status for _, status in deliveries]
    return "firing" in statuses and "resolved" in statuses[statuses.index("firing") + 1 :]


def datasources(path):
    """(uid, type) of every datasource of a Grafana provisioning file. No YAML parser needed: each
    datasource is a `- name:` item of the top-level list, and only datasources have keys spelled
    exactly `uid` and `type` at that indentation."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    found = []
    for item in re.split(r"^  - ", text, flags=re.MULTILINE)[1:]:
        uid = re.search(r"^    uid:\s*[\"']?([\w.-]+)", "    " + item, re.MULTILINE)
        kind = re.search(r"^    type:\s*[\"']?([\w.-]+)", "    " + item, re.MULTILINE)
        if not uid or not kind:
            raise ProbeError(f"{path}: a datasource without uid or type: {item.splitlines()[0]!r}")
        found.append((uid.group(1), kind.group(1)))
    if not found:
        raise ProbeError(f"{path}: no datasource found")
    return found


def dashboard_uids(directory):
    uids = []
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        uid = json.loads(path.read_text(encoding="utf-8")).get("uid")
        if not uid:
            raise ProbeError(f"{path}: the dashboard has no uid")
        uids.append(uid)
    return uids


# ---------------------------------------------------------------------------------------------
# HTTP, loopback only, and bounded waits.


def http_json(url, data=None, headers=None, timeout=10):
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ProbeError(f"{url}: probes talk to loopback addresses only")
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(32 << 20)
    except urllib.error.HTTPError as e:
        raw = e.read(1 << 20)
        try:
            return json.loads(raw)
        except ValueError:
            raise ProbeError(f"{url}: HTTP {e.code}: {raw[:200]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ProbeError(f"{url}: {e}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise ProbeError(f"{url}: not JSON: {raw[:200]!r}") from None


def poll(check, seconds, every=5.0):
    """Calls check() until it returns (True, detail) or `seconds` pass; returns the last (ok, detail)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            ok, detail = check()
        except ProbeError as e:
            ok, detail = False, str(e)
        if ok or time.monotonic() + every > deadline:
            return ok, detail
        time.sleep(every)


class Probes:
    def __init__(self, args):
        self.a = args
        self.rows = []
        self.error_traces = []
        self.both_trace = None

    def row(self, name, ok, detail):
        self.rows.append((name, ok, detail))

    def run(self, name, fn, wait=0):
        ok, detail = poll(fn, wait)
        self.row(name, ok, detail)
        return ok

    def q(self, base, path, **params):
        return f"{base}{path}?{urllib.parse.urlencode(params)}"

    # Prometheus -----------------------------------------------------------------------------
    def alert_fired(self):
        expr = f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}'
        body = http_json(self.q(self.a.prometheus, "/api/v1/query_range", query=expr,
                                start=self.a.since, end=time.time(), step="5s"))
        times = parse_firing_times(body)
        if not times:
            return False, f"{ALERT} never firing since the run started"
        return True, f"firing from {time.strftime('%H:%M:%S', time.localtime(times[0]))}, {len(times)} samples"

    def alert_resolved(self):
        body = http_json(self.q(self.a.prometheus, "/api/v1/query", query=f'ALERTS{{alertname="{ALERT}"}}'))
        states = parse_alert_states(body)
        return (not states), ("no longer active" if not states else f"still {', '.join(sorted(states))}")

    # Loki -----------------------------------------------------------------------------------
    def error_lines(self):
        query = '{service_name="target-app", source="docker"} | json | level="error"'
        body = http_json(self.q(self.a.loki, "/loki/api/v1/query_range", query=query,
                                start=f"{int(self.a.since)}000000000", end=f"{int(time.time() + 1)}000000000",
                                limit=200, direction="backward"))
        found = parse_loki_trace_ids(body)
        self.error_traces = list(dict.fromkeys(t for t, _ in found))
        if not found:
            return False, "no error line of target-app with a trace_id"
        return True, f"{len(found)} error lines with a trace_id ({len(self.error_traces)} traces)"

    # Tempo ----------------------------------------------------------------------------------
    def trace(self, trace_id):
        return parse_trace_services(http_json(f"{self.a.tempo}/api/v2/traces/{trace_id}"))

    def error_trace(self):
        if not self.error_traces:
            return False, "no trace id from Loki to look up"
        services = self.trace(self.error_traces[0])
        if not services.get("target-app"):
            return False, f"trace {self.error_traces[0]}: no target-app span ({services})"
        return True, f"trace {self.error_traces[0]}: {services}"

    def both_services(self):
        candidates = self.error_traces[:10]
        query = ('{ resource.service.name = "target-app" && kind = client } > '
                 '{ resource.service.name = "downstream" && kind = server }')
        body = http_json(self.q(self.a.tempo, "/api/search", q=query, limit=5,
                                start=int(self.a.since), end=int(time.time()) + 1))
        candidates += parse_search_trace_ids(body)[:5]
        for trace_id in candidates:
            services = self.trace(trace_id)
            if services.get("target-app") and services.get("downstream"):
                self.both_trace = trace_id
                return True, f"trace {trace_id}: {services}"
        return False, f"none of {len(candidates)} traces holds spans of both services"

    # Correlations ---------------------------------------------------------------------------
    def prom(self, expr):
        return http_json(self.q(self.a.prometheus, "/api/v1/query", query=expr))

    def exemplar_trace(self):
        """An exemplar of the span-metrics request-duration histogram leads to a trace Tempo has."""
        expr = 'traces_spanmetrics_latency_bucket{service="target-app"}'
        body = http_json(self.q(self.a.prometheus, "/api/v1/query_exemplars", query=expr,
                                start=self.a.since, end=time.time()))
        ids = parse_exemplar_trace_ids(body)
        if not ids:
            return False, "no exemplar with a trace_id on traces_spanmetrics_latency_bucket"
        for trace_id in ids[:5]:
            services = self.trace(trace_id)
            if services.get("target-app"):
                return True, f"{len(ids)} exemplars; trace {trace_id}: {services}"
        return False, f"none of the first {min(len(ids), 5)} exemplar traces found in Tempo"

    def span_metrics(self):
        services = parse_label_values(self.prom(
            'count by (service) (traces_spanmetrics_calls_total{service=~"target-app|downstream"})'), "service")
        ok = {"target-app", "downstream"} <= services
        return ok, f"series for {', '.join(sorted(services)) or 'no service'}"

    def service_graph(self):
        edges = parse_service_graph_edges(self.prom("sum by (client, server) (traces_service_graph_request_total)"))
        ok = ("target-app", "downstream") in edges
        return ok, ", ".join(f"{c} → {s}" for c, s in sorted(edges)) or "no edge"

    def trace_logs(self):
        if not self.both_trace:
            return False, "no trace of both services to look up"
        query = f'{{service_name=~"target-app|downstream", source="docker"}} | trace_id="{self.both_trace}"'
        body = http_json(self.q(self.a.loki, "/loki/api/v1/query_range", query=query,
                                start=f"{int(self.a.since)}000000000", end=f"{int(time.time() + 1)}000000000",
                                limit=100))
        services = parse_trace_log_services(body, self.both_trace)
        ok = bool(services.get("target-app")) and bool(services.get("downstream"))
        return ok, f"trace {self.both_trace}: lines {services or 'none'}"

    def span_profile(self):
        """A /generate-load span's profile id returns CPU samples from Pyroscope's span selector."""
        query = '{ resource.service.name = "target-app" && span.http.route = "/generate-load" }'
        body = http_json(self.q(self.a.tempo, "/api/search", q=query, limit=5,
                                start=int(self.a.since), end=int(time.time()) + 1))
        tried = 0
        for trace_id in parse_search_trace_ids(body)[:5]:
            for service, name, profile_id in parse_span_profile_ids(
                    http_json(f"{self.a.tempo}/api/v2/traces/{trace_id}")):
                tried += 1
                request = {"profileTypeID": CPU, "labelSelector": f'{{service_name="{service}"}}',
                           "spanSelector": [profile_id], "start": str(int(self.a.since * 1000)),
                           "end": str(int(time.time() * 1000) + 1000)}
                profile = http_json(f"{self.a.pyroscope}/querier.v1.QuerierService/SelectMergeSpanProfile",
                                    data=json.dumps(request).encode(),
                                    headers={"Content-Type": "application/json"})
                total, names = parse_span_profile(profile)
                if total > 0:
                    return True, f"span {profile_id} ({name}): {total} ns of CPU, {len(names)} functions"
        if not tried:
            return False, "no /generate-load span with pyroscope.profile.id"
        return False, f"{tried} spans with a profile id, none with samples in Pyroscope"

    # Pyroscope ------------------------------------------------------------------------------
    def cpu_samples(self):
        body = http_json(self.q(self.a.pyroscope, "/pyroscope/render", query=f'{CPU}{{service_name="target-app"}}',
                                **{"from": int(self.a.since), "until": int(time.time()) + 1}, format="json"))
        ticks, names = parse_flamebearer_ticks(body)
        if ticks <= 0:
            return False, "no CPU samples for service_name=target-app"
        return True, f"{ticks} ticks, {len(names)} functions"

    # Grafana --------------------------------------------------------------------------------
    def grafana(self, path):
        user = os.environ.get("GRAFANA_ADMIN_USER", "admin")
        password = os.environ.get("GRAFANA_ADMIN_PASSWORD", "")
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        return http_json(f"{self.a.grafana}{path}", headers={"Authorization": f"Basic {auth}"})

    def datasource(self, uid, kind):
        health = parse_datasource_health(self.grafana(f"/api/datasources/uid/{uid}/health"))
        if health is None and kind == "alertmanager":
            # What Grafana's own "Test" button does for this frontend-only datasource.
            version = parse_alertmanager_status(self.grafana(f"/api/datasources/proxy/uid/{uid}/api/v2/status"))
            return True, f"no backend health check; Alertmanager {version} answers through Grafana's proxy"
        if health is None:
            return False, "Grafana has no health check for this datasource"
        ok, message = health
        return ok, message or ("OK" if ok else "not OK")

    def dashboard(self, uid):
        title, panels = parse_dashboard(self.grafana(f"/api/dashboards/uid/{uid}"), uid)
        return panels > 0, f"{title!r}, {panels} panels"

    # Alertmanager → webhook -----------------------------------------------------------------
    def delivered(self):
        deliveries = parse_webhook_deliveries(http_json(f"{self.a.webhook}/alerts"))
        ok = fired_then_resolved(deliveries)
        return ok, (" → ".join(s for _, s in deliveries) or f"no {ALERT} notification")


def print_table(rows, out=sys.stdout):
    width = max(len(name) for name, _, _ in rows)
    out.write(f"{'probe'.ljust(width)}  result  detail\n")
    for name, ok, detail in rows:
        out.write(f"{name.ljust(width)}  {'pass' if ok else 'FAIL'}    {detail}\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--since", type=float, required=True, help="unix seconds when the scenario started")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("--loki", default="http://127.0.0.1:3100")
    p.add_argument("--tempo", default="http://127.0.0.1:3200")
    p.add_argument("--pyroscope", default="http://127.0.0.1:4040")
    p.add_argument("--grafana", default="http://127.0.0.1:3000")
    p.add_argument("--webhook", default="http://127.0.0.1:8088")
    p.add_argument("--datasources", default="stack/grafana/provisioning/datasources/datasources.yml")
    p.add_argument("--dashboards", default="dashboards")
    p.add_argument("--wait", type=float, default=90, help="longest wait for a signal to arrive, in seconds")
    args = p.parse_args(argv)

    probes = Probes(args)
    w = args.wait
    probes.run(f"prometheus: {ALERT} fired during the run", probes.alert_fired, w)
    probes.run(f"prometheus: {ALERT} resolved", probes.alert_resolved, w)
    probes.run("loki: target-app error lines carry a trace_id", probes.error_lines, w)
    probes.run("tempo: the trace of an error line", probes.error_trace, w)
    probes.run("tempo: a trace with spans of both services", probes.both_services, w)
    probes.run("pyroscope: CPU samples of target-app", probes.cpu_samples, w)
    probes.run("exemplar → trace: a span-metrics latency exemplar's trace in Tempo", probes.exemplar_trace, w)
    probes.run("span metrics: series for target-app and downstream", probes.span_metrics, w)
    probes.run("service graph: edge target-app → downstream", probes.service_graph, w)
    probes.run("trace → logs: both services' lines of a trace in Loki", probes.trace_logs, w)
    probes.run("trace → profile: a /generate-load span's CPU samples", probes.span_profile, w)
    try:
        ds, dash = datasources(args.datasources), dashboard_uids(args.dashboards)
    except (OSError, ValueError, ProbeError) as e:
        probes.row("grafana: provisioned datasources and dashboards", False, str(e))
        ds, dash = [], []
    for uid, kind in ds:
        probes.run(f"grafana: datasource {uid} health", lambda uid=uid, kind=kind: probes.datasource(uid, kind), min(w, 30))
    for uid in dash:
        probes.run(f"grafana: dashboard {uid} loads", lambda uid=uid: probes.dashboard(uid), min(w, 30))
    probes.run(f"alertmanager: webhook got {ALERT} firing, then resolved", probes.delivered, w)

    print_table(probes.rows)
    failed = sum(1 for _, ok, _ in probes.rows if not ok)
    print(f"stack-smoke probes: {len(probes.rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
