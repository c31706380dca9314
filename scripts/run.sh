#!/usr/bin/env bash
# `make run`: starts the gateway from build/. Without a Kiro account (KIRO_AUTH_TOKEN in the environment
# or in ./.env) it starts the bundled simulator on a loopback port first and points the gateway at it:
# a demo that works with no account and no network.
set -euo pipefail
cd "$(dirname "$0")/.."

from_dotenv() { [ -f .env ] && grep -E "^[[:space:]]*(export[[:space:]]+)?$1=" .env | tail -n1 | sed -E 's/^[^=]*=//' || true; }

auth=${KIRO_AUTH_TOKEN:-$(from_dotenv KIRO_AUTH_TOKEN)}
client=${KIRO_CLIENT_TOKEN:-$(from_dotenv KIRO_CLIENT_TOKEN)}
host=${KIRO_HOST:-$(from_dotenv KIRO_HOST)}

if [ -z "$client" ] && [ -z "$host" ]; then
    # no client key: serve this machine only
    export KIRO_HOST=127.0.0.1
    echo "kiro2api: KIRO_CLIENT_TOKEN is not set, so the gateway listens on 127.0.0.1 only (any local client may use it)."
fi

sim_pid=""
cleanup() { if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

if [ -z "$auth" ]; then
    if [ ! -x build/kiro-sim ]; then
        echo "kiro2api: no KIRO_AUTH_TOKEN and no build/kiro-sim to run a demo with" >&2
        exit 1
    fi
    # kiro-sim prints "kiro-sim listening on http://HOST:PORT" first; its output stays in a temporary log that is
    # shown if it does not start
    sim_log=$(mktemp)
    build/kiro-sim --host 127.0.0.1 --port 0 >"$sim_log" 2>&1 &
    sim_pid=$!
    sim_url=""
    for _ in $(seq 100); do
        sim_url=$(sed -nE 's/.*listening on (https?:\/\/[^ ]+).*/\1/p' "$sim_log" | head -n1)
        [ -n "$sim_url" ] && break
        kill -0 "$sim_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$sim_url" ]; then
        echo "kiro2api: the bundled simulator (build/kiro-sim) did not start:" >&2
        cat "$sim_log" >&2
        rm -f "$sim_log"
        exit 1
    fi
    rm -f "$sim_log"
    cat <<MSG
================================================================================
 DEMO MODE: no Kiro account is configured (KIRO_AUTH_TOKEN is unset), so kiro2api
 runs against the bundled Kiro simulator at $sim_url with a simulated account.
 Replies are canned ("echo: ..."). To use a real account, put it in ./.env:
   KIRO_AUTH_TOKEN='[{"auth":"Social","refreshToken":"<from ~/.aws/sso/cache/kiro-auth-token.json>"}]'
   KIRO_CLIENT_TOKEN=<a key your clients will send>
 then run \`make run\` again. See README.md.
================================================================================
MSG
    export KIRO_AUTH_TOKEN='[{"auth":"Social","refreshToken":"sim-ok-demo","description":"simulated demo account"}]'
    export KIRO_API_BASE="$sim_url"
    export KIRO_SOCIAL_REFRESH_URL="$sim_url/refreshToken"
    export KIRO_IDC_REFRESH_URL="$sim_url/token"
    export KIRO_STATE_FILE=${KIRO_STATE_FILE:-./data/demo-state.json}
fi

build/kiro2api "$@" &
gw_pid=$!
trap 'kill -TERM $gw_pid 2>/dev/null; wait $gw_pid; cleanup' INT TERM
wait $gw_pid
