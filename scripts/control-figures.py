#!/usr/bin/env python3
"""Figures of live control (docs/benchmarks.md, "loadgen: live control"), measured for real against a
target-app on loopback; printed, never asserted.

  1. Rate change: free play at 1000 requests/s, changed to 1500 through the control API; the
     per-second sends of the JSON report after the change (reached within 1 s? within 2% over the next
     2 s? never above 110%?).
  2. Fault switch: an error fault switched on and off through the control API; how long until the
     target's own /metrics shows chaos_fault_active{fault="error"} at 1, then 0 (polled every 10 ms).
  3. Replay: a two-phase scenario steered live (rate, fault on, fault off) with --record, then the
     recording run; requests per phase and fault windows of both JSON reports side by side.

Usage: scripts/control-figures.py [BIN_DIR]   (default target/release; needs loadgen and target-app)
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_up(url, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if http("GET", url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"no answer from {url}")


def loadgen(args, control):
    proc = subprocess.Popen([f"{BIN}/loadgen", "run", "--quiet", "--control", f"127.0.0.1:{control}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(f"http://127.0.0.1:{control}/api/state")
    return proc


def order(control, body):
    status, text = http("POST", f"http://127.0.0.1:{control}/api/control", body)
    if status != 200:
        sys.exit(f"order {body} refused: {status} {text}")
    return json.loads(text)


def rate_change(target, tmp):
    control, report = free_port(), os.path.join(tmp, "rate.json")
    proc = loadgen(["--rps", "1000", "--target", target, "--json", report], control)
    time.sleep(6)
    change = order(control, {"action": "rate", "rps": 1500})
    time.sleep(6)
    order(control, {"action": "stop"})
    proc.wait(60)
    series = json.load(open(report))["series"]
    at = change["at_s"]
    first = int(at) + 1  # the first whole second after the change
    sent = {p["second"]: p["sent"] for p in series}
    after = [sent.get(s, 0) for s in range(first, first + 2)]
    before = [sent.get(s, 0) for s in range(first - 4, first - 1)]
    peak = max(p["sent"] for p in series)
    print("1. rate change 1000 -> 1500 requests/s")
    print(f"   change at {at:.3f} s; seconds before it sent {before}")
    print(f"   second {first - 1} (the change inside it) sent {sent.get(first - 1, 0)}")
    print(f"   next 2 whole seconds sent {after}: mean {sum(after) / 2:.1f}/s "
          f"({(sum(after) / 2 / 1500 - 1) * 100:+.2f}% of 1500)")
    print(f"   highest second of the run {peak} ({peak / 1500 * 100:.1f}% of 1500)")


def fault_switch(target, tmp):
    control = free_port()
    proc = loadgen(["--rps", "100", "--target", target], control)
    time.sleep(2)

    def gauge():
        text = http("GET", f"{target}/metrics")[1]
        for line in text.splitlines():
            if line.startswith('chaos_fault_active{') and 'fault="error"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    print("2. fault switch through the control API -> target-app chaos_fault_active{fault=\"error\"}")
    for body, want in [({"action": "fault_on", "fault": {"fault": "error", "ratio": 0.5}}, 1.0),
                       ({"action": "fault_off", "kind": "error"}, 0.0)]:
        sent = time.time()
        order(control, body)
        answered = time.time()
        scrapes = 0
        while gauge() != want and scrapes < 200:
            scrapes += 1
            time.sleep(0.01)
        print(f"   {body['action']}: answered in {(answered - sent) * 1000:.1f} ms; the first scrape after "
              f"the answer showed {want:.0f}: {'yes' if scrapes == 0 else f'no, {scrapes} scrapes later'}")
    order(control, {"action": "stop"})
    proc.wait(60)


SCENARIO = """name = "steered-replay"
seed = 21
[[mix]]
path = "/"
weight = 3
[[mix]]
path = "/external"
weight = 1
[[phases]]
name = "one"
duration = "10s"
rate = { shape = "constant", rps = 200 }
[[phases]]
name = "two"
duration = "10s"
rate = { shape = "ramp", from = 200, to = 400 }
"""


def replay(target, tmp):
    path = os.path.join(tmp, "steered.toml")
    open(path, "w").write(SCENARIO)
    control, live, record, again = free_port(), *(os.path.join(tmp, f) for f in ["live.json", "rec.toml", "again.json"])
    proc = loadgen([path, "--target", target, "--json", live, "--record", record], control)
    start = time.time()
    script = [(3, {"action": "rate", "rps": 400}),
              (5, {"action": "fault_on", "fault": {"fault": "error", "ratio": 0.2}}),
              (8, {"action": "fault_off", "kind": "error"}),
              (12, {"action": "rate", "factor": 1.5}),
              (14, {"action": "fault_on", "fault": {"fault": "latency", "delay": "50ms"}})]
    for at, body in script:
        time.sleep(max(0.0, start + at - time.time()))
        order(control, body)
    proc.wait(120)
    subprocess.run([f"{BIN}/loadgen", "run", record, "--quiet", "--target", target, "--json", again],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    a, b = json.load(open(live)), json.load(open(again))
    print("3. replay of a steered run (--record), requests per phase and fault windows")
    per = {}
    for p in b["phases"]:
        per[p["name"].split("~")[0]] = per.get(p["name"].split("~")[0], 0) + p["totals"]["requests"]
    for p in a["phases"]:
        n, m = p["totals"]["requests"], per.get(p["name"], 0)
        print(f"   phase {p['name']}: live {n}, replayed {m} ({(m - n) / max(n, 1) * 100:+.2f}%)")

    def windows(report):
        out = []
        for w in report["fault_windows"]:
            if out and abs(w["start_s"] - out[-1][1]) < 0.05 and w["faults"] == out[-1][2]:
                out[-1] = (out[-1][0], w["end_s"], w["faults"])
            else:
                out.append((w["start_s"], w["end_s"], w["faults"]))
        return out

    for (s1, e1, f1), (s2, e2, f2) in zip(windows(a), windows(b)):
        print(f"   window {','.join(f1)}: live {s1:.3f}-{e1:.3f} s, replayed {s2:.3f}-{e2:.3f} s "
              f"(start {(s2 - s1) * 1000:+.0f} ms, end {(e2 - e1) * 1000:+.0f} ms)")
    print(f"   windows live {len(windows(a))}, replayed {len(windows(b))}")


def main():
    port = free_port()
    target = f"http://127.0.0.1:{port}"
    app = subprocess.Popen([f"{BIN}/target-app", "--listen", f"127.0.0.1:{port}", "--max-concurrency", "100000"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"{target}/health")
        with tempfile.TemporaryDirectory() as tmp:
            rate_change(target, tmp)
            fault_switch(target, tmp)
            replay(target, tmp)
    finally:
        app.terminate()
        app.wait(10)


if __name__ == "__main__":
    main()
