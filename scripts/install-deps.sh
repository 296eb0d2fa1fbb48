#!/bin/sh
# Installs the Debian 12 packages Sluice needs to build, test and benchmark.
# Idempotent: does nothing when every package is already installed, so the
# Makefile can call it before every build. Needs root (or sudo) only when
# something is missing.
#
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --check  exit 1 listing what is missing
set -eu

PKGS="build-essential cmake pkg-config clang clang-format
libcmocka-dev
libmicrohttpd-dev
libyaml-dev
libhiredis-dev redis-server
libncurses-dev libjansson-dev
prometheus
cthreadpool-dev libglib2.0-dev libuv1-dev libapr1-dev libaprutil1-dev
valgrind curl jq python3
chromium tmux"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing packages:$missing" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: not root and no sudo; install by hand:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
