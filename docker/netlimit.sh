#!/bin/sh
# Limit, or free, the rate at which containers send: what a slower network between Spark
# workers does to an epoch (`make mini-netlimit RATE=200mbit`, then `make bench-local`).
#
#   docker/netlimit.sh RATE CONTAINER...    RATE: 1gbit, 200mbit, 50mbit, 500kbit… or off
#
# A tbf qdisc on every interface but loopback of each container, set by tc inside the
# container's network namespace, entered from the host with nsenter: the containers keep no
# capabilities (no NET_ADMIN, never privileged). Egress only, which limits both directions
# of a ring all-reduce when every worker is limited. The bucket holds 5 ms at the rate (at
# least 16 kB): a burst cannot carry a gradient past the limit. Needs root on the host, tc
# (iproute2) and nsenter (util-linux); the kernel needs sch_tbf (netem is not needed).
set -eu

usage() {
  echo "usage: $0 RATE CONTAINER...  (RATE: e.g. 1gbit, 200mbit, 50mbit, or off)" >&2
  exit 2
}
[ "$#" -ge 2 ] || usage
rate=$1
shift
DOCKER=${DOCKER:-docker}

if [ "$rate" = off ]; then
  burst=
else
  # bits per second of a tc rate; the bucket in bytes
  bits=$(echo "$rate" | awk '
    match($0, /^[0-9]+(\.[0-9]+)?/) {
      n = substr($0, 1, RLENGTH); unit = substr($0, RLENGTH + 1)
      if (unit == "kbit") f = 1e3; else if (unit == "mbit") f = 1e6
      else if (unit == "gbit") f = 1e9; else exit
      printf "%.0f", n * f
    }')
  [ -n "$bits" ] && [ "$bits" -gt 0 ] || {
    echo "$0: RATE $rate: expected a number with kbit, mbit or gbit (e.g. 200mbit), or off" >&2
    exit 2
  }
  burst=$(awk -v b="$bits" 'BEGIN { x = b / 8 * 0.005; if (x < 16384) x = 16384; printf "%.0f", x }')
fi

for container in "$@"; do
  pid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$container")
  if [ "$pid" -le 0 ]; then
    echo "$0: $container is not running" >&2
    exit 1
  fi
  links=$(nsenter -t "$pid" -n ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); if ($2 != "lo") print $2 }')
  for dev in $links; do
    if [ -z "$burst" ]; then
      # back to the default qdisc; nothing to delete is not an error
      nsenter -t "$pid" -n tc qdisc del dev "$dev" root 2>/dev/null || true
      echo "$container $dev: no limit"
    else
      nsenter -t "$pid" -n tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
      echo "$container $dev: $rate (burst $burst bytes)"
    fi
  done
done
