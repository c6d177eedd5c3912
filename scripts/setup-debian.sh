#!/usr/bin/env bash
# Installs what deployctl needs to build, test and demo on Debian 12, from Debian's archive.
# Only missing packages are installed: upgrading PostgreSQL under a running server would break
# its new connections, so nothing already present is touched.
set -euo pipefail

packages=(
    # build
    gcc make cmake ninja-build pkg-config
    libpq-dev libzstd-dev libarchive-dev libcurl4-openssl-dev libssl-dev
    libjansson-dev libinih-dev libpg-query-dev libcmocka-dev
    # run and test
    postgresql postgresql-client pgbouncer zstd jq tar time procps util-linux clang-format python3
    # the fuzz targets (tests/fuzz, the fuzz_smoke test): clang with libFuzzer and the sanitizers
    clang libclang-rt-dev
    # packaging: the Debian package (cpack, dpkg-shlibdeps), its manual page, the systemd units
    # (systemd-analyze), the metrics parser and the CI examples' YAML
    dpkg-dev man-db groff-base systemd python3-prometheus-client python3-yaml
    openssl # the encryption tests make their keys with `openssl rand`
    valgrind # memcheck over the end-to-end tests (the valgrind_* tests, scripts/test.sh --valgrind)
)

# The S3 tests: s3rver runs on node (installed by npm from the registry at fixture start) and
# the real `aws` client cross-checks what deployctl stores. A command already on the PATH (node
# from NodeSource bundles npm; aws from pip) is enough: its Debian package would conflict.
declare -A commands=([nodejs]=node [npm]=npm [awscli]=aws)
for p in nodejs npm awscli; do
    command -v "${commands[$p]}" >/dev/null || packages+=("$p")
done

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/deployctl-apt.log 2>&1; then
    $sudo apt-get update >>/tmp/deployctl-apt.log 2>&1
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/deployctl-apt.log 2>&1 ||
        { tail -20 /tmp/deployctl-apt.log >&2; echo "setup: apt-get failed (log: /tmp/deployctl-apt.log)" >&2; exit 1; }
fi
