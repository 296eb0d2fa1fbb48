#!/bin/sh
# Checks that every tracked C source and header is as clang-format (the
# project's .clang-format) writes it, and names each file that is not, with
# the first lines of the difference. `make format` rewrites them.
# Exit 0 all formatted; 1 some file drifted; 77 clang-format or git is absent
# (ctest reports the test as skipped; scripts/install-deps.sh installs it).
# Test fixtures that must keep a hand-made shape are left out.
set -u
cd "$(dirname "$0")/.." || exit 1
command -v clang-format >/dev/null 2>&1 || { echo "check-format: clang-format not installed (scripts/install-deps.sh installs it)"; exit 77; }
git rev-parse --git-dir >/dev/null 2>&1 || { echo "check-format: not a git checkout"; exit 77; }
files=$(git ls-files '*.c' '*.h' | grep -v '^tests/tools/fixtures/')
# One clang-format for all files; --dry-run -Werror names each line it would
# change as file:line:col, and fails when there is one.
# shellcheck disable=SC2086
if ! out=$(clang-format --style=file --dry-run -Werror $files 2>&1); then
    echo "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort | uniq -c |
        while read -r n f; do echo "check-format: $f is not clang-formatted ($n places)"; done
    echo "$out" | head -40
    echo "check-format: run 'make format' (clang-format $(clang-format --version | sed 's/.*version //'))"
    exit 1
fi
echo "check-format: $(echo "$files" | wc -l) files formatted"
