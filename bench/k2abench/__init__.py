"""kiro2api's end-to-end benchmark harness, the modules behind bench/harness.py."""
