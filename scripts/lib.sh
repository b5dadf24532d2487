# Shared by the test and check scripts: installing what they lack, and running named checks.
# Source it from a script that has already `cd`-ed to the repository root.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_commands CMD=PACKAGE ...: installs with apt-get the Debian packages whose command is missing.
ensure_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]} (apt-get)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ensure_venv DIR: a Python virtual environment at DIR (installs python3-venv when needed).
ensure_venv() {
    local dir=$1
    [ -x "$dir/bin/python" ] && return 0
    echo "==> creating $dir"
    if ! python3 -m venv "$dir" 2>/dev/null; then
        rm -rf "$dir"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$dir"
    fi
}

# check NAME COMMAND...: runs a check, counting it passed or failed; `checks_done LABEL` reports them all.
passed=0
failed=()
check() {
    local name=$1
    shift
    echo "==> $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $name" >&2
        failed+=("$name")
    fi
}

checks_done() {
    if [ ${#failed[@]} -gt 0 ]; then
        printf 'failed: %s\n' "${failed[@]}" >&2
    fi
    echo "$1: $passed passed, ${#failed[@]} failed"
    [ ${#failed[@]} -eq 0 ]
}
