#!/usr/bin/env bash
# `make image-test`: builds the container image with podman (no Docker engine, no registry) and runs it for
# real. The debian:bookworm / bookworm-slim base images are made locally with debootstrap from the mirror
# apt already uses (scripts/podman-common.sh), and kept in podman's storage with the Dockerfile's two package
# stages (later runs skip those steps). The test builds the Dockerfile, checks the runtime image (no compiler, non-root, assets, the
# /data volume), runs kiro-sim on the host (127.0.0.1) and the gateway in a container that reaches it, waits
# for /healthz, runs the image's HEALTHCHECK, checks /v1/models, streams a /v1/messages request, stops the
# container with SIGTERM, then runs docker-compose.yml (gateway with .env + secret + volume, and the demo
# profile) with podman-compose. Everything it creates is removed on exit except those cached images.
# Traffic stays on this machine (loopback, and the container networks podman makes: slirp4netns's 10.0.2.2
# is the host's loopback, the compose network a private bridge), except apt's during the package stages.
#   K2A_IMAGE_KEEP=1        keep the built image (localhost/kiro2api:test) and its layers afterwards
#   K2A_IMAGE_NO_COMPOSE=1  skip the compose part
#   K2A_IMAGE_FRESH=1       drop the cached base and package-stage images first (a cold run)
set -uo pipefail
cd "$(dirname "$0")/.."
src_dir=$(pwd)

image=localhost/kiro2api:test
tag=k2a-imgtest-$$
work=$(mktemp -d /tmp/k2a-image-test.XXXXXX)
t_start=$(date +%s)
# shellcheck source=scripts/podman-common.sh
. scripts/podman-common.sh
fails=0
passes=0
sim_pid=""
containers=()
images_before=""
volumes_before=""
main_port=""
demo_port=""

log() { printf '[image-test %3ss] %s\n' "$(($(date +%s) - t_start))" "$*"; }
ok() { passes=$((passes + 1)); log "ok: $*"; }
fail() { fails=$((fails + 1)); log "FAIL: $*"; }
die() { log "FATAL: $*"; exit 1; }
check() { # check "what" command...: one assertion
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; return 1; fi
}

cleanup() {
    local rc=$?
    set +e
    if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null; fi
    if [ -f "$work/compose-up" ]; then
        compose down -v >/dev/null 2>&1
    fi
    for c in "${containers[@]}"; do podman rm -f -v -t 2 "$c" >/dev/null 2>&1; done
    podman ps -a -q --filter "label=io.podman.compose.project=$tag" | xargs -r podman rm -f -v >/dev/null 2>&1
    podman network ls -q --filter "label=io.podman.compose.project=$tag" | xargs -r podman network rm -f >/dev/null 2>&1
    # volumes and images that appeared during the run (named, anonymous, the build stage and its layers);
    # the cached base images were there before
    if [ -n "$volumes_before" ]; then
        comm -13 "$work/volumes.before" <(podman volume ls -q | sort -u) | xargs -r podman volume rm -f >/dev/null 2>&1
    fi
    if [ -n "$images_before" ] && [ "${K2A_IMAGE_KEEP:-0}" != 1 ]; then
        podman rmi -f "$image" >/dev/null 2>&1
        comm -13 "$work/images.before" <(podman images -a -q --no-trunc | sort -u) | xargs -r podman rmi -f >/dev/null 2>&1
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v podman >/dev/null || die "podman is missing (deps/install.sh image installs it)"
podman_conf

# ---------------------------------------------------------------------------------------------- base images
if [ "${K2A_IMAGE_FRESH:-0}" = 1 ]; then
    log "K2A_IMAGE_FRESH=1: dropping the cached images"
    podman rmi -f localhost/kiro2api-cache:build-deps localhost/kiro2api-cache:runtime-base "$base_full" "$base_slim" \
        docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim >/dev/null 2>&1
fi
base_images

# The Dockerfile's FROM lines name Docker Hub's images; these tags make them resolve locally.
podman tag "$base_full" docker.io/library/debian:bookworm
podman tag "$base_slim" docker.io/library/debian:bookworm-slim

# --format docker: the OCI format has no HEALTHCHECK. --network host for the build containers: apt reaches
# the mirror exactly as this machine's apt does.
# The Dockerfile's package stages (build-deps, runtime-base) are kept as cached images too: a change of
# their RUN lines makes new ones (the old ones are dropped); the sources' stages are rebuilt every run.
build_args=(--pull=never --format docker --network host --layers)
for stage in build-deps runtime-base; do
    old_id=$(podman image inspect --format '{{.Id}}' "localhost/kiro2api-cache:$stage" 2>/dev/null || true)
    t0=$(date +%s)
    if ! podman build "${build_args[@]}" --target "$stage" -t "localhost/kiro2api-cache:$stage" -f Dockerfile . \
        >"$work/build-$stage.log" 2>&1; then
        tail -n 40 "$work/build-$stage.log"
        die "podman build --target $stage failed"
    fi
    new_id=$(podman image inspect --format '{{.Id}}' "localhost/kiro2api-cache:$stage")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
    log "stage $stage: $([ "$old_id" = "$new_id" ] && echo cached || echo "built in $(($(date +%s) - t0))s")"
done

# ---------------------------------------------------------------------------------------------- build
podman images -a -q --no-trunc | sort -u >"$work/images.before"
podman volume ls -q | sort -u >"$work/volumes.before"
images_before=1
volumes_before=1
log "podman build ($image)"
t0=$(date +%s)
if ! podman build "${build_args[@]}" --jobs 2 -t "$image" -f Dockerfile . >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log"
    die "podman build failed"
fi
build_s=$(($(date +%s) - t0))
size_bytes=$(podman image inspect --format '{{.Size}}' "$image")
base_bytes=$(podman image inspect --format '{{.Size}}' "$base_slim")
log "built in ${build_s}s; image $((size_bytes / 1000000)) MB (base bookworm-slim $((base_bytes / 1000000)) MB, added $(((size_bytes - base_bytes) / 1000000)) MB)"

# ---------------------------------------------------------------------------------------------- static checks
insp() { podman image inspect --format "$1" "$image"; }
check "runs as uid 10001" test "$(insp '{{.Config.User}}')" = "10001:10001"
check "exposes 8080" grep -q 8080 <<<"$(insp '{{.Config.ExposedPorts}}')"
check "declares the /data volume" grep -q /data <<<"$(insp '{{.Config.Volumes}}')"
check "has a HEALTHCHECK" grep -q healthz <<<"$(insp '{{.Config.Healthcheck}}')"
check "KIRO_STATIC_DIR=/app/assets, KIRO_STATE_FILE in /data, KIRO_HOST=0.0.0.0" \
    bash -c '[[ "$1" == *KIRO_STATIC_DIR=/app/assets* && "$1" == *KIRO_STATE_FILE=/data/* && "$1" == *KIRO_HOST=0.0.0.0* ]]' _ \
    "$(insp '{{.Config.Env}}')"
podman run --rm --network none --no-healthcheck --entrypoint bash "$image" -c '
    id -u; pwd
    for t in gcc cc cmake make ld as; do command -v $t >/dev/null && echo "has:$t"; done
    test -f /app/assets/index.html && echo assets
    test -d /data -a -w /data && echo data-writable
    kiro2api --version >/dev/null && kiro-sim --version >/dev/null && echo binaries-run
    dpkg-query -W -f="\${Package}\n" | grep -E "^(gcc(-[0-9]+)?|cpp(-[0-9]+)?|clang.*|binutils|cmake|make|.*-dev)$" | sed "s/^/pkg:/"
' >"$work/inside.txt" 2>"$work/inside.err"
check "container user is uid 10001 in /app" test "$(head -n2 "$work/inside.txt" | tr '\n' ' ')" = "10001 /app "
check "no compiler, linker, make or -dev package in the runtime image" bash -c '! grep -qE "^(has|pkg):" "$1"' _ "$work/inside.txt"
check "assets in /app/assets" grep -qx assets "$work/inside.txt"
check "/data writable by the user" grep -qx data-writable "$work/inside.txt"
check "kiro2api and kiro-sim run" grep -qx binaries-run "$work/inside.txt"
grep -E '^(has|pkg):' "$work/inside.txt" | sed 's/^/    /'

# ---------------------------------------------------------------------------------------------- run

if [ ! -x build/kiro-sim ]; then
    log "build/kiro-sim missing: building it"
    tests_flag=$([ -f build/CMakeCache.txt ] || echo -DK2A_TESTS=OFF)
    if ! cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $tests_flag >"$work/cmake.log" 2>&1 ||
        ! cmake --build build -j"$(nproc)" --target kiro-sim >>"$work/cmake.log" 2>&1; then
        tail -n 40 "$work/cmake.log"
        die "cannot build build/kiro-sim"
    fi
fi
sim_port=$(free_port)
build/kiro-sim --host 127.0.0.1 --port "$sim_port" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on http://127.0.0.1:$sim_port" "$work/sim.log" || die "kiro-sim did not start: $(cat "$work/sim.log")"
log "kiro-sim on the host at 127.0.0.1:$sim_port"

# The container gets its own network namespace (slirp4netns) with the gateway's 8080 published on
# 127.0.0.1:PORT; allow_host_loopback lets it reach the host's 127.0.0.1 as 10.0.2.2, where kiro-sim is.
gw_port=$(free_port)
key=image-test-key-$RANDOM$RANDOM
vol=$tag-data
podman volume create "$vol" >/dev/null
printf '[{"auth":"Social","refreshToken":"sim-ok-image","description":"image test"}]' >"$work/auth.json"
chmod 0644 "$work/auth.json"
gw=$tag-gw
containers+=("$gw")
# --health-interval=disable: no systemd here to time the checks; `podman healthcheck run` runs it below
if ! podman run -d --name "$gw" --health-interval=disable \
    --network slirp4netns:allow_host_loopback=true -p "127.0.0.1:$gw_port:8080" \
    -v "$vol:/data" -v "$work/auth.json:/run/secrets/kiro_auth_token:ro" \
    -e KIRO_CLIENT_TOKEN="$key" -e KIRO_AUTH_TOKEN=/run/secrets/kiro_auth_token \
    -e KIRO_API_BASE="http://10.0.2.2:$sim_port" \
    -e KIRO_SOCIAL_REFRESH_URL="http://10.0.2.2:$sim_port/refreshToken" \
    -e KIRO_IDC_REFRESH_URL="http://10.0.2.2:$sim_port/token" \
    -e KIRO_USAGE_POLL_INTERVAL_S=0 \
    "$image" >"$work/run.log" 2>&1; then
    cat "$work/run.log"
    die "podman run failed"
fi
log "gateway container $gw published on 127.0.0.1:$gw_port"

healthy=0
for _ in $(seq 100); do
    if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$gw_port/healthz"; then healthy=1; break; fi
    [ "$(podman inspect --format '{{.State.Running}}' "$gw" 2>/dev/null)" = true ] || break
    sleep 0.1
done
check "GET /healthz through the published port answers 200" test $healthy = 1
if [ $healthy = 0 ]; then
    podman logs "$gw" 2>&1 | tail -n 20
    die "the gateway did not come up"
fi
check "the image's HEALTHCHECK passes (podman healthcheck run)" podman healthcheck run "$gw"
check "the container's process runs as uid 10001" test "$(podman exec "$gw" id -u)" = 10001

curl -s --max-time 10 -H "x-api-key: $key" "http://127.0.0.1:$gw_port/v1/models" -o "$work/models.json" -w '%{http_code}' >"$work/models.code"
check "GET /v1/models lists claude-sonnet-4-5" bash -c 'test "$(cat "$1.code")" = 200 && grep -q "\"claude-sonnet-4-5" "$1.json"' _ "$work/models"
check "GET /v1/models without the key is refused (401)" \
    test "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$gw_port/v1/models")" = 401

curl -sN --max-time 20 -H "x-api-key: $key" -H 'content-type: application/json' \
    -d '{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello"}]}' \
    -D "$work/msg.headers" "http://127.0.0.1:$gw_port/v1/messages" >"$work/msg.sse" 2>"$work/msg.err"
check "POST /v1/messages streams text/event-stream" grep -qi '^content-type: text/event-stream' "$work/msg.headers"
if ! check "the SSE stream goes message_start .. message_stop with the sim's 'echo: hello'" sse_check "$work/msg.sse"; then
    head -c 600 "$work/msg.headers" "$work/msg.sse" | sed 's/^/    /'
    echo
fi

check "the container's user can read the mounted accounts file" \
    podman exec "$gw" test -r /run/secrets/kiro_auth_token
check "the gateway writes its state file in the /data volume" \
    bash -c 'for i in $(seq 10); do podman exec "$1" test -s /data/kiro2api-state.json && exit 0; sleep 0.1; done; exit 1' _ "$gw"

# SIGTERM as PID 1: the gateway stops promptly and cleanly
t0=$(date +%s)
podman stop -t 10 "$gw" >/dev/null 2>&1
stop_s=$(($(date +%s) - t0))
gw_exit=$(podman inspect --format '{{.State.ExitCode}}' "$gw")
if ! check "podman stop ends the gateway by SIGTERM (exit $gw_exit, ${stop_s}s)" test "$gw_exit" = 0 -a $stop_s -lt 10; then
    podman logs "$gw" 2>&1 | tail -n 15 | sed 's/^/    /'
fi
kill "$sim_pid" 2>/dev/null
wait "$sim_pid" 2>/dev/null
sim_pid=""

# ---------------------------------------------------------------------------------------------- compose
# docker-compose.yml with podman-compose: the kiro2api service (env_file .env, the accounts as a secret file,
# the /data volume) and the demo profile (kiro-sim + kiro2api-demo), all three at once, both gateways pointed
# at the demo's kiro-sim by service name (the compose network's DNS: the CNI dnsname plugin). podman-compose
# 1.0.3 (Debian 12) does not know profiles, so the services are named on the command line (as
# `docker compose --profile demo up kiro2api-demo` does).
compose() {
    (cd "$work/compose" && KIRO_IMAGE="$image" KIRO_PUBLISH="127.0.0.1:$main_port" KIRO_DEMO_PORT="$demo_port" \
        podman-compose -p "$tag" "$@")
}
compose_test() {
    local up name port k
    main_port=$(free_port)
    demo_port=$(free_port)
    mkdir -p "$work/compose/secrets"
    cp docker-compose.yml "$work/compose/"
    {
        echo "KIRO_CLIENT_TOKEN=$key"
        echo "KIRO_API_BASE=http://kiro-sim:8081"
        echo "KIRO_SOCIAL_REFRESH_URL=http://kiro-sim:8081/refreshToken"
        echo "KIRO_IDC_REFRESH_URL=http://kiro-sim:8081/token"
        echo "KIRO_USAGE_POLL_INTERVAL_S=0"
    } >"$work/compose/.env"
    printf '[{"auth":"Social","refreshToken":"sim-ok-compose","description":"compose test"}]' \
        >"$work/compose/secrets/kiro_auth_token.json"
    chmod 0644 "$work/compose/secrets/kiro_auth_token.json"
    touch "$work/compose-up"
    if ! compose up -d --no-build kiro-sim kiro2api kiro2api-demo >"$work/compose.log" 2>&1; then
        grep -v "level=error.*systemd" "$work/compose.log" | tail -n 30
        fail "podman-compose up"
        return
    fi
    for svc in "kiro2api:$main_port:$key" "kiro2api-demo:$demo_port:demo-key"; do
        IFS=: read -r name port k <<<"$svc"
        up=0
        for _ in $(seq 100); do
            curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" && { up=1; break; }
            sleep 0.1
        done
        check "compose $name: /healthz on 127.0.0.1:$port" test $up = 1
        curl -sN --max-time 20 -H "x-api-key: $k" \
            -d '{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello"}]}' \
            "http://127.0.0.1:$port/v1/messages" >"$work/$name.sse" 2>/dev/null
        check "compose $name: /v1/messages streams kiro-sim's 'echo: hello' (reached as http://kiro-sim:8081)" \
            sse_check "$work/$name.sse"
    done
    check "compose kiro2api: KIRO_AUTH_TOKEN is the secret's path, readable by uid 10001" \
        test "$(podman exec "${tag}_kiro2api_1" bash -c 'echo "$KIRO_AUTH_TOKEN"; head -c 20 /run/secrets/kiro_auth_token')" \
        = $'/run/secrets/kiro_auth_token\n[{"auth":"Social","r'
    check "compose kiro2api: the state volume is mounted at /data" \
        bash -c 'podman inspect --format "{{range .Mounts}}{{.Name}}={{.Destination}} {{end}}" "$1" | grep -q "$2_kiro2api-data=/data"' _ \
        "${tag}_kiro2api_1" "$tag"
    compose down -v >>"$work/compose.log" 2>&1
    rm -f "$work/compose-up"
}
if [ "${K2A_IMAGE_NO_COMPOSE:-0}" = 1 ]; then
    log "compose part skipped (K2A_IMAGE_NO_COMPOSE=1)"
elif command -v podman-compose >/dev/null; then
    compose_test
else
    log "podman-compose is missing: docker-compose.yml only checked as YAML"
    check "docker-compose.yml parses" python3 -c 'import sys, yaml; yaml.safe_load(open("docker-compose.yml"))'
fi

log "image-test: $passes passed, $fails failed (build ${build_s}s, total $(($(date +%s) - t_start))s)"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
