"""Tests of scripts/check_compose_policy.py against the real compose file, changed one thing at a time.

Run from the repository root: python -m unittest discover -s scripts/tests (needs PyYAML).
"""

import copy
import pathlib
import subprocess
import sys
import tempfile
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_compose_policy.py"
STACK = ROOT / "stack"


def current_compose():
    """The stack's compose file with its bind mounts made absolute, so a copy elsewhere reads the same files."""
    with open(STACK / "docker-compose.yml", encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    for svc in compose["services"].values():
        volumes = []
        for v in svc.get("volumes") or []:
            if isinstance(v, str) and v.startswith("."):
                source, rest = v.split(":", 1)
                v = f"{(STACK / source).resolve()}:{rest}"
            volumes.append(v)
        if volumes:
            svc["volumes"] = volumes
    return compose


def run(compose):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "docker-compose.yml"
        path.write_text(yaml.safe_dump(compose), encoding="utf-8")
        done = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60)
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("error:")]


class HostRouteTest(unittest.TestCase):
    def test_the_stack_passes(self):
        self.assertEqual(run(current_compose()), (0, []))

    def test_a_service_whose_config_names_the_host_needs_the_route(self):
        for service in ("alertmanager", "prometheus"):
            compose = copy.deepcopy(current_compose())
            del compose["services"][service]["extra_hosts"]
            code, errors = run(compose)
            self.assertEqual(code, 1, service)
            self.assertEqual(len(errors), 1, errors)
            self.assertIn(f"{service}: its configuration names host.docker.internal", errors[0])

    def test_a_command_naming_the_host_needs_the_route(self):
        compose = current_compose()
        compose["services"]["webhook"]["command"] = ["python", "-c", "print('http://host.docker.internal:9097')"]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertTrue(any(e.startswith("error: webhook: its configuration names") for e in errors), errors)

    def test_the_host_is_never_a_fixed_address(self):
        compose = current_compose()
        compose["services"]["alertmanager"]["extra_hosts"] = ["host.docker.internal:172.17.0.1"]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertIn("alertmanager: extra_hosts maps host.docker.internal to ['172.17.0.1']", errors[0])
        compose["services"]["alertmanager"]["extra_hosts"] = {"host.docker.internal": "host-gateway"}
        self.assertEqual(run(compose), (0, []))


if __name__ == "__main__":
    unittest.main()
