#!/usr/bin/env bash
# Checks the Kubernetes manifests in stack/k8s offline.
#
# Usage (from anywhere): scripts/check-k8s.sh
#
# - every manifest validates against the Kubernetes OpenAPI schemas (strict: unknown fields are errors),
#   with kubernetes-validate from PyPI, which ships the schemas, for two Kubernetes versions;
# - the manifests agree with each other: the Job's completions, parallelism and `--shard .../N` match,
#   Services select their Deployments, the Job's --target names a Service and port, the Job reads the
#   ConfigMap key it mounts, and scrape annotations name a declared port;
# - the scenario in the ConfigMap validates with `loadgen validate`.
#
# Runs every check, even after one fails, then prints "N passed, M failed" and exits 1 if any failed.
# Installs kubernetes-validate and PyYAML with pip into ./.venv (CHECK_K8S_VENV to move it).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.3
# The oldest Kubernetes with every field used (backoffLimitPerIndex) in beta, and a recent one.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
VENV=${CHECK_K8S_VENV:-.venv}
K8S=stack/k8s

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_tools_venv() {
    ensure_venv "$VENV"
    if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION" ||
        ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
        echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and PyYAML into $VENV (pip)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
    fi
}


validate_schemas() {
    local version=$1
    shift
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$@"
}

consistent() {
    "$VENV/bin/python" - "$@" <<'PY'
import re, sys, yaml

docs = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        docs += [d for d in yaml.safe_load_all(f) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
problems = []

deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}

def ports_of(pod_spec):
    return {p["containerPort"]: p.get("name") for c in pod_spec["containers"] for p in c.get("ports", [])}

for name, s in services.items():
    selector = s["spec"]["selector"]
    matches = [d for d in deployments.values()
               if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    if not matches:
        problems.append(f"Service {name} selects no Deployment")
    for d in matches:
        names = set(ports_of(d["spec"]["template"]["spec"]).values())
        for p in s["spec"]["ports"]:
            if isinstance(p["targetPort"], str) and p["targetPort"] not in names:
                problems.append(f"Service {name}: targetPort {p['targetPort']} is not a port of {d['metadata']['name']}")

templates = [(d["metadata"]["name"], d["spec"]["template"]) for d in deployments.values()]
templates += [(j["metadata"]["name"], j["spec"]["template"]) for j in by_kind.get("Job", [])]
for name, t in templates:
    notes = t["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") == "true":
        port = int(notes.get("prometheus.io/port", "0"))
        if port not in ports_of(t["spec"]):
            problems.append(f"{name}: prometheus.io/port {port} is not a declared container port")

for job in by_kind.get("Job", []):
    name, spec = job["metadata"]["name"], job["spec"]
    if spec.get("completionMode") != "Indexed":
        problems.append(f"Job {name}: completionMode is not Indexed")
    script = " ".join(" ".join(c.get("command", []) + c.get("args", [])) for c in spec["template"]["spec"]["containers"])
    shard = re.search(r"--shard\s+\"?\$\{?JOB_COMPLETION_INDEX\}?/(\d+)", script)
    if not shard:
        problems.append(f"Job {name}: no --shard $JOB_COMPLETION_INDEX/N argument")
    else:
        n = int(shard.group(1))
        for field in ("completions", "parallelism"):
            if spec.get(field) != n:
                problems.append(f"Job {name}: {field} is {spec.get(field)}, but --shard divides by {n}")
    target = re.search(r"--target\s+http://([^:/\s]+):(\d+)", script)
    if not target:
        problems.append(f"Job {name}: no --target http://SERVICE:PORT")
    elif target.group(1) not in services or int(target.group(2)) not in [p["port"] for p in services[target.group(1)]["spec"]["ports"]]:
        problems.append(f"Job {name}: --target {target.group(1)}:{target.group(2)} is not a Service port")
    volumes = {v["name"]: v for v in spec["template"]["spec"].get("volumes", [])}
    for c in spec["template"]["spec"]["containers"]:
        for m in c.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:
                problems.append(f"Job {name}: mount {m['name']} has no volume")
            elif "configMap" in v:
                cm = configmaps.get(v["configMap"]["name"])
                if cm is None:
                    problems.append(f"Job {name}: ConfigMap {v['configMap']['name']} is not in the manifests")
                    continue
                for path in re.findall(re.escape(m["mountPath"].rstrip("/")) + r"/([\w.-]+)", script):
                    if path not in cm.get("data", {}):
                        problems.append(f"Job {name}: {m['mountPath']}/{path} is not a key of ConfigMap {cm['metadata']['name']}")

for p in problems:
    print(f"error: {p}", file=sys.stderr)
print(f"{len(docs)} resources, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
}

scenario_validates() {
    local dir
    dir=$(mktemp -d)
    "$VENV/bin/python" - "$K8S/scenario.yaml" "$dir" <<'PY'
import os, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")):
    if doc and doc["kind"] == "ConfigMap":
        for key, text in doc["data"].items():
            with open(os.path.join(sys.argv[2], key), "w", encoding="utf-8") as f:
                f.write(text)
PY
    local ok=0
    cargo run --quiet --locked -p loadgen -- validate "$dir"/*.toml || ok=$?
    rm -rf "$dir"
    return "$ok"
}

ensure_tools_venv
mapfile -t manifests < <(find "$K8S" -name '*.yaml' | sort)
for version in "${KUBERNETES_VERSIONS[@]}"; do
    check "manifests against the Kubernetes $version schemas" validate_schemas "$version" "${manifests[@]}"
done
check "manifests agree with each other" consistent "${manifests[@]}"
check "the ConfigMap's scenario validates" scenario_validates

echo
checks_done check-k8s
