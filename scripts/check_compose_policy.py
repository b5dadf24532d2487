#!/usr/bin/env python3
"""Check the stack's compose file against the rules the schema cannot express.

Usage: check_compose_policy.py COMPOSE_FILE

  - every published port is bound to 127.0.0.1;
  - every image is pinned to an explicit version (no missing tag, no "latest");
  - every depends_on entry names a condition;
  - Grafana's admin password comes from a required variable, never a literal;
  - Grafana's anonymous visitors (when enabled) are Viewers, and nobody can sign up;
  - the chaos token of target-app and downstream comes from a required variable;
  - a service whose mounted files or command name host.docker.internal (the host, where loadgen runs)
    maps it with extra_hosts to host-gateway, since Linux engines do not define the name; and
    host.docker.internal is never mapped to a fixed address.

Exits 1 and lists every violation. Needs PyYAML.
"""

import os
import re
import sys

import yaml

REQUIRED_VAR = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")
HOST_NAME = "host.docker.internal"
HOST_GATEWAY = "host-gateway"


def bind_sources(base, svc):
    """Host paths of the service's bind mounts (short syntax "./src:/dst[:mode]" or long syntax)."""
    for volume in svc.get("volumes") or []:
        source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
        if source and source.startswith((".", "/")):
            yield os.path.normpath(os.path.join(base, source))


def names_host(base, svc):
    """Whether the service's command or one of its mounted files names host.docker.internal."""
    if HOST_NAME in str(svc.get("command") or "") or HOST_NAME in str(svc.get("environment") or ""):
        return True
    for source in bind_sources(base, svc):
        files = [source] if os.path.isfile(source) else []
        if os.path.isdir(source) and not source.endswith(".sock"):
            files = [os.path.join(d, f) for d, _, names in os.walk(source) for f in names]
        for path in files:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    if HOST_NAME in f.read(1 << 20):
                        return True
            except OSError:
                continue
    return False


def host_routes(svc):
    """The addresses extra_hosts gives host.docker.internal (list "name:addr" or mapping form)."""
    extra = svc.get("extra_hosts") or []
    if isinstance(extra, dict):
        return [str(v) for k, v in extra.items() if k == HOST_NAME]
    routes = []
    for entry in extra:
        name, sep, addr = str(entry).partition(":")
        if not sep:
            name, _, addr = str(entry).partition("=")
        if name.strip() == HOST_NAME:
            routes.append(addr.strip())
    return routes


def main(argv):
    if len(argv) != 2:
        print("usage: check_compose_policy.py COMPOSE_FILE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services") or {}
    errors = []
    if not services:
        errors.append("no services")

    base = os.path.dirname(os.path.abspath(argv[1]))
    for name, svc in services.items():
        routes = host_routes(svc)
        if any(r != HOST_GATEWAY for r in routes):
            errors.append(f"{name}: extra_hosts maps {HOST_NAME} to {routes}, not {HOST_GATEWAY}")
        if HOST_GATEWAY not in routes and names_host(base, svc):
            errors.append(
                f"{name}: its configuration names {HOST_NAME} but extra_hosts does not map it "
                f'("{HOST_NAME}:{HOST_GATEWAY}"): Linux engines do not define the name'
            )
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host_ip = str(port.get("host_ip", ""))
                if port.get("published") and host_ip != "127.0.0.1":
                    errors.append(f"{name}: port {port} is not bound to 127.0.0.1")
            elif not str(port).startswith("127.0.0.1:"):
                errors.append(f"{name}: port {port!r} is not bound to 127.0.0.1")

        image = svc.get("image")
        if image and "build" not in svc:
            ref = image.rsplit("/", 1)[-1]
            if "@sha256:" not in ref and (":" not in ref or ref.endswith(":latest")):
                errors.append(f"{name}: image {image!r} is not pinned to a version")

        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            errors.append(f"{name}: depends_on {depends} has no conditions (use the long form)")
        else:
            for dep, spec in depends.items():
                if not isinstance(spec, dict) or "condition" not in spec:
                    errors.append(f"{name}: depends_on {dep} has no condition")

    grafana_env = (services.get("grafana") or {}).get("environment") or {}
    if isinstance(grafana_env, list):
        grafana_env = dict(item.split("=", 1) for item in grafana_env if "=" in item)
    password = str(grafana_env.get("GF_SECURITY_ADMIN_PASSWORD", ""))
    if not REQUIRED_VAR.match(password):
        errors.append(
            "grafana: GF_SECURITY_ADMIN_PASSWORD must be a required variable like "
            "${GRAFANA_ADMIN_PASSWORD:?message}, not a literal or an optional default"
        )

    anonymous = str(grafana_env.get("GF_AUTH_ANONYMOUS_ENABLED", "false"))
    if anonymous != "false" and grafana_env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
        errors.append("grafana: anonymous access may be enabled, so GF_AUTH_ANONYMOUS_ORG_ROLE must be Viewer")
    if str(grafana_env.get("GF_USERS_ALLOW_SIGN_UP", "")) != "false":
        errors.append('grafana: GF_USERS_ALLOW_SIGN_UP must be "false"')

    for name in ("target-app", "downstream"):
        env = (services.get(name) or {}).get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env if "=" in item)
        if not REQUIRED_VAR.match(str(env.get("CHAOS_TOKEN", ""))):
            errors.append(
                f"{name}: CHAOS_TOKEN must be a required variable like ${{CHAOS_TOKEN:?message}}: "
                "from the host, faults are changed by a non-loopback peer"
            )

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return 1
    print(
        f"{len(services)} services: ports on 127.0.0.1, images pinned, depends_on with conditions, "
        f"secrets from required variables, anonymous Grafana viewers only, {HOST_NAME} mapped where named"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
