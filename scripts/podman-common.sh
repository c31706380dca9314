# Sourced by the podman tests (scripts/image-test.sh, scripts/fresh-machine-test.sh): the containers.conf this machine
# needs (podman_conf), the local debian:bookworm / bookworm-slim base images, made with debootstrap from the mirror
# apt already uses and kept in podman's storage (base_images; later runs reuse them), a free loopback port
# (free_port) and the check of a streamed /v1/messages answer (sse_check). The caller defines $work (a scratch
# directory), log and die.
base_full=localhost/debian:bookworm
base_slim=localhost/debian:bookworm-slim

podman_conf() {
    # This machine: crun refuses its cgroup layout (runc works), and containers may not raise rlimits above the
    # host's, so the defaults are set to what is allowed.
    cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$work/containers.conf"
}

# The Debian mirror apt uses here: the first deb-type URI of a bookworm suite in the apt sources.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN{RS=""; FS="\n"} /Types:[^\n]*deb([ \n]|$)/ && /Suites:[^\n]*bookworm([ \n]|$)/ {
                 for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit } }' "$f"
    done
    grep -hE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^ ]+[[:space:]]+bookworm[[:space:]]' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
        awk '{print $1}'
}

make_base() {
    local mirror rootfs=$work/rootfs
    mirror=$(debian_mirror | head -n1)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    command -v debootstrap >/dev/null || die "debootstrap is missing"
    log "making the base images: debootstrap --variant=minbase bookworm from $mirror"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log"
        die "debootstrap failed"
    fi
    # apt inside the image uses the same sources and the same Acquire settings as this machine's apt.
    if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
        rm -f "$rootfs/etc/apt/sources.list"
        for f in /etc/apt/sources.list.d/*.sources; do
            # deb-src stanzas are dropped: the image never builds from Debian sources
            awk 'BEGIN{RS=""; ORS="\n\n"} !/Types:[^\n]*deb-src/ || /Types:[^\n]*deb([ \n]|$)/' "$f" \
                >"$rootfs/etc/apt/sources.list.d/$(basename "$f")"
        done
    fi
    apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' \
        >"$rootfs/etc/apt/apt.conf.d/90image-test" || rm -f "$rootfs/etc/apt/apt.conf.d/90image-test"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    tar -C "$rootfs" -c . | podman import -q --change 'CMD ["bash"]' - "$base_full" >/dev/null || die "podman import failed"
    # bookworm-slim: like Debian's official one, without documentation, manuals and translations
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* \
        "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/locale/*
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
    tar -C "$rootfs" -c . | podman import -q --change 'CMD ["bash"]' - "$base_slim" >/dev/null || die "podman import failed"
    rm -rf "$rootfs"
}

# base_images: make sure both base images exist (debootstrap on the first run, about a minute).
base_images() {
    if podman image exists "$base_full" && podman image exists "$base_slim"; then
        log "base images cached ($base_full, $base_slim)"
    else
        make_base
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# sse_check FILE: the SSE body of a streamed /v1/messages for "hello" goes message_start .. message_stop with kiro-sim's
# canned 'echo: hello' as its text
sse_check() {
    python3 - "$1" <<'PY'
import json, sys
events, data, text = [], {}, ""
cur = None
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\r\n")
    if line.startswith("event:"):
        cur = line[6:].strip()
    elif line.startswith("data:") and cur:
        d = json.loads(line[5:])
        events.append(cur)
        if cur == "content_block_delta" and d.get("delta", {}).get("type") == "text_delta":
            text += d["delta"]["text"]
names = [e for e in events if e != "ping"]
ok = (names[:1] == ["message_start"] and names[-1:] == ["message_stop"]
      and "content_block_start" in names and "message_delta" in names and text == "echo: hello")
print("    events:", " ".join(names)[:300], "| text:", repr(text))
sys.exit(0 if ok else 1)
PY
}
