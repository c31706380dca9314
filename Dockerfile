# Placeholder: the multi-stage image (bookworm build, bookworm-slim runtime, non-root, /data volume)
# arrives with the benchmark/container issue.
FROM debian:bookworm
