#!/usr/bin/env python3
"""Check the compose file's images and healthchecks against the image table of stack/README.md.

Usage: check_image_table.py COMPOSE_FILE README

The README holds, under the heading "## Images", a table with at least the columns
`image`, `tag` and `programs`: for every image the stack runs, the programs its
Dockerfile puts in it (backticked, e.g. `/usr/bin/loki`, `wget`, `/bin/sh`). This
check fails when

  - a service runs an image (repository and tag) that has no row in the table;
  - a row names an image:tag that no service runs (the table went stale);
  - a healthcheck calls a program the image's row does not list: the first word of
    a CMD test; the shell itself for CMD-SHELL; and for `sh -c` / `bash -c` scripts
    also the first word of every command in the script (shell builtins aside);
  - the row's `healthcheck` column (when the table has one) does not name the program
    the compose healthcheck runs.

A program written with a path must be listed with that path; a bare name matches a
listed program of the same base name. Exits 1 and names the service, the program and
the image of every problem. Needs PyYAML.
"""

import re
import shlex
import sys

import yaml

SHELLS = {"sh", "bash", "ash", "dash"}
# Words in command position that the shell runs itself.
BUILTINS = {"exec", "printf", "echo", "test", "[", "true", "false", "read", "cd", "exit", "set", "command"}
TABLE_HEADING = re.compile(r"^##\s+Images\s*$")


def read_table(readme_path):
    """Returns {image:tag: {"programs": set, "line": n}} from the table under '## Images'."""
    with open(readme_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if TABLE_HEADING.match(line)), None)
    if start is None:
        raise ValueError(f"{readme_path}: no '## Images' heading")
    header_at = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("|")), None)
    if header_at is None:
        raise ValueError(f"{readme_path}:{start + 1}: no table under '## Images'")
    header = [c.strip().lower() for c in lines[header_at].strip().strip("|").split("|")]
    for column in ("image", "tag", "programs"):
        if column not in header:
            raise ValueError(f"{readme_path}:{header_at + 1}: the image table has no '{column}' column (columns: {header})")
    rows = {}
    for i in range(header_at + 2, len(lines)):
        line = lines[i]
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(header):
            raise ValueError(f"{readme_path}:{i + 1}: {len(cells)} cells, the header has {len(header)}")
        cell = dict(zip(header, cells))
        image = cell["image"].strip("`")
        tag = cell["tag"].strip("`")
        rows[f"{image}:{tag}"] = {
            "programs": set(re.findall(r"`([^`]+)`", cell["programs"])),
            "healthcheck": cell.get("healthcheck", ""),
            "line": i + 1,
        }
    if not rows:
        raise ValueError(f"{readme_path}:{header_at + 1}: the image table has no rows")
    return rows


def script_commands(script):
    """First words of the commands of a shell script (lists, pipelines), redirections skipped."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    separators = {"&&", "||", "|", ";", "&", "(", ")"}
    words, at_start, i = [], True, 0
    while i < len(tokens):
        token = tokens[i]
        if token in separators:
            at_start = True
        elif re.fullmatch(r"[<>&]+", token):
            i += 1  # a redirection: skip its target
        elif token.isdigit() and i + 1 < len(tokens) and re.fullmatch(r"[<>&]+", tokens[i + 1]):
            pass  # the file descriptor of a redirection
        elif at_start and not re.match(r"^\w+=", token):
            words.append(token)
            at_start = False
        i += 1
    return words


def programs_called(test):
    """(program, why) pairs a healthcheck test runs. `test` is the compose healthcheck.test value."""
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return []
    kind, args = test[0], list(test[1:])
    if kind == "CMD-SHELL":
        script = " ".join(args)
        return [("/bin/sh", "CMD-SHELL runs /bin/sh")] + [
            (w, "called by the CMD-SHELL script") for w in script_commands(script) if w not in BUILTINS
        ]
    if kind != "CMD" or not args:
        return [(str(kind), "unknown healthcheck form")]
    called = [(args[0], "the healthcheck command")]
    if args[0].rsplit("/", 1)[-1] in SHELLS and len(args) >= 3 and args[1] == "-c":
        called += [(w, f"called by its {args[0]} -c script") for w in script_commands(args[2]) if w not in BUILTINS]
    return called


def contains(programs, program):
    if program.startswith("/"):
        return program in programs
    return any(p.rsplit("/", 1)[-1] == program for p in programs)


def check(compose, rows):
    errors = []
    used = set()
    for name, svc in (compose.get("services") or {}).items():
        image = svc.get("image")
        if not image:
            errors.append(f"{name}: no image: name the image (and build it) so the table can describe it")
            continue
        if ":" not in image.rsplit("/", 1)[-1]:
            image += ":latest"
        used.add(image)
        row = rows.get(image)
        if row is None:
            errors.append(f"{name}: image {image} has no row in the image table")
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if test is None or (svc.get("healthcheck") or {}).get("disable"):
            continue
        called = programs_called(test)
        if called and "healthcheck" in row:
            first = called[0][0] if called[0][0] != "/bin/sh" or len(called) == 1 else called[1][0]
            if first.rsplit("/", 1)[-1] not in row["healthcheck"]:
                errors.append(
                    f"{name}: healthcheck runs `{first}`, but the image table (line {row['line']}) describes "
                    f"its healthcheck as {row['healthcheck']!r}"
                )
        for program, why in called:
            if not contains(row["programs"], program):
                listed = ", ".join(sorted(row["programs"])) or "nothing"
                errors.append(
                    f"{name}: healthcheck runs `{program}` ({why}), which {image} does not contain "
                    f"(the image table lists: {listed})"
                )
    for image, row in sorted(rows.items()):
        if image not in used:
            errors.append(f"image table line {row['line']}: {image} is run by no service of the compose file")
    return errors


def main(argv):
    if len(argv) != 3:
        print("usage: check_image_table.py COMPOSE_FILE README", file=sys.stderr)
        return 2
    try:
        rows = read_table(argv[2])
        with open(argv[1], encoding="utf-8") as f:
            compose = yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    errors = check(compose, rows)
    for e in errors:
        print(f"error: {argv[1]}: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"{len(rows)} images in the table of {argv[2]}; every service's image listed, every healthcheck program present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
