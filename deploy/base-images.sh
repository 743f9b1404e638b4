#!/usr/bin/env bash
# Builds the two base images deploy/Containerfile starts from, out of Debian's
# packages, for machines that reach Debian's mirror but no container registry:
#   localhost/ticketd-base:bookworm        the runtime stage (minbase: libc, passwd)
#   localhost/ticketd-build-base:bookworm  the build stage (+ gcc, libc6-dev, CA
#                                          certificates; the Rust toolchain is
#                                          mounted from the host at build time)
# With a registry, skip this: the Containerfile's defaults are the official
# rust and debian images (see deploy/README.md).
# Usage: deploy/base-images.sh [--force]   (podman; needs root for debootstrap)
set -euo pipefail
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
podman_() { podman --cgroup-manager=cgroupfs "$@"; }

make_base() { # NAME [debootstrap options...]; image settings in the CHANGES array
  local name="$1"; shift
  if [ "${FORCE:-}" != 1 ] && podman_ image exists "$name"; then
    echo "$name exists"; return
  fi
  local dir; dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' RETURN
  echo "debootstrap $SUITE → $name"
  nice -n 15 debootstrap --variant=minbase "$@" "$SUITE" "$dir" "$MIRROR" >/dev/null
  # No package caches or lists in the image.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  if [ "${TRIM:-}" = 1 ]; then
    # What debian:bookworm-slim leaves out too: documentation, manuals, translations.
    rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
      "$dir"/usr/share/locale/* "$dir"/var/cache/debconf/*-old "$dir"/var/log/*.log
  fi
  tar -C "$dir" -c . | podman_ import --change 'CMD ["/bin/bash"]' "${CHANGES[@]/#/--change=}" - "$name" >/dev/null
}

[ "${1:-}" = --force ] && FORCE=1
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CHANGES=("ENV PATH=$BASE_PATH")
TRIM=1 make_base localhost/ticketd-base:bookworm
# Where the official rust image keeps cargo, and where the smoke test mounts
# the host's toolchain (read-only) with `podman build -v`.
# (One ENV per --change: podman import reads "ENV A=1 B=2" as A="1 B=2".)
CHANGES=("ENV PATH=/usr/local/rust-toolchain/bin:/usr/local/cargo/bin:$BASE_PATH" "ENV CARGO_HOME=/usr/local/cargo")
make_base localhost/ticketd-build-base:bookworm --include=gcc,libc6-dev,ca-certificates
