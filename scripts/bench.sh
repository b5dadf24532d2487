#!/usr/bin/env bash
# Benchmarks, printed as figures (not tests). Everything runs on loopback.
#
#   scripts/bench.sh target      # target-app throughput, all four signals on vs telemetry off (wrk),
#                                # pinned: wrk and the OTLP/Pyroscope sink on core 0, target-app on core 1
#                                # (ROUNDS=N pairs per route, default 3; ROUTES='/ /health' by default)
#   scripts/bench.sh signals     # what each signal costs on /: variants with one signal off, pinned
#                                # (ROUNDS=N rounds of 2 s per variant, default 10)
#   scripts/bench.sh generator   # closed loop, pinned: loadgen vs wrk, oha and hey, requests/s on one core
#                                # (ROUNDS=N rounds, default 2)
#   scripts/bench.sh accuracy [BEFORE]  # open loop at 5k, 20k and 50k rps for 10 s (SECONDS_EACH=N), pinned:
#                                # each pacer, the precise one of BEFORE (an older binary), and oha beside them
#                                # (CPU, RSS; oha reports no schedule lag)
#   scripts/bench.sh soak [MIN]  # loadgen RSS over a MIN-minute (default 10) run at 5k rps
#   scripts/bench.sh conns [N] [BEFORE]  # closed loop over N connections (default 10000), pinned: loadgen
#                                # beside wrk and oha, requests per CPU-second and peak RSS (and BEFORE, an
#                                # older loadgen binary, beside them)
#   scripts/bench.sh h2          # HTTP/2 h2c, one connection, 50 streams, pinned: loadgen beside h2load
#                                # (Debian's nghttp2-client)
#   scripts/bench.sh protocols [BEFORE]  # closed loop over http, https and h2 (nginx), pinned; with
#                                # BEFORE (an older loadgen binary), http (and h2, if it speaks it) before and after
#
# Needs a release build (`cargo build --release`), wrk, hey and nginx (`apt-get install wrk hey nginx`);
# `generator` installs oha (`cargo install oha --locked`) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# Cores for `bench.sh target`: the load (wrk, sink) on one, the target on the other.
LOAD_CORE=${BENCH_LOAD_CORE:-0}
TARGET_CORE=${BENCH_TARGET_CORE:-1}

# A sink that accepts OTLP and Pyroscope pushes, so exporters do their full work.
start_sink() {
    SINK_PORT=$(free_port)
    taskset -c "$LOAD_CORE" python3 - "$SINK_PORT" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    PIDS+=($!)
    sleep 0.5
}

PIN_TARGET=()   # bench_target pins the target: every thread of it on $TARGET_CORE
# $1 = on|off, then for `on` any VAR=value settings that change it, or `no-profiles` (see bench_signals).
start_target() {
    local port; port=$(free_port)
    if [ "$1" = on ]; then
        shift
        local settings=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=always_on)
        if [ "${1:-}" = no-profiles ]; then shift; else settings+=("PYROSCOPE_SERVER_ADDRESS=http://127.0.0.1:$SINK_PORT"); fi
        env "${settings[@]}" "$@" \
            "${PIN_TARGET[@]}" $BIN/target-app --listen "127.0.0.1:$port" --max-concurrency 100000 > /dev/null &
    else
        "${PIN_TARGET[@]}" $BIN/target-app --listen "127.0.0.1:$port" --telemetry off --max-concurrency 100000 > /dev/null &
    fi
    PIDS+=($!)
    TARGET_PID=$!
    TARGET_PORT=$port
    wait_http "http://127.0.0.1:$port/health"
}

wrk_rps() { taskset -c "$LOAD_CORE" wrk -t1 -c"$2" -d"$3" "$1" | awk '/Requests\/sec/ {print $2}'; }

# CPU time (user + system, all threads) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One pinned wrk run against $1 (port) $2 (route) for $3: prints "requests requests_per_second". The
# callers read the target's CPU themselves, over more than one run.
pinned_run() {
    taskset -c "$LOAD_CORE" wrk -t1 -c50 -d"$3" "http://127.0.0.1:$1$2" |
        awk '/requests in/ {reqs = $1} /Requests\/sec/ {rps = $2} END {printf "%d %.0f\n", reqs, rps}'
}

# One on/off pair on route $5: 10 s of wrk against each target ($1 port, $2 pid: signals on; $3, $4: off),
# in SLICES (default 5) alternating slices (on off, off on, on off, ...), so a change in the machine's speed
# during the pair falls on both sides. Each target's CPU is counted over the whole pair, so work its
# exporters and profiler do while the other side is loaded (a batch flushed, a profile symbolised) is
# still its own. Prints "on_rps on_req_per_cpu_s off_rps off_req_per_cpu_s".
pinned_pair() {
    local slices=${SLICES:-5} hz; hz=$(getconf CLK_TCK)
    local slice=$((10 / slices))s
    local on_reqs=0 on_rps=0 off_reqs=0 off_rps=0 s side R P
    local on_before off_before; on_before=$(cpu_ticks "$2"); off_before=$(cpu_ticks "$4")
    for s in $(seq "$slices"); do
        local order=(on off)
        [ $((s % 2)) = 0 ] && order=(off on)
        for side in "${order[@]}"; do
            if [ "$side" = on ]; then
                read -r R P < <(pinned_run "$1" "$5" "$slice")
                on_reqs=$((on_reqs + R)); on_rps=$((on_rps + P))
            else
                read -r R P < <(pinned_run "$3" "$5" "$slice")
                off_reqs=$((off_reqs + R)); off_rps=$((off_rps + P))
            fi
        done
    done
    local on_ticks=$(($(cpu_ticks "$2") - on_before)) off_ticks=$(($(cpu_ticks "$4") - off_before))
    awk -v n="$slices" -v hz="$hz" -v a="$on_reqs" -v b="$on_rps" -v c="$on_ticks" -v d="$off_reqs" \
        -v e="$off_rps" -v f="$off_ticks" 'BEGIN {printf "%.0f %.0f %.0f %.0f\n", b / n,
        (c > 0 ? a / (c / hz) : 0), e / n, (f > 0 ? d / (f / hz) : 0)}'
}

# Both targets run at once (the idle one costs nothing). ROUNDS pairs per route (default 3), each 10 s
# a side in alternating slices (see pinned_pair). Two ratios: throughput (what the pinned core gives when
# the target is the bottleneck) and requests per CPU-second of the target process (what each request
# costs, which holds even when other work on the machine or wrk is the bottleneck); each is the ratio of
# the means over the pairs, and the spread of the pairs' CPU ratios is printed beside it.
bench_target() {
    local rounds=${ROUNDS:-3}
    case ${SLICES:-5} in 1|2|5|10) ;; *) echo "SLICES must be 1, 2, 5 or 10 (whole seconds each), got $SLICES" >&2; exit 2 ;; esac
    PIN_TARGET=(taskset -c "$TARGET_CORE")
    start_sink
    start_target on;  local on_port=$TARGET_PORT on_pid=$TARGET_PID
    start_target off; local off_port=$TARGET_PORT off_pid=$TARGET_PID
    echo "target-app: wrk -t1 -c50 on core $LOAD_CORE, target-app on core $TARGET_CORE, OTLP traces (100% sampled)"
    echo "and profiles to a loopback sink on core $LOAD_CORE; JSON logs to /dev/null; $rounds on/off pairs per"
    echo "route, each 10 s a side in ${SLICES:-5} alternating slices"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    pinned_run "$on_port" / 2s > /dev/null; pinned_run "$off_port" / 2s > /dev/null
    printf '%-8s %9s %9s %7s %11s %11s %7s  %s\n' route on_rps off_rps on/off on_req/cpu off_req/cpu on/off \
        "pairs' on/off (cpu): min median max"
    for route in ${ROUTES:-/ /health}; do
        local on_rps=0 off_rps=0 on_eff=0 off_eff=0 ratios=()
        for r in $(seq "$rounds"); do
            read -r ON ONE OFF OFFE < <(pinned_pair "$on_port" "$on_pid" "$off_port" "$off_pid" "$route")
            echo "  pair $r $route: on $ON req/s ($ONE req/cpu-s), off $OFF req/s ($OFFE req/cpu-s)"
            on_rps=$((on_rps + ON)); off_rps=$((off_rps + OFF)); on_eff=$((on_eff + ONE)); off_eff=$((off_eff + OFFE))
            ratios+=("$(echo "$ONE / $OFFE" | bc -l)")
        done
        printf '%-8s %9d %9d %7.3f %11d %11d %7.3f  %s\n' "$route" $((on_rps / rounds)) $((off_rps / rounds)) \
            "$(echo "$on_rps / $off_rps" | bc -l)" $((on_eff / rounds)) $((off_eff / rounds)) \
            "$(echo "$on_eff / $off_eff" | bc -l)" \
            "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {m = (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); printf "%.2f %.2f %.2f", v[1], m, v[NR]}')"
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# What each signal costs on `/`: target-apps that differ in one setting each, all pinned to the target
# core at once, loaded in turn by pinned wrk in 2-s slices (ROUNDS rounds, default 10; the order rotates
# each round so a change in the machine's speed falls on every variant). Each one's requests per
# CPU-second counts its CPU over the whole run, background threads included. A variant's gain over
# "all on" is what the signal it lacks costs.
bench_signals() {
    local rounds=${ROUNDS:-10} hz; hz=$(getconf CLK_TCK)
    PIN_TARGET=(taskset -c "$TARGET_CORE")
    start_sink
    # name|how it is started: `on` and its changed settings (see start_target), or `off`. The access line
    # is an info event of target_app::app; the request span has its own target.
    local variants=(
        "all four signals on|on"
        "no profiles|on no-profiles"
        "no access log lines|on RUST_LOG=warn,target_app::request=info"
        "spans not sampled|on OTEL_TRACES_SAMPLER=always_off"
        "no spans, no log lines|on RUST_LOG=warn"
        "telemetry off|off"
    )
    local names=() ports=() pids=() v i
    for v in "${variants[@]}"; do
        names+=("${v%%|*}")
        # shellcheck disable=SC2086 # the settings are words on purpose
        start_target ${v#*|}
        ports+=("$TARGET_PORT"); pids+=("$TARGET_PID")
    done
    local n=${#ports[@]} reqs=() before=()
    for i in $(seq 0 $((n - 1))); do
        pinned_run "${ports[$i]}" / 1s > /dev/null
        reqs[i]=0; before[i]=$(cpu_ticks "${pids[$i]}")
    done
    echo "target-app on core $TARGET_CORE, wrk -t1 -c50 on core $LOAD_CORE, route /, $rounds rounds of 2 s per variant"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    local r k R P
    for r in $(seq 0 $((rounds - 1))); do
        for k in $(seq 0 $((n - 1))); do
            i=$(((k + r) % n))
            read -r R P < <(pinned_run "${ports[$i]}" / 2s)
            reqs[i]=$((reqs[i] + R))
        done
    done
    local eff=()
    for i in $(seq 0 $((n - 1))); do
        eff[i]=$(awk -v a="${reqs[$i]}" -v t="$(($(cpu_ticks "${pids[$i]}") - before[i]))" -v hz="$hz" \
            'BEGIN {printf "%.0f", a / (t / hz)}')
    done
    printf '%-26s %12s %9s %14s\n' variant req/cpu-s "vs all on" "µs per request"
    for i in $(seq 0 $((n - 1))); do
        printf '%-26s %12d %9.3f %14.2f\n' "${names[$i]}" "${eff[$i]}" "$(echo "${eff[$i]} / ${eff[0]}" | bc -l)" \
            "$(echo "1000000 / ${eff[$i]}" | bc -l)"
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# oha is a benchmark peer only (never needed by the tests): built from source when missing, which takes
# several minutes.
ensure_oha() {
    command -v oha >/dev/null && return 0
    [ -x "$HOME/.cargo/bin/oha" ] && { PATH="$HOME/.cargo/bin:$PATH"; return 0; }
    echo "==> installing oha (cargo install oha --locked; several minutes)" >&2
    nice cargo install oha --locked >&2 && PATH="$HOME/.cargo/bin:$PATH"
}

# pinned_nginx DIR PORT [SERVER...]: nginx with one worker, pinned to core 1, answering `return 200` on
# PORT, plus any further `server { ... }` blocks given.
pinned_nginx() {
    local dir=$1 port=$2; shift 2
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile ${NGINX_NOFILE:-8192};
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections ${NGINX_CONNECTIONS:-4096}; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
    $*
}
CONF
    taskset -c 1 nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/"
}

# One closed-loop run of `tool` pinned to core 0 against $2, 50 connections for 10 s. Prints
# "requests requests_per_s cpu_seconds": the tool's own count of answers and rate, and its user + system
# CPU time from /usr/bin/time.
# A closed-loop scenario in $1: $2 at a time for $3 against / (the target is given on the command line).
closed_scenario() {
    cat > "$1" <<TOML
name = "closed-$2"
[defaults]
timeout = "10s"
max_in_flight = $(( $2 > 1000 ? $2 : 1000 ))
[[mix]]
path = "/"
[[phases]]
name = "max"
duration = "$3"
concurrency = $2
TOML
}

measure() { # tool url
    local tool=$1 url=$2 out="$WORK/out.txt" times="$WORK/time.txt" reqs rps
    local timed=(/usr/bin/time -f '%U %S' -o "$times" taskset -c 0)
    case $tool in
        wrk) "${timed[@]}" wrk -t1 -c50 -d10s "$url" > "$out"
             reqs=$(awk '/requests in/ {print $1}' "$out")
             rps=$(awk '/Requests\/sec/ {print $2}' "$out") ;;
        hey|oha)
             if [ "$tool" = hey ]; then "${timed[@]}" hey -c 50 -z 10s "$url" > "$out"
             else "${timed[@]}" oha --no-tui -c 50 -z 10s "$url" > "$out"; fi
             reqs=$(awk '/\[[0-9]+\].*responses/ {gsub(/\t/," "); s+=$2} END {print s+0}' "$out")
             rps=$(awk '/Requests\/sec/ {print $2}' "$out") ;;
        loadgen)
             closed_scenario "$WORK/closed.toml" 50 10s
             "${timed[@]}" $BIN/loadgen run "$WORK/closed.toml" --quiet --target "${url%/}" --json "$WORK/r.json" > /dev/null 2>&1 || true
             read -r reqs rps < <(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["phases"][0]["totals"]; print(t["requests"], t["rps"])' "$WORK/r.json") ;;
    esac
    echo "$reqs $rps $(awk '{print $1 + $2}' "$times")"
}

# Each generator pinned to core 0 and nginx (one worker) to core 1; two rounds, each with wrk and oha
# beside loadgen. rps is over wall time; per_core_s is requests per CPU-second of the generator, what one
# core does when the generator has it to itself, and the ratios compare that (on a quiet machine each
# generator keeps its core busy and the two agree; on a busy one only the second means anything).
bench_generator() {
    local have_oha=yes
    ensure_oha || { have_oha=no; echo "oha could not be installed: no oha column" >&2; }
    local port; port=$(free_port)
    pinned_nginx "$WORK/pinned" "$port"
    local url="http://127.0.0.1:$port/"
    echo "closed loop, 50 connections, 10 s; generator on core 0 (taskset -c 0), nginx (1 worker, return 200) on core 1"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on core 0 lowers rps, not per_core_s)"
    printf '%-6s %-8s %10s %9s %7s %11s %7s %7s\n' round tool requests rps cpu_s per_core_s vs_wrk vs_oha
    # loadgen right after wrk in each round, so the ratio that matters compares runs close in time.
    local tools=(wrk loadgen hey)
    [ "$have_oha" = yes ] && tools=(wrk loadgen oha hey)
    for round in $(seq "${ROUNDS:-2}"); do
        local -A req=() rps=() cpu=() eff=()
        for tool in "${tools[@]}"; do
            read -r "req[$tool]" "rps[$tool]" "cpu[$tool]" < <(measure "$tool" "$url")
            eff[$tool]=$(echo "${req[$tool]} / ${cpu[$tool]}" | bc -l)
        done
        for tool in "${tools[@]}"; do
            local vs_oha=-
            [ "$have_oha" = yes ] && vs_oha=$(printf '%.2f' "$(echo "${eff[$tool]} / ${eff[oha]}" | bc -l)")
            printf '%-6s %-8s %10d %9.0f %7.2f %11.0f %7.2f %7s\n' "$round" "$tool" "${req[$tool]}" "${rps[$tool]}" \
                "${cpu[$tool]}" "${eff[$tool]}" "$(echo "${eff[$tool]} / ${eff[wrk]}" | bc -l)" "$vs_oha"
        done
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Open loop at a constant 5k, 20k and 50k rps for 10 s, loadgen pinned to core 0 and nginx (one worker)
# to core 1. loadgen runs twice per rate, with each pacer (`--pacing precise`, the default: a task woken
# by an OS timer, at most once per 500 µs; `--pacing timer`: tokio's millisecond timer), so the precise
# pacer's gain (schedule lag) and its cost (CPU-seconds) sit side by side; oha at the same rate (`-q`)
# on the same core is the peer for CPU and memory (oha reports no schedule lag; its latency p99, with
# --latency-correction, counts from the intended send time as loadgen's does). `wakeups` are the
# voluntary context switches: each is a sleep and a wake-up of the process.
bench_accuracy() {
    local before=${1:-} have_oha=yes
    ensure_oha || { have_oha=no; echo "oha could not be installed: no oha rows" >&2; }
    local port; port=$(free_port)
    pinned_nginx "$WORK/pinned" "$port"
    local url="http://127.0.0.1:$port"
    local secs=${SECONDS_EACH:-10}
    echo "open loop, $secs s constant rate, even arrivals; generator on core 0, nginx (1 worker, return 200) on core 1"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-16s %6s %9s %10s %8s %11s %11s %6s %7s %11s %6s %7s %7s\n' run target requests achieved error% \
        lag_p99_ms lag_max_ms late dropped lat_p99_ms cpu_s wakeups rss_mib
    local times="$WORK/time.txt"
    for rps in 5000 20000 50000; do
        cat > "$WORK/open.toml" <<TOML
name = "open-$rps"
[defaults]
timeout = "5s"
max_in_flight = 2000
[[mix]]
path = "/"
[[phases]]
name = "steady"
duration = "${secs}s"
rate = { shape = "constant", rps = $rps }
TOML
        local runs=("$BIN/loadgen precise" "$BIN/loadgen timer")
        [ -n "$before" ] && runs+=("$before precise")
        for run in "${runs[@]}"; do
            local bin=${run% *} pacing=${run##* } name="loadgen ${run##* }"
            [ "$bin" = "$before" ] && name="before $pacing"
            /usr/bin/time -f '%U %S %w %M' -o "$times" taskset -c 0 "$bin" run "$WORK/open.toml" --quiet \
                --pacing "$pacing" --target "$url" --json "$WORK/r.json" > /dev/null 2>&1 || true
            python3 - "$WORK/r.json" "$rps" "$name" "$times" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = r["phases"][0]; t = p["totals"]; target = float(sys.argv[2])
user, system, wakeups, rss_kib = open(sys.argv[4]).read().split()[-4:]
achieved = t["requests"] / (p["end_s"] - p["start_s"])
print("%-16s %6d %9d %10.1f %8.3f %11.3f %11.3f %6d %7d %11.3f %6.2f %7s %7.1f" % (sys.argv[3], target,
      t["requests"], achieved, 100 * (achieved - target) / target, t["schedule_lag_ms"]["p99"],
      t["schedule_lag_ms"]["max"], t["late"], t["dropped"], t["latency_ms"]["p99"], float(user) + float(system),
      wakeups, int(rss_kib) / 1024))
PY
        done
        if [ "$have_oha" = yes ]; then
            /usr/bin/time -f '%U %S %w %M' -o "$times" taskset -c 0 oha --no-tui -q "$rps" --latency-correction \
                -z "${secs}s" "$url/" > "$WORK/oha.txt" || true
            python3 - "$WORK/oha.txt" "$rps" "$times" <<'PY'
import re, sys
text = open(sys.argv[1]).read(); target = float(sys.argv[2])
user, system, wakeups, rss_kib = open(sys.argv[3]).read().split()[-4:]
answered = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", text))
achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
value, unit = re.search(r"99\.00% in ([\d.]+) (\w+)", text).groups()
p99_ms = float(value) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "secs": 1e3, "sec": 1e3, "s": 1e3}[unit]
print("%-16s %6d %9d %10.1f %8.3f %11s %11s %6s %7s %11.3f %6.2f %7s %7.1f" % ("oha -q", target, answered, achieved,
      100 * (achieved - target) / target, "-", "-", "-", "-", p99_ms, float(user) + float(system), wakeups,
      int(rss_kib) / 1024))
PY
        fi
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_soak() {
    local minutes=${1:-10}
    local port; port=$(free_port)
    pinned_nginx "$WORK/pinned" "$port"
    cat > "$WORK/soak.toml" <<TOML
name = "soak"
[defaults]
timeout = "5s"
[[mix]]
path = "/"
[[phases]]
name = "steady"
duration = "${minutes}m"
rate = { shape = "constant", rps = 5000 }
TOML
    taskset -c 0 $BIN/loadgen run "$WORK/soak.toml" --quiet --target "http://127.0.0.1:$port" --json "$WORK/soak.json" > /dev/null 2>&1 &
    local pid=$!
    echo "loadgen (core 0) at 5000 rps for $minutes min against nginx (1 worker, core 1): RSS (MiB) each minute"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    for m in $(seq 1 "$minutes"); do
        sleep 60
        awk -v m="$m" '/VmRSS/ {printf "minute %2d: %.1f\n", m, $2 / 1024}' "/proc/$pid/status" 2>/dev/null || true
    done
    wait "$pid" || true
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["phases"][0]["totals"]; print("requests %d, late %d, dropped %d, errors %d, lag p99 %.3f ms" % (t["requests"], t["late"], t["dropped"], t["errors"], t["schedule_lag_ms"]["p99"]))' "$WORK/soak.json"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Closed loop, 50 requests at a time for 10 s, loadgen pinned to core 0 and nginx (one worker) to core
# 1: requests per second over http, https (HTTP/1.1) and https with h2, wrk beside it on http and https.
bench_protocols() {
    local before=${1:-}
    local port; port=$(free_port)
    local tls_port; tls_port=$(free_port)
    local dir="$WORK/proto"
    mkdir -p "$dir"
    (cd "$dir" && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
            -days 1 -subj /CN=bench-ca 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr \
            -subj /CN=localhost 2>/dev/null &&
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 \
            -extfile ext 2>/dev/null)
    pinned_nginx "$dir" "$port" "server { listen 127.0.0.1:$tls_port ssl http2; ssl_certificate $dir/srv.pem;
        ssl_certificate_key $dir/srv.key; location / { return 200 \"ok\\n\"; } }"
    closed_scenario "$WORK/closed.toml" 50 10s
    run_loadgen() { # binary url flags...
        local bin=$1 url=$2; shift 2
        taskset -c 0 "$bin" run "$WORK/closed.toml" --quiet --target "$url" --json "$WORK/p.json" "$@" > /dev/null 2>&1 || true
        python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["phases"][0]["totals"]; print("%.0f %s" % (t["rps"], ",".join(sorted(t.get("protocols", {"HTTP/1.1": 0}).keys()))))' "$WORK/p.json"
    }
    echo "closed loop, 50 at a time, 10 s; generator on core 0, nginx (1 worker) on core 1"
    printf '%-34s %12s %10s\n' run requests/s protocol
    local cacert=(--cacert "$dir/ca.pem")
    for round in 1 2; do
        if [ -n "$before" ]; then
            printf '%-34s %12s %10s\n' "loadgen before, http" $(run_loadgen "$before" "http://127.0.0.1:$port")
            # A build that speaks HTTP/2 is measured on it too.
            if "$before" run --help 2>/dev/null | grep -q -- '--http2'; then
                printf '%-34s %12s %10s\n' "loadgen before, https --http2" \
                    $(run_loadgen "$before" "https://localhost:$tls_port" "${cacert[@]}" --http2)
            fi
        fi
        printf '%-34s %12s %10s\n' "loadgen, http" $(run_loadgen $BIN/loadgen "http://127.0.0.1:$port")
        printf '%-34s %12s %10s\n' "loadgen, https" $(run_loadgen $BIN/loadgen "https://localhost:$tls_port" "${cacert[@]}")
        printf '%-34s %12s %10s\n' "loadgen, https --http2" $(run_loadgen $BIN/loadgen "https://localhost:$tls_port" "${cacert[@]}" --http2)
        printf '%-34s %12.0f %10s\n' "wrk -t1 -c50, http" "$(taskset -c 0 wrk -t1 -c50 -d10s "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')" HTTP/1.1
        printf '%-34s %12.0f %10s\n' "wrk -t1 -c50, https" "$(taskset -c 0 wrk -t1 -c50 -d10s "https://localhost:$tls_port/" | awk '/Requests\/sec/ {print $2}')" HTTP/1.1
        [ "$round" = 1 ] && echo "--- second round"
    done
}

# One pinned closed-loop run of $1 (wrk, oha, loadgen or a loadgen binary's path) with $2 connections
# against $3 for $4: prints "requests cpu_s rss_kib".
closed_run() {
    local tool=$1 conns=$2 url=$3 secs=$4 out="$WORK/out.txt" times="$WORK/time.txt" reqs
    local timed=(/usr/bin/time -f '%U %S %M' -o "$times" taskset -c 0)
    case $tool in
        wrk) "${timed[@]}" wrk -t1 -c"$conns" -d"$secs" "$url" > "$out"
             reqs=$(awk '/requests in/ {print $1}' "$out") ;;
        oha) "${timed[@]}" oha --no-tui -c "$conns" -z "$secs" "$url" > "$out"
             reqs=$(awk '/\[[0-9]+\].*responses/ {gsub(/\t/," "); s+=$2} END {print s+0}' "$out") ;;
        *)   local bin=$tool
             [ "$tool" = loadgen ] && bin=$BIN/loadgen
             closed_scenario "$WORK/conns.toml" "$conns" "$secs"
             "${timed[@]}" "$bin" run "$WORK/conns.toml" --quiet --target "${url%/}" --json "$WORK/c.json" > /dev/null 2>&1 || true
             reqs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phases"][0]["totals"]["requests"])' "$WORK/c.json") ;;
    esac
    echo "$reqs $(awk '{print $1 + $2, $3}' "$times")"
}

bench_conns() {
    local conns=${1:-10000} before=${2:-} have_oha=yes
    ensure_oha || { have_oha=no; echo "oha could not be installed: no oha row" >&2; }
    ulimit -n "$(ulimit -Hn)"
    local port; port=$(free_port)
    # Room for twice the connections: with only a few more than the generator's, nginx closed some
    # of them at 10 000 (wrk saw read errors, loadgen closed connections).
    local nofile; nofile=$(ulimit -Hn)
    local room=$((conns * 2 + 100 < nofile - 100 ? conns * 2 + 100 : nofile - 100))
    NGINX_CONNECTIONS=$room NGINX_NOFILE=$nofile pinned_nginx "$WORK/conns" "$port"
    local url="http://127.0.0.1:$port/"
    echo "closed loop, $conns connections, 10 s; generator on core 0 (taskset -c 0), nginx (1 worker, return 200) on core 1"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-6s %-16s %10s %7s %11s %9s %8s %9s\n' round tool requests cpu_s per_core_s rss_mib vs_wrk rss/wrk
    local tools=(wrk loadgen)
    [ "$have_oha" = yes ] && tools+=(oha)
    [ -n "$before" ] && tools+=("$before")
    for round in $(seq "${ROUNDS:-2}"); do
        local -A req=() cpu=() rss=() eff=()
        for tool in "${tools[@]}"; do
            read -r "req[$tool]" "cpu[$tool]" "rss[$tool]" < <(closed_run "$tool" "$conns" "$url" 10s)
            eff[$tool]=$(echo "${req[$tool]} / ${cpu[$tool]}" | bc -l)
        done
        for tool in "${tools[@]}"; do
            local name=$tool
            [ "$tool" = "$before" ] && name="loadgen before"
            printf '%-6s %-16s %10d %7.2f %11.0f %9.1f %8.2f %9.2f\n' "$round" "$name" "${req[$tool]}" "${cpu[$tool]}" \
                "${eff[$tool]}" "$(echo "${rss[$tool]} / 1024" | bc -l)" "$(echo "${eff[$tool]} / ${eff[wrk]}" | bc -l)" \
                "$(echo "${rss[$tool]} / ${rss[wrk]}" | bc -l)"
        done
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_h2() {
    command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 2; }
    local port; port=$(free_port)
    local h2port; h2port=$(free_port)
    pinned_nginx "$WORK/h2" "$port" "server { listen 127.0.0.1:$h2port http2; location / { return 200 \"ok\\n\"; } }"
    closed_scenario "$WORK/h2.toml" 50 10s
    local times="$WORK/time.txt"
    echo "HTTP/2 h2c (prior knowledge), one connection, 50 streams at a time, 10 s; generator on core 0, nginx on core 1"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-6s %-10s %10s %7s %11s %8s\n' round tool requests cpu_s per_core_s vs_h2load
    for round in $(seq "${ROUNDS:-2}"); do
        /usr/bin/time -f '%U %S' -o "$times" taskset -c 0 h2load -c1 -m50 -t1 -D10 "http://127.0.0.1:$h2port/" > "$WORK/h2load.txt" 2>&1 || true
        local h_req h_cpu l_req l_cpu
        h_req=$(awk '/^requests:/ {print $8}' "$WORK/h2load.txt")
        h_cpu=$(awk '{print $1 + $2}' "$times")
        /usr/bin/time -f '%U %S' -o "$times" taskset -c 0 $BIN/loadgen run "$WORK/h2.toml" --quiet \
            --target "http://127.0.0.1:$h2port" --http2-prior-knowledge --json "$WORK/h2.json" > /dev/null 2>&1 || true
        l_req=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phases"][0]["totals"]["requests"])' "$WORK/h2.json")
        l_cpu=$(awk '{print $1 + $2}' "$times")
        local h_eff l_eff; h_eff=$(echo "$h_req / $h_cpu" | bc -l); l_eff=$(echo "$l_req / $l_cpu" | bc -l)
        printf '%-6s %-10s %10d %7.2f %11.0f %8.2f\n' "$round" h2load "$h_req" "$h_cpu" "$h_eff" 1
        printf '%-6s %-10s %10d %7.2f %11.0f %8.2f\n' "$round" loadgen "$l_req" "$l_cpu" "$l_eff" "$(echo "$l_eff / $h_eff" | bc -l)"
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case "${1:-}" in
    conns) shift; bench_conns "${1:-10000}" "${2:-}" ;;
    h2) bench_h2 ;;
    protocols) shift; bench_protocols "${1:-}" ;;
    target) bench_target ;;
    signals) bench_signals ;;
    generator) bench_generator ;;
    accuracy) bench_accuracy "${2:-}" ;;
    soak) bench_soak "${2:-10}" ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
