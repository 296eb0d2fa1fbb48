#!/bin/sh
# tests/docs/architecture_targets.sh ROOT - the layer diagram in
# docs/ARCHITECTURE.md ("## Layers", its first fenced block) is true to the
# build: every [target] it names is defined by an add_library or
# add_executable in the tree's CMake files; every library and executable
# that src/*/ and tools/sluice/ define is in it; and it names every
# SLUICE_BUILD_* option of the top CMakeLists.txt. Exit 0 when all hold,
# 1 with one line per difference.
set -u
root=${1:?usage: architecture_targets.sh ROOT}
doc=$root/docs/ARCHITECTURE.md
status=0
fail() {
    echo "architecture_targets: $*" >&2
    status=1
}

diagram=$(sed -n '/^## Layers/,/^## /p' "$doc" | sed -n '/^```/,/^```/p' | sed '1d;$d')
if [ -z "$diagram" ]; then
    fail "no fenced diagram under '## Layers' in $doc"
    exit 1
fi
named=$(printf '%s\n' "$diagram" | grep -o '\[[A-Za-z0-9_-]*' | tr -d '[' | sort -u)

# Targets the CMake files define (ALIAS names are not targets of their own).
defined=$(find "$root" -name CMakeLists.txt -not -path "$root/build*" | xargs grep -h 'add_\(library\|executable\)(' |
    grep -v ALIAS | sed 's/.*add_\(library\|executable\)( *\([A-Za-z0-9_-]*\).*/\2/' | sort -u)

for t in $named; do
    printf '%s\n' "$defined" | grep -qx "$t" || fail "the diagram names [$t], which no CMakeLists.txt defines"
done

for f in "$root"/CMakeLists.txt "$root"/src/*/CMakeLists.txt "$root"/tools/sluice/CMakeLists.txt; do
    for t in $(grep 'add_\(library\|executable\)(' "$f" | grep -v ALIAS |
        sed 's/.*add_\(library\|executable\)( *\([A-Za-z0-9_-]*\).*/\2/'); do
        printf '%s\n' "$named" | grep -qx "$t" || fail "$t (defined in ${f#"$root"/}) is not in the diagram"
    done
done

for o in $(grep -o '^option(SLUICE_BUILD_[A-Z_]*' "$root/CMakeLists.txt" | sed 's/option(//'); do
    printf '%s\n' "$diagram" | grep -q "$o" || fail "option $o is not in the diagram"
done

[ "$status" -eq 0 ] && echo "architecture_targets: $(printf '%s\n' "$named" | wc -l) targets and the SLUICE_BUILD_* options match"
exit "$status"
