#!/usr/bin/env bash
# Checks the observability stack's configuration with real tools.
#
# Usage (from anywhere): scripts/check-stack.sh
#
# Runs every check, even after one fails, then prints "N passed, M failed" and
# exits 1 if any failed. Installs what it needs when missing: promtool and
# amtool from Debian's prometheus and prometheus-alertmanager packages, and
# check-jsonschema and PyYAML with pip into ./.venv (CHECK_STACK_VENV to move it).
#
# Grafana, Loki, Tempo, Pyroscope and Alloy cannot run here: their configs are
# only parsed as YAML, Grafana's datasource uids cross-checked, and every
# healthcheck checked against what the image table of stack/README.md says each
# image contains. scripts/stack-smoke.sh runs the stack on a Docker host.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_JSONSCHEMA_VERSION=0.39.0
PYYAML_VERSION=6.0.3
VENV=${CHECK_STACK_VENV:-.venv}
STACK=stack

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_prometheus_tools() {
    ensure_commands promtool=prometheus amtool=prometheus-alertmanager
}

ensure_tools_venv() {
    ensure_venv "$VENV"
    if ! "$VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "$CHECK_JSONSCHEMA_VERSION" ||
        ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
        echo "==> installing check-jsonschema $CHECK_JSONSCHEMA_VERSION and PyYAML into $VENV (pip)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "PyYAML==$PYYAML_VERSION"
    fi
}


yaml_parses() {
    "$VENV/bin/python" - "$@" <<'EOF'
import sys, yaml
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        print(f"error: {path}: {e}", file=sys.stderr)
        bad += 1
print(f"{len(sys.argv) - 1 - bad} YAML files parse")
sys.exit(1 if bad else 0)
EOF
}

ensure_prometheus_tools
ensure_tools_venv

check "promtool check config" promtool check config "$STACK/prometheus/prometheus.yml"
check "promtool check rules" promtool check rules "$STACK"/prometheus/rules/*.yml
check "promtool test rules" promtool test rules "$STACK"/prometheus/tests/*.yml
check "amtool check-config" amtool check-config "$STACK/alertmanager/alertmanager.yml"
check "compose file against the compose specification" \
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$STACK/docker-compose.yml"
check "compose policy (loopback ports, pinned images, conditions, no literal password, host route)" \
    "$VENV/bin/python" scripts/check_compose_policy.py "$STACK/docker-compose.yml"
check "Grafana datasource uids" \
    "$VENV/bin/python" scripts/check_datasource_uids.py "$STACK/grafana/provisioning" dashboards
check "images and healthchecks against the image table of stack/README.md" \
    "$VENV/bin/python" scripts/check_image_table.py "$STACK/docker-compose.yml" "$STACK/README.md"
check "unit tests of the stack checks and of stack-smoke.sh's probe parsers" \
    "$VENV/bin/python" -m unittest discover --start-directory scripts/tests --top-level-directory scripts/tests
mapfile -t yaml_files < <(find "$STACK" -name '*.yml' -o -name '*.yaml' | sort)
check "stack YAML files parse" yaml_parses "${yaml_files[@]}"

echo
checks_done check-stack
