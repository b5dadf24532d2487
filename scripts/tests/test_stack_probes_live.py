"""The Prometheus and Alertmanager probes of scripts/stack_probes.py against the real servers.

Debian's Prometheus and Alertmanager (installed by scripts/check-stack.sh) and the stack's own webhook
receiver (stack/webhook/receiver.py) run on loopback ports. One rule named HighErrorRate fires for a few
seconds, then stops; the test waits, bounded, until the probes see it fired, then resolved in
Prometheus, and Alertmanager's firing and resolved notifications at the webhook. The other probes
(Loki, Tempo, Pyroscope, Grafana) need servers that cannot run here: their parsers are tested against
documented response bodies in test_stack_probes.py.
"""

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import stack_probes as p  # noqa: E402

# Seconds the rule's condition holds: longer than Prometheus takes to discover the Alertmanager
# (its service discovery updates every 5s; alerts sent before that are dropped).
FIRES_FOR = 12
DEADLINE = 60  # seconds the whole exchange may take


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = pathlib.Path(proc.log_path).read_text(encoding="utf-8", errors="replace")[-2000:]
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered:\n{log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {seconds}s")


def until(check, seconds):
    """Calls check() (returning (ok, detail)) until ok or `seconds` pass; returns the last (ok, detail)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            ok, detail = check()
        except p.ProbeError as e:
            ok, detail = False, str(e)
        if ok or time.monotonic() > deadline:
            return ok, detail
        time.sleep(0.5)


class LiveProbesTest(unittest.TestCase):
    def setUp(self):
        for binary in ("prometheus", "prometheus-alertmanager"):
            if not shutil.which(binary):
                self.fail(f"{binary} is not installed (scripts/check-stack.sh installs Debian's package)")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.procs = []
        self.addCleanup(self.stop)

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start(self, args, env=None):
        path = pathlib.Path(self.tmp.name) / f"{pathlib.Path(args[0]).name}-{len(self.procs)}.log"
        log = open(path, "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        proc.log_path = path
        self.procs.append(proc)
        return proc

    def test_fired_resolved_and_delivered(self):
        d = pathlib.Path(self.tmp.name)
        webhook, am, prom = free_port(), free_port(), free_port()

        hook = self.start(
            [sys.executable, str(ROOT / "stack/webhook/receiver.py")],
            env={**os.environ, "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(webhook)},
        )
        wait_ready(f"http://127.0.0.1:{webhook}/healthz", hook)

        (d / "am.yml").write_text(
            "route:\n  receiver: webhook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    webhook_configs:\n"
            f"      - url: http://127.0.0.1:{webhook}/alerts\n        send_resolved: true\n",
            encoding="utf-8",
        )
        alertmanager = self.start([
            "prometheus-alertmanager", f"--config.file={d / 'am.yml'}", f"--storage.path={d / 'am'}",
            f"--web.listen-address=127.0.0.1:{am}", "--cluster.listen-address=",
        ])
        wait_ready(f"http://127.0.0.1:{am}/-/ready", alertmanager)

        since = time.time()
        (d / "rules.yml").write_text(
            "groups:\n  - name: probe\n    interval: 1s\n    rules:\n      - alert: HighErrorRate\n"
            f"        expr: vector(time()) < {since + FIRES_FOR:.3f}\n        labels:\n"
            "          job: target-app\n",
            encoding="utf-8",
        )
        (d / "prometheus.yml").write_text(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n"
            f"    - static_configs:\n        - targets: ['127.0.0.1:{am}']\n",
            encoding="utf-8",
        )
        prometheus = self.start([
            "prometheus", f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom}",
            # Resend active alerts every second (default 1m), so the ones sent before the Alertmanager
            # was discovered are not the only ones.
            "--rules.alert.resend-delay=1s",
        ])
        wait_ready(f"http://127.0.0.1:{prom}/-/ready", prometheus)

        probes = p.Probes(argparse.Namespace(
            since=since, prometheus=f"http://127.0.0.1:{prom}", webhook=f"http://127.0.0.1:{webhook}",
        ))
        ok, detail = until(probes.alert_fired, DEADLINE)
        self.assertTrue(ok, detail)
        ok, detail = until(probes.alert_resolved, DEADLINE)
        self.assertTrue(ok, detail)
        ok, detail = until(probes.delivered, DEADLINE)
        if not ok:
            logs = "".join(f"\n--- {q.log_path.name}\n{q.log_path.read_text(errors='replace')[-1500:]}" for q in self.procs)
            self.fail(f"{detail}{logs}")
        self.assertEqual(detail, "firing → resolved")

    def test_a_silent_alert_fails_the_probes(self):
        prom = free_port()
        d = pathlib.Path(self.tmp.name)
        (d / "prometheus.yml").write_text("global:\n  evaluation_interval: 1s\n", encoding="utf-8")
        prometheus = self.start([
            "prometheus", f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom}",
        ])
        wait_ready(f"http://127.0.0.1:{prom}/-/ready", prometheus)
        probes = p.Probes(argparse.Namespace(since=time.time() - 60, prometheus=f"http://127.0.0.1:{prom}"))
        ok, detail = probes.alert_fired()
        self.assertFalse(ok)
        self.assertEqual(detail, "HighErrorRate never firing since the run started")


if __name__ == "__main__":
    unittest.main()
