# kiro2api container image, multi-stage. build-deps + build: Debian 12 with the packages of deps/install.sh
# (build set), a release CMake build of the two binaries without tests or benchmarks. runtime-base + final:
# bookworm-slim with only the shared libraries the binaries link against and ca-certificates, the binaries
# in /usr/local/bin, the dashboard in /app/assets; it runs as an unprivileged user (uid 10001) and keeps its
# state (rotated refresh tokens, access tokens) in the /data volume. The package layers are stages of their
# own so that they can be built and cached apart from the sources (scripts/image-test.sh does).
#   docker build -t kiro2api .      (podman build --format docker -t kiro2api .; `make image-test` runs it)
# The same image runs the Kiro simulator too: `docker run --rm kiro2api kiro-sim --host 0.0.0.0 --port 8081`.

FROM debian:bookworm AS build-deps
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc make cmake pkg-config libh2o-dev libuv1-dev libyajl-dev libssl-dev libc-ares-dev zlib1g-dev libhiredis-dev \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

FROM build-deps AS build
WORKDIR /src
COPY CMakeLists.txt ./
COPY src ./src
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DK2A_TESTS=OFF \
    && cmake --build build -j"$(nproc)" \
    && strip --strip-unneeded build/kiro2api build/kiro-sim

FROM debian:bookworm-slim AS runtime-base
# Runtime libraries only (libh2o0.13 brings libwslay1); the loop below fails the build if either binary
# still misses a shared library.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libh2o0.13 libuv1 libyajl2 libssl3 libc-ares2 zlib1g libhiredis0.14 ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && groupadd --gid 10001 kiro \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin kiro \
    && mkdir -p /app /data && chown 10001:10001 /data && chmod 0700 /data

FROM runtime-base
COPY --from=build /src/build/kiro2api /src/build/kiro-sim /usr/local/bin/
RUN for b in kiro2api kiro-sim; do \
        if ldd /usr/local/bin/$b | grep 'not found'; then echo "$b: missing shared library" >&2; exit 1; fi; \
    done
COPY assets /app/assets
WORKDIR /app
ENV KIRO_HOST=0.0.0.0 \
    PORT=8080 \
    KIRO_STATIC_DIR=/app/assets \
    KIRO_STATE_FILE=/data/kiro2api-state.json
VOLUME /data
USER 10001:10001
EXPOSE 8080
# No curl in the image: bash's /dev/tcp sends GET /healthz and the status line must say 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 proto status rest <&3 && [ \"$status\" = 200 ]"]
CMD ["kiro2api"]
