#!/usr/bin/env bash
# The README's set-up on a new machine: two containers of a bare Debian 12 (the debootstrap minbase image of
# scripts/podman-common.sh, with only git and make added) clone this repository and run `make run` (a third runs
# `make test` with K2A_FRESH_MAKE_TEST=1, below).
#   as root:        `make run` installs the build packages, builds, and starts the demo; the test waits for the
#                   gateway, checks that it says it runs against the bundled simulator, that no test package was
#                   installed, and streams a /v1/messages request (message_start .. message_stop).
#   as a user:      `make run` fails cleanly with exactly one install line (`su -c '...'`) naming the missing
#                   build packages; that line is run as root; `make run` as the user then works the same way.
# The repository is a bare clone of this work tree's HEAD (committed changes only), mounted read-only into the
# containers, which clone it with git. The containers share the host's network (apt reaches the Debian mirror
# as this machine's apt does; the gateway's port is a free loopback port that curl on the host reaches); the
# simulator inside listens on 127.0.0.1 too. Everything the test creates is removed on exit (the base image
# stays cached). Run by `make image-test`; it downloads Debian packages, so it is not part of `make test`.
#   K2A_FRESH_TIMEOUT    seconds each `make run` may take to bring the gateway up (default 1200)
#   K2A_FRESH_MAKE_TEST=1  also `make test` (foundation tests only) as a user on a third machine: the install line
#                          for the test set, npm's clients, all three builds (about 880 MB of npm packages)
#   K2A_IMAGE_FRESH=1      make the base images anew first (debootstrap)
set -uo pipefail
cd "$(dirname "$0")/.."
src_dir=$(pwd)

tag=k2a-fresh-$$
work=$(mktemp -d /tmp/k2a-fresh-test.XXXXXX)
t_start=$(date +%s)
timeout_s=${K2A_FRESH_TIMEOUT:-1200}
# shellcheck source=scripts/podman-common.sh
. scripts/podman-common.sh
fails=0
passes=0
containers=()
bg_pids=()

log() { printf '[fresh-machine %4ss] %s\n' "$(($(date +%s) - t_start))" "$*"; }
ok() { passes=$((passes + 1)); log "ok: $*"; }
fail() { fails=$((fails + 1)); log "FAIL: $*"; }
die() { log "FATAL: $*"; exit 1; }
check() { # check "what" command...: one assertion
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; return 1; fi
}

cleanup() {
    local rc=$?
    set +e
    for c in "${containers[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v podman >/dev/null || die "podman is missing (deps/install.sh image installs it)"
command -v git >/dev/null || die "git is missing"
podman_conf
if [ "${K2A_IMAGE_FRESH:-0}" = 1 ]; then
    log "K2A_IMAGE_FRESH=1: dropping the cached base images"
    podman rmi -f "$base_full" "$base_slim" >/dev/null 2>&1
fi
base_images

commit=$(git rev-parse --short HEAD)
git clone -q --bare "$src_dir" "$work/kiro2api.git" || die "git clone --bare of $src_dir failed"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    log "note: the work tree has uncommitted changes; the containers get commit $commit without them"
fi
log "repository: commit $commit, cloned into the containers from a read-only bare copy"

# new_machine NAME UID: starts $tag-NAME (into $machine), a container of the bare bookworm image with git and make
# installed, as on a machine where someone just typed `apt-get install git make` to fetch the project. Its copy of
# the repository belongs to UID, the user who clones it (git refuses a repository of another owner).
new_machine() {
    machine=$tag-$1
    containers+=("$machine")
    cp -a "$work/kiro2api.git" "$work/$1.git" && chown -R "$2:$2" "$work/$1.git" || die "cannot copy the repository"
    podman run -d --name "$machine" --hostname "$1" --network host \
        -v "$work/$1.git:/srv/kiro2api.git:ro" "$base_full" sleep infinity >"$work/$1.run.log" 2>&1 ||
        die "podman run: $(cat "$work/$1.run.log")"
    if ! podman exec -e DEBIAN_FRONTEND=noninteractive "$machine" bash -c \
        'apt-get update -q && apt-get install -y -q --no-install-recommends git make' >"$work/$1.apt.log" 2>&1; then
        tail -n 20 "$work/$1.apt.log"
        die "apt-get install git make failed in $machine"
    fi
}

# clone CONTAINER USER HOME: git clone of the repository into HOME/kiro2api as USER
clone() {
    podman exec -u "$2" -w "$3" "$1" git clone -q /srv/kiro2api.git kiro2api >"$work/clone.log" 2>&1 ||
        die "git clone as $2 failed: $(cat "$work/clone.log")"
}

# start_run CONTAINER USER HOME PORT LOG: `make run` as USER in HOME/kiro2api in the background (PORT for the gateway)
start_run() {
    podman exec -u "$2" -w "$3/kiro2api" -e PORT="$4" "$1" make run >"$5" 2>&1 &
    run_pid=$!
    bg_pids+=("$run_pid")
}

# wait_gateway PORT LOG: until /healthz answers on 127.0.0.1:PORT, while `make run` still runs
wait_gateway() {
    local port=$1 out=$2 t0
    t0=$(date +%s)
    while [ $(($(date +%s) - t0)) -lt "$timeout_s" ]; do
        if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; then
            log "gateway up on 127.0.0.1:$port after $(($(date +%s) - t0))s"
            return 0
        fi
        if ! kill -0 "$run_pid" 2>/dev/null; then
            log "make run ended before the gateway came up:"
            tail -n 40 "$out" | sed 's/^/    /'
            return 1
        fi
        sleep 2
    done
    log "no gateway after ${timeout_s}s:"
    tail -n 40 "$out" | sed 's/^/    /'
    return 1
}

# demo_checks CONTAINER PORT LOG WHO: what a person sees and does once `make run` is up
demo_checks() {
    local c=$1 port=$2 out=$3 who=$4
    check "$who: make run says it runs against the bundled Kiro simulator (demo mode)" \
        grep -qE 'runs against the bundled Kiro simulator at http://127\.0\.0\.1:[0-9]+' "$out"
    check "$who: the gateway listens on 127.0.0.1:$port only (no client key)" \
        grep -q "kiro2api listening on http://127.0.0.1:$port" "$out"
    check "$who: no 'Entering directory' lines from the recursive makes" bash -c '! grep -q "Entering directory" "$1"' _ "$out"
    check "$who: make run installed no test package (cmocka, clang, python3, node, chromium)" \
        bash -c '! podman exec "$1" dpkg-query -W -f="\${Package} \${Status}\n" libcmocka-dev clang python3 nodejs chromium 2>/dev/null |
            grep -q "install ok installed"' _ "$c"
    curl -sN --max-time 30 -H 'content-type: application/json' \
        -d '{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello"}]}' \
        -D "$out.headers" "http://127.0.0.1:$port/v1/messages" >"$out.sse" 2>"$out.curl"
    check "$who: POST /v1/messages answers 200 text/event-stream" \
        bash -c 'head -n1 "$1" | grep -q " 200" && grep -qi "^content-type: text/event-stream" "$1"' _ "$out.headers"
    if ! check "$who: the stream goes message_start .. message_stop with the simulator's 'echo: hello'" sse_check "$out.sse"; then
        head -c 600 "$out.headers" "$out.sse" | sed 's/^/    /'
        echo
    fi
}

# ---------------------------------------------------------------------------------------------- as root
log "machine 1: make run as root"
new_machine root-machine 0
clone "$machine" root /root
port1=$(free_port)
t0=$(date +%s)
start_run "$machine" root /root "$port1" "$work/root.log"
if wait_gateway "$port1" "$work/root.log"; then
    ok "root: make run brought the gateway up ($(($(date +%s) - t0))s)"
    demo_checks "$machine" "$port1" "$work/root.log" root
else
    fail "root: make run brought the gateway up"
fi
podman rm -f -t 2 "$machine" >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------- as a user
log "machine 2: make run as a normal user"
new_machine user-machine 1000
m2=$machine
podman exec "$m2" useradd --uid 1000 --create-home --shell /bin/bash dev || die "useradd failed"
clone "$m2" dev /home/dev
first=$work/user-first.log
podman exec -u dev -w /home/dev/kiro2api "$m2" make run >"$first" 2>&1
first_rc=$?
sed 's/^/    | /' "$first"
check "user: make run without the packages fails (exit $first_rc)" test "$first_rc" -ne 0
check "user: ... before configuring or building anything" \
    bash -c '! grep -qE "Building C object|CMake Error|-- Configuring" "$1"' _ "$first"
check "user: ... and prints exactly one install line to run as root (su -c '...')" \
    test "$(grep -c "^  su -c 'apt-get update && apt-get install -y " "$first")" = 1
line=$(grep -m1 "^  su -c 'apt-get update && apt-get install -y " "$first" | sed 's/^  //')
pkgs=$(sed -nE "s/.*--no-install-recommends ([^']*)'.*/\1/p" <<<"$line")
want="gcc cmake pkg-config libh2o-dev libuv1-dev libyajl-dev libssl-dev libc-ares-dev zlib1g-dev libhiredis-dev"
check "user: ... naming exactly the missing build packages ($pkgs)" test "$pkgs" = "$want"
check "user: ... without assuming sudo" bash -c '! grep -qE "^ *sudo " "$1"' _ "$first"

if [ -n "$line" ]; then
    log "running that line as root: $line"
    t0=$(date +%s)
    if podman exec -u root "$m2" bash -c "$line" >"$work/user-install.log" 2>&1; then
        ok "user: the printed line ran as root ($(($(date +%s) - t0))s)"
    else
        tail -n 20 "$work/user-install.log" | sed 's/^/    /'
        fail "user: the printed line ran as root"
    fi
fi
port2=$(free_port)
t0=$(date +%s)
start_run "$m2" dev /home/dev "$port2" "$work/user.log"
if wait_gateway "$port2" "$work/user.log"; then
    ok "user: make run then brought the gateway up ($(($(date +%s) - t0))s)"
    demo_checks "$m2" "$port2" "$work/user.log" user
    check "user: the build belongs to the user" test "$(podman exec "$m2" stat -c %U /home/dev/kiro2api/build/kiro2api)" = dev
else
    fail "user: make run then brought the gateway up"
fi

# ---------------------------------------------------------------------------------------------- make test (opt-in)
# The other README command, as a normal user on a third new machine: the install line for the test set, then
# `make test` with only the foundation tests (it still installs the npm clients and builds all three trees).
if [ "${K2A_FRESH_MAKE_TEST:-0}" = 1 ]; then
    podman rm -f -t 2 "$m2" >/dev/null 2>&1
    log "machine 3: make test as a normal user (K2A_FRESH_MAKE_TEST=1)"
    new_machine test-machine 1000
    m3=$machine
    podman exec "$m3" useradd --uid 1000 --create-home --shell /bin/bash dev || die "useradd failed"
    clone "$m3" dev /home/dev
    first=$work/test-first.log
    podman exec -u dev -w /home/dev/kiro2api "$m3" make test >"$first" 2>&1
    first_rc=$?
    sed 's/^/    | /' "$first"
    line=$(grep -m1 "^  su -c 'apt-get update && apt-get install -y " "$first" | sed 's/^  //')
    check "make test as a user without the packages fails with one su -c line (exit $first_rc)" \
        test "$first_rc" -ne 0 -a "$(grep -c "^  su -c 'apt-get update" "$first")" = 1
    check "... that names the build, unit-test, fuzz and client packages" \
        bash -c 'for p in gcc cmake libcmocka-dev python3 clang libclang-rt-14-dev curl chromium redis-server nodejs npm; do
            grep -qE " $p( |'"'"')" <<<"$1" || exit 1; done' _ "$line"
    t0=$(date +%s)
    if [ -n "$line" ] && podman exec -u root "$m3" bash -c "$line" >"$work/test-install.log" 2>&1; then
        ok "the printed line ran as root ($(($(date +%s) - t0))s)"
    else
        tail -n 20 "$work/test-install.log" | sed 's/^/    /'
        fail "the printed line ran as root"
    fi
    # npm in the container trusts what npm here trusts: where this machine reaches the registry through a proxy
    # with a CA of its own (NODE_EXTRA_CA_CERTS, or npm's cafile), the container gets that bundle too, as the base
    # image gets apt's settings
    npm_ca=${NODE_EXTRA_CA_CERTS:-}
    if [ -z "$npm_ca" ] && command -v npm >/dev/null; then npm_ca=$(npm config get cafile 2>/dev/null); fi
    ca_env=()
    if [ -n "$npm_ca" ] && [ "$npm_ca" != null ] && [ -f "$npm_ca" ]; then
        podman cp "$npm_ca" "$m3:/etc/k2a-host-ca.crt" && podman exec "$m3" chmod 0644 /etc/k2a-host-ca.crt &&
            ca_env=(-e NODE_EXTRA_CA_CERTS=/etc/k2a-host-ca.crt) && log "npm trusts this machine's CA bundle ($npm_ca)"
    fi
    t0=$(date +%s)
    podman exec -u dev -w /home/dev/kiro2api -e CTEST_ARGS="-R foundation" "${ca_env[@]}" "$m3" make test >"$work/test.log" 2>&1
    test_rc=$?
    grep -E "tests passed|tests failed|make test:|^deps:" "$work/test.log" | sed 's/^/    | /'
    if ! check "make test as the user then passes (exit $test_rc, $(($(date +%s) - t0))s)" \
        bash -c '[ "$1" = 0 ] && grep -q "make test: both builds passed" "$2" &&
            [ "$(grep -c "100% tests passed" "$2")" = 2 ]' _ "$test_rc" "$work/test.log"; then
        tail -n 40 "$work/test.log" | sed 's/^/    /'
    fi
    check "... with no 'Entering directory' lines" bash -c '! grep -q "Entering directory" "$1"' _ "$work/test.log"
fi

log "fresh-machine: $passes passed, $fails failed (total $(($(date +%s) - t_start))s)"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
