#!/bin/sh
# Installs the build into a scratch prefix and builds a program against it
# twice: with pkg-config and with CMake's find_package(Sluice), linking both
# the shared and the static library. Proves `make install` gives a service
# what it needs.
#   install_test.sh <build-dir> <source-dir>
set -eu
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib* | head -1)
test -f "$prefix/include/sluice/sluice.h" || { echo "FAIL: headers not installed"; exit 1; }
ls "$libdir"/libsluice.so.0* >/dev/null 2>&1 || { echo "FAIL: versioned shared library missing"; exit 1; }
test -f "$libdir/libsluice.a" || { echo "FAIL: static library missing"; exit 1; }
test -f "$libdir/pkgconfig/sluice.pc" || { echo "FAIL: sluice.pc missing"; exit 1; }
test -f "$libdir/cmake/Sluice/SluiceConfig.cmake" || { echo "FAIL: CMake package missing"; exit 1; }

# The separate archives (sluice_admin, sluice_config, sluice_cluster) are
# linked against the shared libsluice (-lsluice_cluster -lsluice), which
# exports only the public sluice_ API: an internal sluice__ function they
# call must be compiled into them (header-only, as src/base/text.h and
# tb.h), or the user's link fails on an undefined reference. Every sluice
# symbol an archive needs is defined in the archive or exported by the .so.
so_syms=$work/so.syms
nm -D --defined-only "$libdir/libsluice.so" | awk 'NF == 3 { print $3 }' | sort -u >"$so_syms"
for a in "$libdir"/libsluice_*.a; do
    [ -e "$a" ] || continue
    nm -u "$a" | awk '$1 == "U" && $2 ~ /^sluice/ { print $2 }' | sort -u >"$work/u.syms"
    nm --defined-only "$a" | awk 'NF == 3 && $2 ~ /^[TDBR]$/ { print $3 }' | sort -u >"$work/d.syms"
    missing=$(comm -23 "$work/u.syms" "$work/d.syms" | comm -23 - "$so_syms")
    if [ -n "$missing" ]; then
        echo "FAIL: $(basename "$a") needs symbols libsluice.so does not export (hidden internals):" $missing
        exit 1
    fi
done

# pkg-config, shared
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -o "$work/qs-shared" "$src/examples/quickstart.c" $(pkg-config --cflags --libs sluice)
LD_LIBRARY_PATH="$libdir" "$work/qs-shared" 2000 | grep -q balanced || { echo "FAIL: shared build did not balance"; exit 1; }
# pkg-config, static
# shellcheck disable=SC2046
cc -std=c11 -o "$work/qs-static" "$src/examples/quickstart.c" $(pkg-config --cflags sluice) "$libdir/libsluice.a" \
    $(pkg-config --static --libs-only-l sluice | sed 's/-lsluice//')
"$work/qs-static" 2000 | grep -q balanced || { echo "FAIL: static build did not balance"; exit 1; }

# CMake find_package
mkdir -p "$work/app"
cp "$src/examples/quickstart.c" "$work/app/"
cat > "$work/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(Sluice 0.1 REQUIRED)
add_executable(app quickstart.c)
target_link_libraries(app PRIVATE Sluice::sluice)
CM
cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/app/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/app/build/app" 2000 | grep -q balanced || { echo "FAIL: cmake build did not balance"; exit 1; }
echo "install: headers, libsluice.so (versioned), libsluice.a, sluice.pc and SluiceConfig.cmake all usable; the other archives need only what libsluice.so exports"
