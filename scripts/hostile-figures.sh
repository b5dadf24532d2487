#!/usr/bin/env bash
# Figures for docs/reliability.md, printed as Markdown tables (not tests). Everything runs on loopback.
#
#   scripts/hostile-figures.sh hostile [SECONDS]  # loadgen against each hostile target, default 60 s each
#   scripts/hostile-figures.sh soak [MINUTES]     # target-app held at its shedding limit, default 5 min
#
# `hostile` runs the ignored test `hostile::figures_for_a_minute_against_each_target` (the test servers of
# loadgen/tests/it/hostile.rs) on a release build: 50 rps, 1 s timeout, one target after the other.
# `soak` starts the release target-app with --max-concurrency 64 and offers it about 100 concurrent
# requests (/slow?ms=100 at 1000 rps, from loadgen), sampling its RSS and open descriptors every 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."

hostile() {
    local seconds=${1:-60}
    # Build, then run the test binary directly: cargo's build lock is not held for the long run.
    local bin
    bin=$(cargo test --release -p loadgen --test it --no-run --message-format=json |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "it":
        print(m["executable"])')
    HOSTILE_SECONDS=$seconds "$bin" --ignored --exact --nocapture \
        hostile::figures_for_a_minute_against_each_target 2>&1 |
        sed -n '/^[0-9]* rps for/p;/^|/p'
}

soak() {
    local minutes=${1:-5}
    cargo build --release -p target-app -p loadgen
    # Globals, not locals: the EXIT trap runs after this function has returned.
    work=$(mktemp -d)
    app_pid=""
    trap 'if [ -n "$app_pid" ]; then kill "$app_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
    target/release/target-app --listen 127.0.0.1:0 --max-concurrency 64 >"$work/app.log" &
    app_pid=$!
    local addr=""
    for _ in $(seq 100); do
        addr=$(grep -m1 '"message":"listening"' "$work/app.log" 2>/dev/null |
            sed 's/.*"addr":"\([^"]*\)".*/\1/' || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "target-app did not start" >&2; exit 1; }
    cat >"$work/soak.toml" <<TOML
name = "shedding-soak"
description = "About 100 concurrent /slow?ms=100 requests against a limit of 64: a third shed, for ${minutes} minutes."
[defaults]
timeout = "2s"
[[mix]]
path = "/slow"
query = { ms = 100 }
[[phases]]
name = "soak"
duration = "${minutes}m"
rate = { shape = "constant", rps = 1000 }
TOML
    target/release/loadgen run "$work/soak.toml" --target "http://$addr" --quiet \
        --json "$work/report.json" >"$work/loadgen.txt" 2>&1 &
    local gen_pid=$!
    echo "| t (s) | target-app RSS (MiB) | open fds |"
    echo "|---|---|---|"
    local start=$SECONDS
    while kill -0 "$gen_pid" 2>/dev/null; do
        local rss fds
        rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$app_pid/status")
        fds=$(find "/proc/$app_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
        echo "| $((SECONDS - start)) | $rss | $fds |"
        sleep 10
    done
    wait "$gen_pid" || true
    echo
    echo "after the run: RSS $(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$app_pid/status") MiB," \
        "peak $(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$app_pid/status") MiB"
    python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["phases"][0]["totals"]
print(f'requests {t["requests"]}, classes {t["classes"]}, statuses {t["statuses"]}, '
      f'late {t["late"]}, dropped {t["dropped"]}, p50 {t["latency_ms"]["p50"]} ms, p99 {t["latency_ms"]["p99"]} ms')
PY
    echo "log lines written by target-app: $(wc -l <"$work/app.log")"
}

case "${1:-}" in
    hostile) shift; hostile "$@" ;;
    soak) shift; soak "$@" ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
esac
