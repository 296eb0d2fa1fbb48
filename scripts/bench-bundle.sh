#!/bin/sh
# bench-bundle.sh: pack sluice-bench with every shared library it loads
# (the dynamic loader and libc included) into one folder, so the benchmark
# runs on a machine that has none of the peers installed and no network:
# a lent many-core machine that gets a copy of the working tree and
# nothing else (issue 19's `--scaling` run).
#
#   scripts/bench-bundle.sh [BUILD_DIR] [DEST]   defaults: build bench-bundle
#   DEST/run ARGS...                             sluice-bench ARGS, from the bundle
#
# DEST/run starts the bundled loader on the bundled binary with
# --library-path, so neither the other machine's libraries nor its glibc
# version matter (the kernel's does: any Linux x86-64 that runs Debian
# 12's glibc). The binary forks for each measurement and never execs, so
# the loader is needed once. DEST also gets MANIFEST: the commit, the
# build's flags and each library's source path, for the record that goes
# beside the figures.
#
# Exit status: 0 the bundle is built and answered `--list` through its
# own loader; 1 something is missing (no build, ldd failed, a library not
# found); 2 bad usage. DEST is replaced only after the new one works.
set -eu

usage() {
    echo "usage: scripts/bench-bundle.sh [BUILD_DIR] [DEST]" >&2
    echo "  packs BUILD_DIR/bench/sluice-bench (default build) and its shared libraries into DEST (default bench-bundle)" >&2
    exit 2
}
case "${1:-}" in
-h | --help) usage ;;
-*)
    echo "bench-bundle.sh: unknown option '$1'" >&2
    usage
    ;;
esac
[ $# -le 2 ] || usage
build=${1:-build}
dest=${2:-bench-bundle}
bin=$build/bench/sluice-bench

if [ ! -x "$bin" ]; then
    echo "bench-bundle.sh: $bin not found: build it first (make build, or cmake --build $build --target sluice-bench)" >&2
    exit 1
fi
command -v ldd >/dev/null 2>&1 || {
    echo "bench-bundle.sh: ldd not found (Debian package libc-bin)" >&2
    exit 1
}

tmp=$(mktemp -d "${dest%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/lib"
cp "$bin" "$tmp/sluice-bench"

# ldd lines: "libx.so.1 => /path/libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
# "linux-vdso.so.1 (0x...)" (in the kernel: nothing to copy), or "libx => not found".
out=$(ldd "$bin") || {
    echo "bench-bundle.sh: ldd $bin failed" >&2
    exit 1
}
if echo "$out" | grep -q "not found"; then
    echo "bench-bundle.sh: $bin needs libraries this machine lacks:" >&2
    echo "$out" | grep "not found" >&2
    exit 1
fi
loader=
{
    echo "sluice-bench bundle"
    echo "commit: $(git -C "$(dirname "$0")/.." rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    sed -n 's/^C_FLAGS = /flags: /p' "$build/bench/CMakeFiles/sluice-bench.dir/flags.make" 2>/dev/null || true
    echo "libraries:"
} >"$tmp/MANIFEST"
for lib in $(echo "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    name=$(basename "$lib")
    cp -L "$lib" "$tmp/lib/$name"
    echo "  $name <- $lib" >>"$tmp/MANIFEST"
    case "$name" in
    ld-linux*) loader=$name ;;
    esac
done
if [ -z "$loader" ]; then
    echo "bench-bundle.sh: no dynamic loader in ldd's output for $bin" >&2
    exit 1
fi

cat >"$tmp/run" <<EOF
#!/bin/sh
# Runs the bundled sluice-bench with the bundled loader and libraries.
here=\$(cd "\$(dirname "\$0")" && pwd)
exec "\$here/lib/$loader" --library-path "\$here/lib" "\$here/sluice-bench" "\$@"
EOF
chmod +x "$tmp/run" "$tmp/lib/$loader"

if ! "$tmp/run" --list >/dev/null; then
    echo "bench-bundle.sh: the bundle does not start (\"$tmp/run --list\" failed)" >&2
    exit 1
fi
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT INT TERM
echo "bench-bundle.sh: $dest ($(du -sk "$dest" | cut -f1) KiB): run it as $dest/run ARGS"
