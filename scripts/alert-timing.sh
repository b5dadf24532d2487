#!/usr/bin/env bash
# Measures how long each shipped alert scenario's alerts take: from fault start to pending and to
# firing, and from fault end to resolved, over several runs (min / median / max), as in
# docs/alert-timing.md. Each run uses loadgen's private Prometheus (1s scrape and evaluation) with the
# stack's rule files, against the embedded target. Beside each figure it puts the prediction made
# without a server (`loadgen plan --predict` for the same Prometheus: 1s, first scrape 5s in) and the
# difference between the measured median and the prediction. With Alertmanager installed, each run also
# has a private Alertmanager with the stack's routing, and the table adds when its notifications (firing,
# resolved) reached loadgen's webhook.
#
# Usage: scripts/alert-timing.sh [RUNS] [PARALLEL]
#   RUNS      runs of each scenario (default 3)
#   PARALLEL  runs at the same time (default 6)
#   OUT=DIR   keep the JSON reports there (default: a temporary directory, removed afterwards)
#   SCENARIOS="a b"  only these scenario names (default: every scenarios/*.toml with alerts_firing)
#   SUMMARY_ONLY=1 OUT=DIR  no runs: print the table again from the reports and predictions kept in DIR
# Prints a Markdown table on stdout; progress goes to stderr. Needs `prometheus` on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
parallel=${2:-6}
command -v prometheus >/dev/null || {
    echo "alert-timing: no prometheus on the PATH (apt-get install -y prometheus)" >&2
    exit 2
}

if [ -n "${OUT:-}" ]; then
    out=$OUT
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

if [ -n "${SUMMARY_ONLY:-}" ]; then
    echo "==> summarising the reports kept in $out" >&2
else
    echo "==> cargo build -p loadgen" >&2
    cargo build -q -p loadgen
    loadgen=target/debug/loadgen

    if [ -n "${SCENARIOS:-}" ]; then
        scenarios=$SCENARIOS
    else
        scenarios=$(grep -l '^[^#]*alerts_firing' scenarios/*.toml | xargs -n1 basename | sed 's/\.toml$//')
    fi

    # Round by round (every scenario once, then again), so each round's runs overlap.
    jobs=()
    for i in $(seq 1 "$runs"); do
        for s in $scenarios; do jobs+=("$s $i"); done
    done

    echo "==> predictions (promtool, no server)" >&2
    mkdir -p "$out/predicted"
    for s in $scenarios; do
        "$loadgen" plan "scenarios/$s.toml" --predict --interval 1s --first-scrape 5s \
            --json "$out/predicted/$s.json" >/dev/null
    done

    echo "==> ${#jobs[@]} runs, $parallel at a time, reports in $out" >&2
    export LOADGEN="$loadgen" REPORTS="$out"
    # shellcheck disable=SC2016 # expanded by the inner shell, once per job
    printf '%s\n' "${jobs[@]}" | xargs -P "$parallel" -L 1 sh -c '
        "$LOADGEN" run "scenarios/$0.toml" --quiet --json "$REPORTS/$0-$1.json" >"$REPORTS/$0-$1.out" 2>&1
        echo "    $0 run $1: exit $?" >&2
    ' || true
fi

python3 - "$out" <<'PY'
import glob, json, os, statistics, sys, tomllib

out = sys.argv[1]

def seconds(text):
    total, num = 0.0, ""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    i = 0
    while i < len(text):
        if text[i].isdigit():
            num += text[i]; i += 1; continue
        unit = "ms" if text.startswith("ms", i) else text[i]
        total += int(num) * units[unit]; num = ""; i += len(unit)
    return total

def predicted(name, alert, scenario, fault_index, fault_length):
    """Predicted (pending, firing, resolved), relative to the planned fault start and end."""
    try:
        p = json.load(open(os.path.join(out, "predicted", f"{name}.json")))
    except OSError:
        return (None, None, None)
    start = sum(seconds(ph["duration"]) for ph in scenario["phases"][:fault_index])
    end = start + fault_length
    a = next((a for a in p["alerts"] if a["name"] == alert), None)
    if a is None:
        return (None, None, None)
    pend = next((i[0] for i in sorted(a["pending"] + a["firing"]) if i[1] > start), None)
    fire = next((i for i in a["firing"] if i[1] > start), None)
    resolved = fire[1] - end if fire and fire[1] < p["duration_s"] else None
    return (None if pend is None else max(pend, start) - start,
            None if fire is None else max(fire[0], start) - start,
            resolved)

rows = {}  # (scenario, alert) -> {"expected": bool, "pending": [], "firing": [], "resolved": [], ...}
runs = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    report = json.load(open(path))
    name = report["scenario"]
    runs.setdefault(name, [0, 0])
    runs[name][0] += 1
    runs[name][1] += report.get("result") == "pass"
    scenario = tomllib.load(open(f"scenarios/{name}.toml", "rb"))
    # The phase that brings the trouble (a fault, or a surge of load): the one expecting alerts to fire.
    firing_phases = {c["phase"] for c in report["alerts"]["checks"] if c["expect"] == "firing"}
    fault_index = next(i for i, p in enumerate(report["phases"]) if p["name"] in firing_phases)
    phase = report["phases"][fault_index]
    start, end = phase["start_s"], phase["end_s"]
    for fault in scenario["phases"][fault_index].get("chaos", []):
        if fault["fault"] == "outage":  # the listener opens again on its own
            end = min(end, start + seconds(fault["duration"]))
    expected = {c["alert"] for c in report["alerts"]["checks"] if c["expect"] == "firing"}
    transitions = report["alerts"]["transitions"]
    for alert in sorted({t["alert"] for t in transitions if t["to"] == "firing"}):
        mine = [t for t in transitions if t["alert"] == alert and t["at_s"] >= start]
        pending = next((t["at_s"] for t in mine if t["to"] in ("pending", "firing")), None)
        firing = next((t["at_s"] for t in mine if t["to"] == "firing"), None)
        resolved = next((t["at_s"] for t in mine if t["to"] == "inactive" and firing and t["at_s"] > firing), None)
        # Notifications loadgen's webhook received from its private Alertmanager (the stack's routing).
        notes = (report["alerts"].get("delivery") or {}).get("notifications", [])
        def notified(status, after):
            return next((n["at_s"] for n in notes if n["at_s"] >= after
                         and any(a["alert"] == alert and a["status"] == status for a in n["alerts"])), None)
        notified_firing = notified("firing", start)
        notified_resolved = notified("resolved", notified_firing) if notified_firing is not None else None
        row = rows.setdefault((name, alert), {"expected": alert in expected, "pending": [], "firing": [], "resolved": [],
                                              "notified": [], "notified_resolved": [],
                                              "predicted": predicted(name, alert, scenario, fault_index, end - start)})
        if pending is not None: row["pending"].append(pending - start)
        if firing is not None: row["firing"].append(firing - start)
        if resolved is not None: row["resolved"].append(resolved - end)
        if notified_firing is not None: row["notified"].append(notified_firing - start)
        if notified_resolved is not None: row["notified_resolved"].append(notified_resolved - end)

def fmt(values):
    if not values:
        return "-"
    v = sorted(values)
    return f"{v[0]:.0f} / {statistics.median(v):.0f} / {v[-1]:.0f}"

def one(v):
    return "-" if v is None else f"{v:.0f}"

def drift(measured, predicted):
    if not measured or predicted is None:
        return "-"
    d = round(statistics.median(measured) - predicted)
    return f"{d:+d}" if d else "0"

print("| scenario | alert | pending predicted | pending measured | firing predicted | firing measured | firing drift "
      "| notified measured | resolved predicted | resolved measured | resolved drift | notified resolved measured | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, alert), row in sorted(rows.items(), key=lambda kv: (kv[0][0], not kv[1]["expected"], kv[0][1])):
    label = f"**{alert}**" if row["expected"] else f"{alert} (also)"
    n = len(row["firing"])
    pp, pf, pr = row["predicted"]
    print(f"| {name} | {label} | {one(pp)} | {fmt(row['pending'])} | {one(pf)} | {fmt(row['firing'])} | "
          f"{drift(row['firing'], pf)} | {fmt(row['notified'])} | {one(pr)} | {fmt(row['resolved'])} | "
          f"{drift(row['resolved'], pr)} | {fmt(row['notified_resolved'])} | {n} |")
print()
print("seconds; measured: min / median / max; drift: measured median minus predicted; notified: arrival of "
      "the private Alertmanager's notification at loadgen's webhook, firing from the fault start, resolved from "
      "the fault end; **bold**: the alert the scenario expects; (also): fired as a consequence")
for name, (total, passed) in sorted(runs.items()):
    print(f"- {name}: {passed} of {total} runs passed")
PY
