#!/usr/bin/env python3
"""Check that every Grafana datasource uid referenced by the provisioning exists.

Usage: check_datasource_uids.py PROVISIONING_DIR [DASHBOARD_DIR ...]

The provisioned datasources are read from PROVISIONING_DIR/datasources/*.y*ml;
each must have a uid, and uids must be unique. References are then collected
from every YAML file under PROVISIONING_DIR and every JSON file under each
DASHBOARD_DIR:

  - any `datasourceUid` key (correlations: exemplars, derived fields, trace to
    logs/metrics/profiles, service map, ...);
  - `sourceUID` / `targetUID` keys (correlation provisioning);
  - `datasource: {uid: ...}` and `datasource: "..."` in dashboards and panels.

Template variables (`$ds`, `${ds}`) and Grafana's built-in pseudo datasources
are not checked. Exits 1 and lists every dangling reference (file and path to
the key) when one is found. Needs PyYAML.
"""

import json
import pathlib
import sys

import yaml

BUILTIN = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__", "-100"}
UID_KEYS = {"datasourceuid", "sourceuid", "targetuid"}


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def provisioned_datasources(prov_dir, errors):
    uids, names = {}, set()
    files = sorted(p for p in (prov_dir / "datasources").glob("*") if p.suffix in (".yml", ".yaml"))
    for path in files:
        for doc in load_yaml_docs(path):
            for i, ds in enumerate(doc.get("datasources") or []):
                where = f"{path}: datasources[{i}] ({ds.get('name', '?')})"
                uid = ds.get("uid")
                if not uid:
                    errors.append(f"{where}: no uid (give every datasource an explicit uid)")
                    continue
                if uid in uids:
                    errors.append(f"{where}: uid {uid!r} already used by {uids[uid]}")
                uids[uid] = where
                if ds.get("name"):
                    names.add(ds["name"])
    return uids, names


def references(node, path=()):
    """Yield (path, kind, value) for every datasource reference in a parsed document."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = path + (str(key),)
            k = str(key).lower()
            if k in UID_KEYS and isinstance(value, str):
                yield here, "uid", value
            elif k == "datasource":
                if isinstance(value, dict) and isinstance(value.get("uid"), str):
                    yield here + ("uid",), "uid", value["uid"]
                elif isinstance(value, str):
                    yield here, "uid-or-name", value
            yield from references(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from references(item, path + (f"[{i}]",))


def skipped(value):
    return not value or value.startswith("$") or value in BUILTIN


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    prov_dir = pathlib.Path(argv[1])
    dash_dirs = [pathlib.Path(d) for d in argv[2:]]
    errors = []

    uids, names = provisioned_datasources(prov_dir, errors)
    if not uids:
        errors.append(f"{prov_dir}/datasources: no provisioned datasource found")

    documents = []
    for path in sorted(prov_dir.rglob("*")):
        if path.suffix in (".yml", ".yaml"):
            documents += [(path, doc) for doc in load_yaml_docs(path)]
    for d in dash_dirs:
        for path in sorted(d.rglob("*.json")):
            with open(path, encoding="utf-8") as f:
                try:
                    documents.append((path, json.load(f)))
                except ValueError as e:
                    errors.append(f"{path}: not valid JSON: {e}")

    checked = 0
    for path, doc in documents:
        for where, kind, value in references(doc):
            if skipped(value):
                continue
            checked += 1
            known = value in uids or (kind == "uid-or-name" and value in names)
            if not known:
                errors.append(
                    f"{path}: {'.'.join(where)} = {value!r} is not a provisioned datasource "
                    f"(known uids: {', '.join(sorted(uids))})"
                )

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"{len(uids)} datasources ({', '.join(sorted(uids))}); {checked} references checked in {len(documents)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
