# tests/cli/lib.sh - shared by the CLI tests: one behaviour per script.
# Usage in a test: . "$(dirname "$0")/lib.sh"  (expects $1 = the sluice binary)
set -u
SLUICE=${1:?usage: $0 /path/to/sluice}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# The demo must not pick up the caller's overrides.
for v in $(env | sed -n 's/^\(SLUICE_POOL_[A-Za-z0-9_]*\)=.*/\1/p;s/^\(SLUICE_SERVICE_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v"
done

fail() {
    echo "FAIL: $*" >&2
    # A demo started in the background by the test must not outlive it.
    [ -n "${pid:-}" ] && kill -KILL "$pid" 2>/dev/null
    for f in "$TMP"/out "$TMP"/err; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -40 "$f" >&2; }
    done
    exit 1
}

# run EXPECTED_RC args...: runs sluice with stdout/stderr in $TMP/out, $TMP/err
run() {
    want=$1
    shift
    "$SLUICE" "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "sluice $* exited $got, want $want"
}

contains() { # FILE TEXT
    grep -qF -- "$2" "$1" || fail "$1 does not contain: $2"
}

# wait_for FILE TEXT: poll (up to 20 s) until FILE contains TEXT.
wait_for() { # FILE TEXT: poll up to 20 s
    i=0
    while ! grep -qF -- "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 400 ] || fail "timed out waiting for '$2' in $1"
        sleep 0.05
    done
}
