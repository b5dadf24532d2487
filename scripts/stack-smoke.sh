#!/usr/bin/env bash
# Starts the bundled stack on a Docker host and proves every signal end to end.
#
# Usage (from anywhere): scripts/stack-smoke.sh [--down]
#
#   1. docker compose up -d --wait (builds the target-app image; every healthcheck must pass);
#   2. loadgen run scenarios/error-spike.toml against the stack (its own expectations count as a probe);
#   3. one probe per signal through the stack's own APIs (scripts/stack_probes.py): HighErrorRate firing,
#      then resolved, in Prometheus; target-app error lines with a trace_id in Loki; that trace, and a
#      trace with spans of both services, in Tempo; CPU samples of target-app in Pyroscope; every
#      provisioned datasource healthy and every dashboard loading in Grafana; Alertmanager's firing and
#      resolved notifications at the webhook; and one probe per correlation: a span-metrics latency
#      exemplar's trace in Tempo, span-metrics series of both services and the service-graph edge
#      target-app → downstream in Prometheus, a trace's lines of both services in Loki by its trace id,
#      and a /generate-load span's profile id returning CPU samples from Pyroscope.
#
# Prints a pass/fail table and exits 1 when anything failed. Without a Docker engine (`docker info`
# fails) it prints "skipped: no Docker engine" and exits 0. The stack keeps running afterwards for a
# look around; --down stops it (volumes kept). Uses stack/.env, and writes one with fresh secrets when
# there is none. loadgen comes from PATH, or is built with cargo (release). Everything talks to
# 127.0.0.1; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

DOWN=false
for arg in "$@"; do
    case $arg in
        --down) DOWN=true ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "stack-smoke.sh: unknown argument $arg (expected --down)" >&2; exit 2 ;;
    esac
done

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    echo "skipped: no Docker engine (docker info failed)"
    exit 0
fi
if ! docker compose version >/dev/null 2>&1; then
    echo "stack-smoke.sh: the docker compose plugin is missing" >&2
    exit 1
fi

COMPOSE=(docker compose -f stack/docker-compose.yml)
OUT=.cache/stack-smoke
mkdir -p "$OUT"

if [ ! -f stack/.env ]; then
    echo "==> writing stack/.env with fresh secrets (from .env.example)"
    sed "s/^GRAFANA_ADMIN_PASSWORD=\$/GRAFANA_ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')/; s/^CHAOS_TOKEN=\$/CHAOS_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')/" \
        stack/.env.example >stack/.env
fi
set -a
# shellcheck source=/dev/null
. stack/.env
set +a

rows=()
row() { rows+=("$(printf '%-58s  %s    %s' "$1" "$2" "$3")"); }
status=0

echo "==> docker compose up -d --wait (first run builds the target-app image)"
if "${COMPOSE[@]}" up -d --build --wait --wait-timeout 900; then
    row "compose: every service up and healthy" pass "$("${COMPOSE[@]}" ps --format '{{.Service}}' | wc -l) services"
else
    row "compose: every service up and healthy" FAIL "see: docker compose -f stack/docker-compose.yml ps"
    "${COMPOSE[@]}" ps >&2 || true
    printf '%s\n' "${rows[@]}"
    exit 1
fi

if command -v loadgen >/dev/null; then
    LOADGEN=(loadgen)
else
    echo "==> building loadgen (cargo, release)"
    cargo build --release --locked -p loadgen
    LOADGEN=(target/release/loadgen)
fi

since=$(date +%s)
echo "==> loadgen run scenarios/error-spike.toml against the stack (about 4.5 minutes)"
if timeout 900 "${LOADGEN[@]}" run scenarios/error-spike.toml \
    --stack stack \
    --quiet --json "$OUT/error-spike.json"; then
    row "loadgen: error-spike expectations met" pass "report: $OUT/error-spike.json"
else
    row "loadgen: error-spike expectations met" FAIL "exit $?; report: $OUT/error-spike.json"
    status=1
fi

echo "==> probes"
probe_out=$OUT/probes.txt
if ! python3 scripts/stack_probes.py --since "$since" | tee "$probe_out"; then
    status=1
fi

echo
echo "stack-smoke results"
printf '%s\n' "${rows[@]}"
sed -n '2,$p' "$probe_out"

if $DOWN; then
    "${COMPOSE[@]}" down
fi
exit $status
