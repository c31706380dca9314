#!/usr/bin/env bash
# `make image-test`: builds the container image with podman (no Docker engine, no registry) and runs it for
# real. The debian:bookworm / bookworm-slim base images are made locally with debootstrap from the mirror
# apt already uses (scripts/podman-common.sh), and kept in podman's storage with the Dockerfile's two package
# stages (later runs skip those steps). The test builds the Dockerfile, checks the runtime image (no compiler, non-root, assets, the
# /data volume), runs kiro-sim on the host (127.0.0.1) and the gateway in a container that reaches it, waits
# for /healthz, runs the image's HEALTHCHECK, checks /v1/models, streams a /v1/messages request, stops the
# container with SIGTERM, then runs docker-compose.yml (gateway with .env + secret + volume, and the demo
# profile) with podman-compose, then the ha profile (redis, two replicas, nginx in front; Redis and nginx from two small
# images built locally from bookworm-slim with Debian's redis-server and nginx-light, cached too) against the demo's
# kiro-sim: streams through nginx, both replicas served, one refresh per account between them, Redis stopped and
# started again. Everything it creates is removed on exit except those cached images.
# Traffic stays on this machine (loopback, and the container networks podman makes: slirp4netns's 10.0.2.2
# is the host's loopback, the compose networks private bridges), except apt's during the package stages and the
# redis and nginx images' builds.
#   K2A_IMAGE_KEEP=1        keep the built image (localhost/kiro2api:test) and its layers afterwards
#   K2A_IMAGE_NO_COMPOSE=1  skip the compose part
#   K2A_IMAGE_FRESH=1       drop the cached base, package-stage, redis and nginx images first (a cold run)
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
ha_port=""
sim_c=""

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
    if [ -f "$work/compose-ha-up" ]; then
        compose_ha down -v >/dev/null 2>&1
    fi
    for c in "${containers[@]}"; do podman rm -f -v -t 2 "$c" >/dev/null 2>&1; done
    for p in "$tag" "$tag-ha"; do
        podman ps -a -q --filter "label=io.podman.compose.project=$p" | xargs -r podman rm -f -v >/dev/null 2>&1
        podman network ls -q --filter "label=io.podman.compose.project=$p" | xargs -r podman network rm -f >/dev/null 2>&1
    done
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
    podman rmi -f localhost/kiro2api-cache:build-deps localhost/kiro2api-cache:runtime-base localhost/k2a-redis:test \
        localhost/k2a-nginx:test "$base_full" "$base_slim" \
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

# The ha profile's Redis and nginx: Docker Hub's images cannot be pulled here, so two small local images are made from
# the same bookworm-slim base with Debian's redis-server and nginx-light, cached like the package stages (the
# Dockerfiles are below; a change makes new images and drops the old ones). policy-rc.d keeps the packages' scripts
# from starting the daemons in the build container (it shares the host's network).
aux_image() { # aux_image TAG: builds TAG from the Dockerfile on stdin (ARG BASE: the local bookworm-slim)
    local tag=$1 old_id new_id t0 name=${1##*/}
    name=${name%%:*}
    mkdir -p "$work/ctx-$name"
    cat >"$work/ctx-$name/Dockerfile"
    old_id=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    t0=$(date +%s)
    if ! podman build "${build_args[@]}" --build-arg "BASE=$base_slim" -t "$tag" -f "$work/ctx-$name/Dockerfile" \
        "$work/ctx-$name" >"$work/build-$name.log" 2>&1; then
        tail -n 40 "$work/build-$name.log"
        die "podman build $tag failed"
    fi
    new_id=$(podman image inspect --format '{{.Id}}' "$tag")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
    log "image $tag: $([ "$old_id" = "$new_id" ] && echo cached || echo "built in $(($(date +%s) - t0))s"), \
$(($(podman image inspect --format '{{.Size}}' "$tag") / 1000000)) MB"
}
redis_image=localhost/k2a-redis:test
nginx_image=localhost/k2a-nginx:test
if [ "${K2A_IMAGE_NO_COMPOSE:-0}" != 1 ] && command -v podman-compose >/dev/null; then
    # Like Docker Hub's image: `redis-server ARGS` runs with protected mode off (the replicas reach it over the
    # compose network, not loopback), as the redis user, in /data.
    aux_image "$redis_image" <<'EOF'
ARG BASE
FROM ${BASE}
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /usr/sbin/policy-rc.d \
 && mkdir -p /data && chown redis:redis /data \
 && printf '#!/bin/sh\nif [ "$1" = redis-server ]; then shift; exec redis-server "$@" --protected-mode no; fi\nexec "$@"\n' \
    >/usr/local/bin/redis-entry && chmod 0755 /usr/local/bin/redis-entry
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entry"]
CMD ["redis-server"]
EOF
    # nginx in the foreground, its logs on the container's output
    aux_image "$nginx_image" <<'EOF'
ARG BASE
FROM ${BASE}
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /usr/sbin/policy-rc.d \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
fi

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

# The ha profile: redis, kiro2api-a, kiro2api-b and kiro2api-lb (nginx with conf/ha-nginx.conf) from docker-compose.yml
# as it is, REDIS_IMAGE / NGINX_IMAGE naming the local images, plus the demo profile's kiro-sim; the replicas reach it
# through the same .env settings as the compose part above. Two rotating Social accounts (kiro-sim refuses a used
# refresh token), so a second refresh of the same token would show in kiro-sim's stats as a failure.
compose_ha() {
    (cd "$work/compose-ha" && KIRO_IMAGE="$image" REDIS_IMAGE="$redis_image" NGINX_IMAGE="$nginx_image" \
        KIRO_HA_PUBLISH="127.0.0.1:$ha_port" podman-compose -p "$tag-ha" "$@")
}
# ctr_get CONTAINER PORT PATH [KEY]: GET http://127.0.0.1:PORT/PATH inside the container (bash's /dev/tcp: no curl
# in the image), the answer's body on stdout; fails unless the status is 200
ctr_get() {
    local req resp
    printf -v req 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n' "$3" "${4:+x-api-key: $4$'\r\n'}"
    resp=$(podman exec "$1" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "$2" "$req" 2>/dev/null) ||
        return 1
    case ${resp%%$'\r'*} in "HTTP/1."?" 200"*) ;; *) return 1 ;; esac
    printf '%s\n' "${resp#*$'\r\n\r\n'}"
}
replica_ready() { # replica_ready CONTAINER: the image's HEALTHCHECK passes and /readyz answers 200
    podman healthcheck run "$1" >/dev/null 2>&1 && wait_for 20 ctr_get "$1" 8080 /readyz >/dev/null
}
# wait_for SECONDS command...: true as soon as the command succeeds
wait_for() {
    local n=$(($1 * 5)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
    return 1
}
ha_stream() { # ha_stream FILE TEXT: a streamed /v1/messages through the nginx front
    curl -sN --max-time 20 -H "x-api-key: $key" \
        -d '{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"'"$2"'"}]}' \
        "http://127.0.0.1:$ha_port/v1/messages" >"$1" 2>/dev/null
}
ha_requests() { # ha_requests N: N streamed requests through the front; true when every one is served in full
    local good=0
    for _ in $(seq "$1"); do
        ha_stream "$work/ha.sse" hello && sse_check "$work/ha.sse" >/dev/null && good=$((good + 1))
    done
    log "    $good of $1 streamed requests served through nginx"
    test "$good" = "$1"
}
sim_stats() { ctr_get "$sim_c" 8081 /sim/stats >"$work/sim-stats.json"; }
sim_refreshed() { # each account refreshed at least once
    sim_stats && python3 - "$work/sim-stats.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["accounts"]
sys.exit(0 if all(a.get(n, {}).get("refreshes", 0) >= 1 for n in ("sim-rotate-ha1", "sim-rotate-ha2")) else 1)
PY
}
one_refresh_each() { # exactly one refresh per account, none refused, each rotated once
    sim_stats && python3 - "$work/sim-stats.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["accounts"]
got = {n: (a.get(n, {}).get("refreshes"), a.get(n, {}).get("refresh_failures"), a.get(n, {}).get("rotation"))
       for n in ("sim-rotate-ha1", "sim-rotate-ha2")}
print("    kiro-sim (refreshes, refused, rotation):", got)
sys.exit(0 if all(v == (1, 0, 1) for v in got.values()) else 1)
PY
}
replica_served() { # replica_served CONTAINER: its /metrics counts streamed /v1/messages answered 200
    local n
    n=$(ctr_get "$1" 8080 /metrics "$key" | awk '/^k2a_http_requests_total\{route="messages",status="200"\}/ {print $2}')
    log "    $1: ${n:-0} /v1/messages answered 200"
    [ "${n:-0}" -gt 0 ]
}
readyz_is() { # readyz_is WANT CONTAINER...: every replica's /readyz says it (ok: ready without a note; down: the note)
    local want=$1 c body; shift
    for c in "$@"; do
        body=$(ctr_get "$c" 8080 /readyz) || return 1
        case $want in
        ok) [ "$body" = '{"status":"ready"}' ] || return 1 ;;
        down) [ "$body" = '{"status":"ready","shared_store":"shared store unavailable"}' ] || return 1 ;;
        esac
    done
}
compose_ha_test() {
    local a=$tag-ha_kiro2api-a_1 b=$tag-ha_kiro2api-b_1 redis_c=$tag-ha_redis_1 up c
    sim_c=$tag-ha_kiro-sim_1
    ha_port=$(free_port)
    mkdir -p "$work/compose-ha/secrets" "$work/compose-ha/conf"
    cp docker-compose.yml "$work/compose-ha/"
    cp conf/ha-nginx.conf "$work/compose-ha/conf/"
    cp "$work/compose/.env" "$work/compose-ha/.env"
    printf '[{"auth":"Social","refreshToken":"sim-rotate-ha1"},{"auth":"Social","refreshToken":"sim-rotate-ha2"}]' \
        >"$work/compose-ha/secrets/kiro_auth_token.json"
    chmod 0644 "$work/compose-ha/secrets/kiro_auth_token.json"
    touch "$work/compose-ha-up"
    if ! compose_ha up -d --no-build kiro-sim redis kiro2api-a kiro2api-b kiro2api-lb >"$work/compose-ha.log" 2>&1; then
        grep -v "level=error.*systemd" "$work/compose-ha.log" | tail -n 30
        fail "podman-compose up (ha profile)"
        return
    fi
    log "ha profile up: nginx front on 127.0.0.1:$ha_port"
    up=0
    wait_for 30 curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ha_port/healthz" && up=1
    check "ha: /healthz through the nginx front" test $up = 1
    for c in "$a" "$b"; do
        check "ha: $c is healthy (the image's HEALTHCHECK) and ready (/readyz 200)" replica_ready "$c"
    done
    if [ $up = 0 ]; then
        for c in "$redis_c" "$a" "$b" "$tag-ha_kiro2api-lb_1"; do podman logs "$c" 2>&1 | tail -n 8 | sed "s/^/    $c: /"; done
        compose_ha down -v >>"$work/compose-ha.log" 2>&1
        rm -f "$work/compose-ha-up"
        return
    fi
    wait_for 20 sim_refreshed
    ha_stream "$work/ha-first.sse" hello
    check "ha: a streamed /v1/messages through nginx is served" sse_check "$work/ha-first.sse"
    check "ha: 20 more streamed requests through nginx are served" ha_requests 20
    for c in "$a" "$b"; do check "ha: $c received traffic (its /metrics)" replica_served "$c"; done
    check "ha: exactly one refresh per account across the two replicas (kiro-sim's stats)" one_refresh_each
    check "ha: /readyz of both replicas is ready with no \"shared store unavailable\"" readyz_is ok "$a" "$b"

    podman stop -t 5 "$redis_c" >/dev/null 2>&1
    log "ha: redis stopped"
    check "ha: with redis stopped, both replicas' /readyz say \"shared store unavailable\"" wait_for 15 readyz_is down "$a" "$b"
    check "ha: with redis stopped, 10 streamed requests through nginx are served" ha_requests 10
    podman start "$redis_c" >/dev/null 2>&1
    log "ha: redis started again"
    check "ha: redis back: the note leaves both replicas' /readyz" wait_for 20 readyz_is ok "$a" "$b"
    check "ha: redis back: 10 streamed requests through nginx are served" ha_requests 10
    check "ha: still one refresh per account (no refresh token used twice)" one_refresh_each
    compose_ha down -v >>"$work/compose-ha.log" 2>&1
    rm -f "$work/compose-ha-up"
}
if [ "${K2A_IMAGE_NO_COMPOSE:-0}" = 1 ]; then
    log "compose part skipped (K2A_IMAGE_NO_COMPOSE=1)"
elif command -v podman-compose >/dev/null; then
    compose_test
    compose_ha_test
else
    log "podman-compose is missing: docker-compose.yml only checked as YAML"
    check "docker-compose.yml parses" python3 -c 'import sys, yaml; yaml.safe_load(open("docker-compose.yml"))'
fi

log "image-test: $passes passed, $fails failed (build ${build_s}s, total $(($(date +%s) - t_start))s)"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
