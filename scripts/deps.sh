#!/usr/bin/env bash
# scripts/deps.sh - install the Debian 12 packages that building and testing
# shoal need, and only those that are missing.  Safe to run again: when
# everything is present it changes nothing and needs no network.
set -euo pipefail

packages=(
    libsodium-dev libmsgpack-dev liblmdb-dev libzmq3-dev libjansson-dev zlib1g-dev
    libsqlite3-dev
    meson ninja-build pkg-config gcc clang-format
    clang-14 libclang-rt-14-dev
    python3-dev python3-cffi python3-pytest python3-hypothesis
    python3-mesonpy python3-venv python3-pip
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages present"
    exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "deps: missing packages (${missing[*]}) and not root, and no sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A stale or partly unreachable list need not stop the install: try anyway.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    echo "deps: apt-get update failed; trying the install with the lists we have" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q "${missing[@]}"
