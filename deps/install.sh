#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing. As root it runs apt-get itself;
# otherwise it prints the one line to run as root (`su -c '...'`, listing exactly what is missing) and fails.
# Usage: deps/install.sh SET, where SET is what the target builds or runs:
#   build  the release gateway and simulator (make, make run)
#   all    build + the unit tests and micro-benchmarks that CMake configures with K2A_TESTS=ON
#          (make build-all, make asan)
#   fuzz   build + clang and its libFuzzer runtime (make fuzz-build, make fuzz)
#   test   all + fuzz + what the tests run: curl, nghttp2, openssl, chromium, redis-server, Node.js (make test)
#   bench  all + the load generators, nginx, redis-server and valgrind (make bench)
#   soak   build + python3 (make soak)
#   image  podman, debootstrap and what the container tests drive (make image-test)
set -euo pipefail
what=${1:-build}

build=(gcc make cmake pkg-config libh2o-dev libuv1-dev libyajl-dev libssl-dev libc-ares-dev zlib1g-dev libhiredis-dev)
all=("${build[@]}" libcmocka-dev python3)
fuzz=("${build[@]}" clang libclang-rt-14-dev llvm) # llvm: llvm-symbolizer, so fuzz findings print symbolized stacks
case "$what" in
build) pkgs=("${build[@]}") ;;
all) pkgs=("${all[@]}") ;;
fuzz) pkgs=("${fuzz[@]}") ;;
test) pkgs=("${all[@]}" clang libclang-rt-14-dev llvm curl nghttp2-client openssl chromium redis-server) ;;
bench) pkgs=("${all[@]}" curl nghttp2-client wrk nginx-light openssl redis-server valgrind) ;;
soak) pkgs=("${build[@]}" python3) ;;
image) pkgs=(podman buildah debootstrap runc slirp4netns golang-github-containernetworking-plugin-dnsname podman-compose
    python3 curl git) ;;
*)
    echo "deps/install.sh: unknown set '$what' (build, all, fuzz, test, bench, soak or image)" >&2
    exit 2
    ;;
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
    cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    {
        echo "deps: missing Debian packages (set '$what'): ${missing[*]}"
        echo "deps: install them as root with this one line (su asks for root's password), then run make again:"
        echo "  su -c '$cmd'"
        echo "deps: (or run the part in quotes in a root shell, or with sudo: sudo sh -c '...')"
    } >&2
    exit 1
fi
