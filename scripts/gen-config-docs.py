#!/usr/bin/env python3
"""Regenerates the configuration table in README.md and conf/kiro2api.env.example from `kiro2api --help`
(the one table in src/core/config.c). Usage: scripts/gen-config-docs.py [path/to/kiro2api]"""
import re
import subprocess
import sys

binary = sys.argv[1] if len(sys.argv) > 1 else "build/kiro2api"
out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
rows = []
for line in out.split("Variables:", 1)[1].splitlines():
    m = re.match(r"\s+(\S+)\s+(.*) \(default: (.*)\)\s*$", line)
    if m:
        rows.append(m.groups())

table = ["| variable | default | meaning |", "|---|---|---|"]
table += ["| `%s` | `%s` | %s |" % (n, d, h) for n, h, d in rows]
readme = open("README.md").read()
start = readme.index("| variable | default | meaning |")
end = readme.index("\n\n", start)
open("README.md", "w").write(readme[:start] + "\n".join(table) + readme[end:])

ex = ["# kiro2api configuration example. Copy to .env (or pass with --config FILE) and edit.",
      "# Priority, lowest first: defaults, ./.env, --config FILE, the environment.",
      "# Only KIRO_AUTH_TOKEN and KIRO_CLIENT_TOKEN are needed for a real deployment.", ""]
for n, h, d in rows:
    ex.append("# " + h)
    if n == "KIRO_AUTH_TOKEN":
        ex.append("KIRO_AUTH_TOKEN='[{\"auth\":\"Social\",\"refreshToken\":\"aorAAAAAG...\",\"description\":\"main\"}]'")
    elif n == "KIRO_CLIENT_TOKEN":
        ex.append("KIRO_CLIENT_TOKEN=change-me-to-a-long-random-key")
    else:
        ex.append("#%s=%s" % (n, "" if d == "unset" else d))
    ex.append("")
open("conf/kiro2api.env.example", "w").write("\n".join(ex))
print("%d variables" % len(rows))
