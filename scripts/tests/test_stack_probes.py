"""Tests of the response parsers of scripts/stack_probes.py.

Each fixture under fixtures/probes/ is a response body shaped as the upstream API documentation shows
(its first lines, starting with //, name the document). Run from the repository root:
python -m unittest discover -s scripts/tests
"""

import json
import pathlib
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import stack_probes as p  # noqa: E402


def fixture(name):
    text = (HERE / "fixtures" / "probes" / name).read_text(encoding="utf-8")
    return json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))


class PrometheusTest(unittest.TestCase):
    def test_instant_alerts(self):
        self.assertEqual(p.parse_alert_states(fixture("prometheus-alerts-instant.json")), {"firing"})
        self.assertEqual(p.parse_alert_states(fixture("prometheus-alerts-instant.json"), "SLOErrorBudgetBurnFast"), {"pending"})
        self.assertEqual(p.parse_alert_states(fixture("prometheus-alerts-instant-empty.json")), set())

    def test_range_alerts(self):
        self.assertEqual(p.parse_firing_times(fixture("prometheus-alerts-range.json")), [1767139295.0, 1767139300.0, 1767139305.0])
        self.assertEqual(p.parse_firing_times(fixture("prometheus-alerts-range.json"), "ServiceDown"), [])

    def test_wrong_result_type_and_error_answers(self):
        with self.assertRaisesRegex(p.ProbeError, "expected resultType 'matrix', got 'vector'"):
            p.parse_firing_times(fixture("prometheus-alerts-instant.json"))
        with self.assertRaisesRegex(p.ProbeError, "status 'error'.*parse error"):
            p.parse_alert_states(fixture("prometheus-error.json"))


class LokiTest(unittest.TestCase):
    def test_trace_ids_from_labels_or_line(self):
        found = p.parse_loki_trace_ids(fixture("loki-query-range-streams.json"))
        self.assertEqual([t for t, _ in found], ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"])
        self.assertIn('"route":"/external"', found[0][1])

    def test_no_lines(self):
        body = {"status": "success", "data": {"resultType": "streams", "result": []}}
        self.assertEqual(p.parse_loki_trace_ids(body), [])

    def test_metric_answer_is_refused(self):
        body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
        with self.assertRaisesRegex(p.ProbeError, "expected resultType 'streams'"):
            p.parse_loki_trace_ids(body)


class TempoTest(unittest.TestCase):
    def test_v2_trace_with_both_services(self):
        self.assertEqual(p.parse_trace_services(fixture("tempo-trace-v2.json")), {"target-app": 2, "downstream": 1})

    def test_v1_trace(self):
        self.assertEqual(p.parse_trace_services(fixture("tempo-trace-v1.json")), {"target-app": 1})

    def test_not_a_trace(self):
        with self.assertRaisesRegex(p.ProbeError, "expected a trace"):
            p.parse_trace_services({"error": "trace not found"})

    def test_search(self):
        self.assertEqual(p.parse_search_trace_ids(fixture("tempo-search.json")), ["2f3e0cee77ae5dc9c17ade3689eb2e54"])
        with self.assertRaisesRegex(p.ProbeError, "expected key 'traces'"):
            p.parse_search_trace_ids({"metrics": {}})


class PyroscopeTest(unittest.TestCase):
    def test_cpu_samples(self):
        ticks, names = p.parse_flamebearer_ticks(fixture("pyroscope-render.json"))
        self.assertEqual(ticks, 350)
        self.assertEqual(names, ["target_app::work::burn_cpu", "target_app::work::parse_catalog"])

    def test_no_samples(self):
        self.assertEqual(p.parse_flamebearer_ticks(fixture("pyroscope-render-empty.json")), (0, []))


class CorrelationTest(unittest.TestCase):
    def test_exemplar_trace_ids(self):
        # Each id once, in the order given; the docs' non-hex id is left out.
        self.assertEqual(
            p.parse_exemplar_trace_ids(fixture("prometheus-exemplars.json")),
            ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"],
        )
        self.assertEqual(p.parse_exemplar_trace_ids(fixture("prometheus-exemplars-empty.json")), [])
        with self.assertRaisesRegex(p.ProbeError, "status 'error'"):
            p.parse_exemplar_trace_ids(fixture("prometheus-error.json"))
        with self.assertRaisesRegex(p.ProbeError, "not a list"):
            p.parse_exemplar_trace_ids(fixture("prometheus-alerts-instant.json"))

    def test_span_metrics_services(self):
        self.assertEqual(
            p.parse_label_values(fixture("prometheus-spanmetrics-services.json"), "service"),
            {"target-app", "downstream"},
        )
        self.assertEqual(p.parse_label_values(fixture("prometheus-alerts-instant-empty.json"), "service"), set())

    def test_service_graph_edges(self):
        edges = p.parse_service_graph_edges(fixture("prometheus-service-graph.json"))
        self.assertEqual(edges, {("target-app", "downstream"), ("user", "target-app")})

    def test_lines_of_a_trace_per_service(self):
        trace = "0af7651916cd43dd8448eb211c80319c"
        self.assertEqual(p.parse_trace_log_services(fixture("loki-trace-lines.json"), trace), {"target-app": 2, "downstream": 1})
        # Lines of other traces mean the filter did not hold.
        with self.assertRaisesRegex(p.ProbeError, "asked for the lines of trace"):
            p.parse_trace_log_services(fixture("loki-query-range-streams.json"), trace)

    def test_span_profile_ids(self):
        self.assertEqual(
            p.parse_span_profile_ids(fixture("tempo-trace-generate-load.json")),
            [("target-app", "GET /generate-load", "9a517183f26a089d")],
        )
        # Spans without the attribute: no profile to follow.
        self.assertEqual(p.parse_span_profile_ids(fixture("tempo-trace-v2.json")), [])

    def test_span_profile(self):
        total, names = p.parse_span_profile(fixture("pyroscope-span-profile.json"))
        self.assertEqual(total, 200_000_000)
        self.assertIn("target_app::work::price_baskets", names)
        self.assertNotIn("total", names)
        self.assertEqual(p.parse_span_profile(fixture("pyroscope-span-profile-empty.json")), (0, []))
        with self.assertRaisesRegex(p.ProbeError, "flamegraph"):
            p.parse_span_profile({"code": "invalid_argument", "message": "bad selector"})


class GrafanaTest(unittest.TestCase):
    def test_datasource_health(self):
        self.assertEqual(p.parse_datasource_health(fixture("grafana-datasource-health-ok.json")), (True, "Successfully queried the Prometheus API."))
        ok, message = p.parse_datasource_health(fixture("grafana-datasource-health-error.json"))
        self.assertFalse(ok)
        self.assertIn("no such host", message)
        self.assertIsNone(p.parse_datasource_health(fixture("grafana-datasource-health-not-implemented.json")))

    def test_alertmanager_status(self):
        self.assertEqual(p.parse_alertmanager_status(fixture("alertmanager-status.json")), "0.34.0")

    def test_dashboard(self):
        self.assertEqual(p.parse_dashboard(fixture("grafana-dashboard.json"), "chaos-overview"), ("Chaos traffic: overview", 3))
        with self.assertRaisesRegex(p.ProbeError, "asked for dashboard 'chaos-slo', got 'chaos-overview'"):
            p.parse_dashboard(fixture("grafana-dashboard.json"), "chaos-slo")

    def test_provisioned_datasources_and_dashboards_of_the_stack(self):
        root = HERE.parents[1]
        self.assertEqual(
            p.datasources(root / "stack/grafana/provisioning/datasources/datasources.yml"),
            [("prometheus", "prometheus"), ("loki", "loki"), ("tempo", "tempo"),
             ("pyroscope", "grafana-pyroscope-datasource"), ("alertmanager", "alertmanager")],
        )
        uids = p.dashboard_uids(root / "dashboards")
        self.assertEqual(len(uids), len(list((root / "dashboards").glob("*.json"))))

    def test_datasource_without_uid(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "ds.yml"
            path.write_text("apiVersion: 1\ndatasources:\n  - name: Loki\n    type: loki\n", encoding="utf-8")
            with self.assertRaisesRegex(p.ProbeError, "without uid or type: 'name: Loki'"):
                p.datasources(path)


class WebhookTest(unittest.TestCase):
    def test_fired_then_resolved(self):
        deliveries = p.parse_webhook_deliveries(fixture("webhook-alerts.json"))
        self.assertEqual([s for _, s in deliveries], ["firing", "resolved"])
        self.assertTrue(p.fired_then_resolved(deliveries))

    def test_order_matters(self):
        self.assertFalse(p.fired_then_resolved([("1", "firing"), ("2", "firing")]))
        self.assertFalse(p.fired_then_resolved([("1", "resolved"), ("2", "firing")]))
        self.assertFalse(p.fired_then_resolved([]))

    def test_other_alerts_are_ignored(self):
        self.assertEqual([s for _, s in p.parse_webhook_deliveries(fixture("webhook-alerts.json"), "Saturated")], ["firing"])


class LoopbackTest(unittest.TestCase):
    def test_refuses_other_hosts(self):
        with self.assertRaisesRegex(p.ProbeError, "loopback addresses only"):
            p.http_json("http://example.invalid:9090/api/v1/query")


class TableTest(unittest.TestCase):
    def test_rows(self):
        import io

        out = io.StringIO()
        p.print_table([("loki: lines", True, "3 lines"), ("tempo: trace", False, "not found")], out)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[1].split()[-4:], ["lines", "pass", "3", "lines"])
        self.assertIn("FAIL", lines[2])


if __name__ == "__main__":
    unittest.main()
