#!/usr/bin/env bash
# Make the base image every Dockerfile here starts from (debian:bookworm-slim) without a
# registry: debootstrap a minimal Debian bookworm and `docker import` it under that name.
# Where the image can be pulled, pull it instead (PULL=1, the default) and nothing else
# changes. For air-gapped sites and for our CI, which reaches Debian's mirror but no registry.
#
# Usage: docker/base-image.sh [IMAGE] (default debian:bookworm-slim); needs root for debootstrap.
set -euo pipefail
IMAGE=${1:-debian:bookworm-slim}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: $IMAGE is already there"
  exit 0
fi
if [ "${PULL:-1}" = 1 ] && timeout 60 "$DOCKER" pull "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: pulled $IMAGE"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "base-image: debootstrap is missing: apt-get install -y debootstrap" >&2
  exit 1
fi
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap $SUITE from $MIRROR (about a minute)"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/dev/null
# Keep it slim like the official image: no package lists, caches or logs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*
tar -C "$rootfs" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "base-image: made $IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") bytes)"
