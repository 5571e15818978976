#!/bin/bash
# The test cloud with a data plane: libvirt first (nova-compute connects to it at start), then
# the control plane of ../start.sh, then what needs its bridges: the external network's gateway
# address, the L3 and DHCP agents and the guests' proxy. Exits when any of them dies.
set -euo pipefail

VMS=/usr/local/share/higgsbench-openstack/vms
LOGS=/var/log/higgsbench-openstack
EXTERNAL_GATEWAY=${EXTERNAL_GATEWAY:-198.18.0.1/24}
NEUTRON=(--config-file /etc/neutron/neutron.conf)
PIDS=()

say() { echo "start-vms.sh: $*"; }

start() {  # start NAME COMMAND…: in the background, output to $LOGS/NAME.log
  local name=$1
  shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=("$!")
}

wait_for() {  # wait_for WHAT SECONDS COMMAND…
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "$what did not come up in $seconds s"
  return 1
}

install -d "$LOGS"
# the L3 agent sets sysctls inside its routers' namespaces; the container may forward
mount -o remount,rw,bind /proc/sys
sysctl -qw net.ipv4.ip_forward=1

start virtlogd virtlogd
start libvirtd libvirtd
wait_for libvirtd 60 virsh -c qemu:///system version

/usr/local/bin/start.sh &
PIDS+=("$!")
trap 'kill "${PIDS[@]}" 2>/dev/null; wait; exit 0' TERM INT

# start.sh makes br-ext, the flat "external" physnet: its gateway address makes this
# container the external network's router, to the host and to the proxy
wait_for br-ext 120 ip link show br-ext
ip addr add "$EXTERNAL_GATEWAY" dev br-ext
# The guests reach the world from its address, for what leaves by the uplink only (bridged
# traffic passes these rules too, and packets to a floating IP must keep their source)
uplink=$(ip -4 route show default | awk '{print $5; exit}')
iptables -t nat -A POSTROUTING -s "${EXTERNAL_GATEWAY%.*}.0/24" -o "$uplink" -j MASQUERADE
# and what the host sends to the floating IPs arrives from the gateway: the host's own address
# is in 172.17.0.0/16, which Docker's default bridge on the guests claims (their replies would
# stay inside the guest), as an admin network behind a NAT does
iptables -t nat -A POSTROUTING ! -s "${EXTERNAL_GATEWAY%.*}.0/24" -o br-ext -j MASQUERADE

start tinyproxy tinyproxy -d -c "$VMS/tinyproxy.conf"
start neutron-l3-agent neutron-l3-agent "${NEUTRON[@]}" --config-file "$VMS/l3_agent.ini"
start neutron-dhcp-agent neutron-dhcp-agent "${NEUTRON[@]}" --config-file "$VMS/dhcp_agent.ini"
say "libvirt, L3 and DHCP agents, proxy on ${EXTERNAL_GATEWAY%/*}:8888 started"

wait -n "${PIDS[@]}" || true
say "a service exited"
tail -n 30 "$LOGS"/*.log
exit 1
