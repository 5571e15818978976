#!/usr/bin/env bash
# Wheels for the images' Python and platform, whatever Python and OS this machine has (Ubuntu
# 24.04's 3.12, Debian 13's 3.13, Fedora, macOS): `pip wheel` would pick this machine's, and
# the image's pip would refuse them.
#
#   docker/wheelhouse.sh OUT_DIR PIP_ARGUMENTS…      (the Makefile's wheelhouse rules)
#
# PIP_ARGUMENTS are what to resolve, as pip takes them (-c constraints.txt app.whl[spark],
# -r requirements.txt, --extra-index-url …). Environment:
#   PIP           the pip to run (any recent pip; the project's venv's)
#   DOCKER        the Docker client: its engine's architecture is the images' (amd64, arm64)
#   IMAGE_PYTHON  the images' CPython (3.11: Debian bookworm's, docker/Dockerfile's python-base)
#   IMAGE_GLIBC   the images' glibc (2.36: bookworm's); manylinux wheels up to it fit
#   SDIST_ONLY    names of pure-Python packages PyPI has only as sources (pyspark): built here
#                 into wheels first, which fit any Python; SDIST_PINS the file that pins them
set -euo pipefail

out=${1:?usage: docker/wheelhouse.sh OUT_DIR PIP_ARGUMENTS…}
shift
: "${PIP:?set PIP to a pip}" "${DOCKER:=docker}" "${IMAGE_PYTHON:=3.11}" "${IMAGE_GLIBC:=2.36}"

arch=$("$DOCKER" version --format '{{.Server.Arch}}') || {
  echo "wheelhouse.sh: no answer from the Docker engine ($DOCKER version)," \
    "whose architecture the images' wheels are for" >&2
  exit 1
}
case "$arch" in
  amd64) machine=x86_64 ;;
  arm64) machine=aarch64 ;;
  *)
    echo "wheelhouse.sh: Docker engine architecture $arch: the images are for amd64 or arm64" >&2
    exit 2
    ;;
esac

# manylinux_2_17 … _2_<IMAGE_GLIBC> and manylinux2014: pip takes each platform tag literally
platforms=()
for ((minor = ${IMAGE_GLIBC#2.}; minor >= 17; minor--)); do
  platforms+=(--platform "manylinux_2_${minor}_${machine}")
done
platforms+=(--platform "manylinux2014_${machine}")

mkdir -p "$out"
for name in ${SDIST_ONLY:-}; do
  "$PIP" wheel --quiet --no-deps ${SDIST_PINS:+-c "$SDIST_PINS"} --wheel-dir "$out" "$name"
  for wheel in "$out/${name//-/_}"-*.whl; do
    case "$wheel" in
      *-none-any.whl) ;;
      *)
        echo "wheelhouse.sh: $wheel is not pure Python: it fits this machine, not the images" >&2
        exit 1
        ;;
    esac
  done
done
"$PIP" download --quiet --only-binary=:all: --dest "$out" --find-links "$out" \
  --python-version "$IMAGE_PYTHON" --implementation cp --abi "cp${IMAGE_PYTHON//./}" \
  "${platforms[@]}" "$@"
count=$(find "$out" -maxdepth 1 -name '*.whl' | wc -l)
echo "wheelhouse.sh: $count wheels in $out for CPython $IMAGE_PYTHON, linux/$arch, glibc $IMAGE_GLIBC"
