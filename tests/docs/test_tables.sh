#!/bin/sh
# tests/docs/test_tables.sh ROOT - the test tables of the documents list
# the test programs there are, both ways:
#   docs/core-tests.md  every test of tests/core/CMakeLists.txt (core_stress_*
#                       covers the stress programs), and each test it names
#                       exists somewhere in tests/;
#   docs/sync.md        every test of tests/sync/CMakeLists.txt has a row of
#                       its "## Tests" table.
# A new test program gets its row (what it holds the code to) where its
# area's doc keeps them. Exit 0 when all hold, 1 with one line per
# difference.
set -u
root=${1:?usage: test_tables.sh ROOT}
status=0
fail() {
    echo "test_tables: $*" >&2
    status=1
}
defined() { # the test names a CMakeLists.txt defines (foreach lists expanded)
    grep -ohE 'NAME [a-z][a-z0-9_]*' "$@" | sed 's/NAME //'
    sed -n 's/^foreach(stress \(.*\))$/\1/p' "$@" | tr ' ' '\n' | sed 's/^/core_stress_/'
}
all=$(defined $(find "$root/tests" -name CMakeLists.txt) | grep -v '_$' | sort -u)

core_doc=$root/docs/core-tests.md
for t in $(defined "$root/tests/core/CMakeLists.txt" | grep -v '_$' | sort -u); do
    case $t in core_stress_*) grep -q '`core_stress_\*`' "$core_doc" && continue ;; esac
    grep -q "^| \`$t\`" "$core_doc" || fail "$t (tests/core) has no row in docs/core-tests.md"
done
for t in $(grep -o '`\(core\|sync\|base\|sys\|obs\)_[a-z0-9_]*`' "$core_doc" | tr -d '`' | sort -u); do
    printf '%s\n' "$all" | grep -qx "$t" || fail "docs/core-tests.md names $t, which no CMakeLists.txt defines"
done

sync_doc=$root/docs/sync.md
for t in $(defined "$root/tests/sync/CMakeLists.txt" | sort -u); do
    sed -n '/^## Tests/,$p' "$sync_doc" | grep -q "^| \`$t\`" || fail "$t (tests/sync) has no row in docs/sync.md's Tests table"
done
for t in $(sed -n '/^## Tests/,$p' "$sync_doc" | grep -o '^| `[a-z0-9_]*`' | tr -d '|` '); do
    printf '%s\n' "$all" | grep -qx "$t" || fail "docs/sync.md's Tests table names $t, which no CMakeLists.txt defines"
done
[ "$status" -eq 0 ] && echo "test_tables: docs/core-tests.md and docs/sync.md list every core and sync test"
exit "$status"
