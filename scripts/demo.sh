#!/usr/bin/env bash
# The main job on a fresh machine: installs Prometheus and Alertmanager from Debian's packages when they
# are missing (and nothing else), then runs a scenario (error-spike by default) against the embedded
# target-app. loadgen starts a private Prometheus with the stack's rules and a private Alertmanager with
# the stack's routing, so the alert is seen pending, firing, notified and resolved.
#
# Usage: scripts/demo.sh [SCENARIO] [LOADGEN RUN OPTIONS...]
#   scripts/demo.sh                                   # scenarios/error-spike.toml, about 4.5 minutes
#   scripts/demo.sh scenarios/service-outage.toml --html report.html
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

scenario=scenarios/error-spike.toml
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    scenario=$1
    shift
fi

# Debian installs Alertmanager as prometheus-alertmanager; an upstream `alertmanager` on the PATH will do too.
if command -v alertmanager >/dev/null; then
    ensure_commands prometheus=prometheus
else
    ensure_commands prometheus=prometheus prometheus-alertmanager=prometheus-alertmanager
fi

exec cargo run --release -p loadgen -- run "$scenario" "$@"
