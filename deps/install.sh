#!/usr/bin/env bash
# Installs the Debian packages kiro2api needs to build and test, when they are missing.
# As root it runs apt-get itself; otherwise it prints the one command to run and fails.
# Usage: deps/install.sh [build|test|bench|image]
set -euo pipefail
what=${1:-build}

pkgs=(gcc make cmake pkg-config libh2o-dev libuv1-dev libyajl-dev libssl-dev libc-ares-dev zlib1g-dev)
case "$what" in
test) pkgs+=(libcmocka-dev python3 curl nghttp2-client openssl clang libclang-rt-14-dev llvm chromium) ;;
bench) pkgs+=(python3 curl nghttp2-client wrk nginx-light openssl) ;;
image) pkgs+=(podman buildah debootstrap runc slirp4netns golang-github-containernetworking-plugin-dnsname podman-compose python3 curl) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# Node.js runs the official client SDKs in the tests (npm registry only). Any node >= 18 works.
if [ "$what" = test ] && ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "deps: missing Debian packages. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
