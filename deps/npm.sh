#!/usr/bin/env bash
# Installs the npm test clients (official Anthropic and OpenAI SDKs, the Claude Code and Codex CLIs) into
# tests/clients/node_modules from the lock file, unless they are already there.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
if [ -x node_modules/.bin/claude ] && [ -x node_modules/.bin/codex ] && [ -d node_modules/@anthropic-ai/sdk ] && [ -d node_modules/openai ] &&
    [ node_modules/.package-lock.json -nt package-lock.json ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "deps: npm is missing (deps/install.sh test installs it)" >&2
    exit 1
fi
echo "deps: installing test clients with npm ci (about 880 MB, mostly the Claude Code and Codex binaries)" >&2
npm ci --no-audit --no-fund --loglevel=error
