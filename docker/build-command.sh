#!/usr/bin/env bash
# Print the command that builds this project's images with BuildKit (secrets, bind mounts),
# for the Makefile's DOCKER_BUILD:
#   1. `$DOCKER buildx build --load` when $DOCKER (default: docker) has the buildx plugin;
#   2. `DOCKER_BUILDKIT=1 $DOCKER build` when $DOCKER is older than 23 (BuildKit built in);
#      from Docker 23 on, `docker build` needs the buildx plugin for BuildKit;
#   3. else the first other docker client that passes 1 or 2 (Debian's docker.io 20.10
#      beside a docker-ce 28 without the plugin, say);
#   4. else one line on stderr, what is missing and how to fix it, and exit status 1.
# Usage: docker/build-command.sh
#   DOCKER=/path/to/docker    the client to try first (default: docker)
#   DOCKER_CANDIDATES="a b"   the other clients to try (default: every docker on PATH, then
#                             /usr/bin/docker and /usr/local/bin/docker)
set -euo pipefail

docker_client=${DOCKER:-docker}

# The command line for client $1, or nothing (status 1) when it cannot build with BuildKit.
builder_for() {
  local client=$1 version major
  if "$client" buildx version >/dev/null 2>&1; then
    echo "$client buildx build --load"
    return 0
  fi
  # "Docker version 20.10.24+dfsg1, build 297e128": asks the client only, not the engine
  version=$("$client" --version 2>/dev/null) || return 1
  major=$(sed -n 's/^Docker version \([0-9][0-9]*\)\..*/\1/p' <<<"$version")
  if [ -n "$major" ] && [ "$major" -lt 23 ]; then
    echo "DOCKER_BUILDKIT=1 $client build"
    return 0
  fi
  return 1
}

if ! command -v "$docker_client" >/dev/null 2>&1; then
  echo "docker/build-command.sh: no docker client ($docker_client): install Docker (docker-ce with docker-buildx-plugin, or Debian's docker.io), or set DOCKER=/path/to/docker" >&2
  exit 1
fi
if builder_for "$docker_client"; then
  exit 0
fi

first=$(readlink -f "$(command -v "$docker_client")")
seen=" $first "
while read -r other; do
  [ -n "$other" ] && [ -x "$other" ] || continue
  real=$(readlink -f "$other")
  case "$seen" in *" $real "*) continue ;; esac
  seen="$seen$real "
  if builder_for "$other"; then
    exit 0
  fi
done < <(
  if [ -n "${DOCKER_CANDIDATES+set}" ]; then
    tr -s ' ' '\n' <<<"$DOCKER_CANDIDATES"
  else
    type -ap docker || true
    printf '%s\n' /usr/bin/docker /usr/local/bin/docker
  fi
)

version=$("$docker_client" --version 2>/dev/null | sed -n 's/^Docker version \([^,]*\).*/\1/p')
echo "docker/build-command.sh: $docker_client ${version:+$version }has no buildx plugin, which Docker 23 and later need to build with BuildKit, and no other docker client here has BuildKit: install the plugin (Docker's docker-buildx-plugin package, Debian 13's or Ubuntu's docker-buildx), or set DOCKER_BUILD to a command that builds with BuildKit, e.g. DOCKER_BUILD='DOCKER_BUILDKIT=1 /path/to/docker build' with a client older than 23" >&2
exit 1
