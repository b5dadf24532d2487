"""Tests of scripts/check_image_table.py against the real compose file and README, changed one thing at a time.

Run from the repository root: python -m unittest discover -s scripts/tests (needs PyYAML).
"""

import pathlib
import subprocess
import sys
import tempfile
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_image_table.py"
COMPOSE = ROOT / "stack" / "docker-compose.yml"
README = ROOT / "stack" / "README.md"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"

sys.path.insert(0, str(SCRIPT.parent))
import check_image_table  # noqa: E402


def run(compose, readme=README):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "docker-compose.yml"
        path.write_text(yaml.safe_dump(compose) if isinstance(compose, dict) else compose, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(path), str(readme)], capture_output=True, text=True, timeout=60
        )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return done.returncode, errors


def current_compose():
    with open(COMPOSE, encoding="utf-8") as f:
        return yaml.safe_load(f)


class ImageTableTest(unittest.TestCase):
    def test_the_stack_as_committed_passes(self):
        code, errors = run(COMPOSE.read_text(encoding="utf-8"))
        self.assertEqual((code, errors), (0, []))

    def test_old_loki_wget_healthcheck_fails_naming_service_and_program(self):
        compose = current_compose()
        with open(FIXTURES / "old-loki-service.yml", encoding="utf-8") as f:
            old = yaml.safe_load(f)["loki"]
        compose["services"]["loki"]["healthcheck"] = old["healthcheck"]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        missing = [e for e in errors if "does not contain" in e]
        self.assertEqual(len(missing), 1, errors)
        self.assertIn("loki: healthcheck runs `wget` (the healthcheck command), which grafana/loki:3.7.6 does not contain", missing[0])
        # The table also no longer describes that healthcheck: the only other complaint.
        self.assertEqual(len(errors), 2, errors)

    def test_image_without_a_row_fails(self):
        compose = current_compose()
        compose["services"]["tempo"]["image"] = "grafana/tempo:2.9.0"
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertTrue(any("tempo: image grafana/tempo:2.9.0 has no row" in e for e in errors), errors)
        self.assertTrue(any("grafana/tempo:3.0.3 is run by no service" in e for e in errors), errors)

    def test_shell_healthcheck_in_a_distroless_image_fails(self):
        compose = current_compose()
        compose["services"]["pyroscope"]["healthcheck"]["test"] = ["CMD-SHELL", "profilecli ready || exit 1"]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("pyroscope: healthcheck runs `/bin/sh`", errors[0])

    def test_programs_inside_a_bash_script_are_checked(self):
        compose = current_compose()
        compose["services"]["alloy"]["healthcheck"]["test"] = [
            "CMD", "bash", "-c", "curl -fs http://127.0.0.1:12345/-/ready >/dev/null && echo ok",
        ]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("alloy: healthcheck runs `curl`", errors[0])

    def test_table_must_describe_the_healthcheck_that_runs(self):
        compose = current_compose()
        compose["services"]["grafana"]["healthcheck"]["test"] = ["CMD", "/run.sh"]
        code, errors = run(compose)
        self.assertEqual(code, 1)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("grafana: healthcheck runs `/run.sh`, but the image table", errors[0])

    def test_readme_without_the_table_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            readme = pathlib.Path(tmp) / "README.md"
            readme.write_text("# Stack\n\nNo image table here.\n", encoding="utf-8")
            code, errors = run(COMPOSE.read_text(encoding="utf-8"), readme)
        self.assertEqual(code, 1)
        self.assertIn("no '## Images' heading", errors[0])


class ScriptCommandsTest(unittest.TestCase):
    def test_redirections_and_builtins(self):
        script = (
            "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 "
            "&& head -n1 <&3 | grep -q ' 200'"
        )
        self.assertEqual(check_image_table.script_commands(script), ["exec", "printf", "head", "grep"])

    def test_assignments_and_lists(self):
        self.assertEqual(check_image_table.script_commands("A=1 wget -q x || exit 1; curl y"), ["wget", "exit", "curl"])


if __name__ == "__main__":
    unittest.main()
