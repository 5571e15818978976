#!/bin/bash
# The test control plane: MariaDB, RabbitMQ, Keystone, Glance, Placement, Nova (fake virt
# driver) and Neutron (ML2 + Linux bridge agent) in one container. There is no systemd, so this
# script starts each service itself. tests/test_openstack.py runs the image; see its docstring.
#
#   start.sh setup    at image build: databases, schemas, Keystone's catalog (default ports)
#   start.sh          at container start: point the configuration and the catalog at the ports
#                     given in the environment, start every service, exit when one dies
#
# Ports (environment): KEYSTONE_PORT GLANCE_PORT PLACEMENT_PORT NOVA_PORT NEUTRON_PORT. The
# harness publishes each on 127.0.0.1 under the same number, so the catalog's URLs
# (http://127.0.0.1:PORT) are right both inside the container and on the host.
set -euo pipefail

KEYSTONE_PORT=${KEYSTONE_PORT:-5000}
GLANCE_PORT=${GLANCE_PORT:-9292}
PLACEMENT_PORT=${PLACEMENT_PORT:-8778}
NOVA_PORT=${NOVA_PORT:-8774}
NEUTRON_PORT=${NEUTRON_PORT:-9696}
# Every service's and the admin's password: a throwaway cloud on loopback, nothing to protect.
PASSWORD=secret
TEMPLATES=/usr/local/share/higgsbench-openstack
LOGS=/var/log/higgsbench-openstack
NEUTRON_SERVER=(--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini)
NEUTRON_AGENT=(--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/linuxbridge_agent.ini)
PIDS=()

say() { echo "start.sh: $*"; }

render() {
  local ip
  ip=$(hostname -i | awk '{print $1}')
  local -A dest=(
    [keystone.conf]=/etc/keystone/keystone.conf
    [glance-api.conf]=/etc/glance/glance-api.conf
    [placement.conf]=/etc/placement/placement.conf
    [nova.conf]=/etc/nova/nova.conf
    [neutron.conf]=/etc/neutron/neutron.conf
    [ml2_conf.ini]=/etc/neutron/plugins/ml2/ml2_conf.ini
    [linuxbridge_agent.ini]=/etc/neutron/plugins/ml2/linuxbridge_agent.ini
  )
  for name in "${!dest[@]}"; do
    sed -e "s/@PASSWORD@/$PASSWORD/g" -e "s/@LOCAL_IP@/$ip/g" \
      -e "s/@KEYSTONE_PORT@/$KEYSTONE_PORT/g" -e "s/@GLANCE_PORT@/$GLANCE_PORT/g" \
      -e "s/@PLACEMENT_PORT@/$PLACEMENT_PORT/g" -e "s/@NOVA_PORT@/$NOVA_PORT/g" \
      -e "s/@NEUTRON_PORT@/$NEUTRON_PORT/g" "$TEMPLATES/$name" > "${dest[$name]}"
  done
}

# start NAME COMMAND…: in the background, output to $LOGS/NAME.log
start() {
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
  tail -n 50 "$LOGS"/*.log >&2 || true
  return 1
}

mariadb_start() {
  install -d -o mysql -g mysql /run/mysqld
  start mariadb /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1
  wait_for MariaDB 60 mariadb-admin ping
}

keystone_start() {
  # Connection: close, or clients that reuse connections get intermittent resets from uwsgi
  start keystone uwsgi --plugin python3 --http-socket "0.0.0.0:$KEYSTONE_PORT" \
    --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 2 --threads 1 \
    --lazy-apps --die-on-term --buffer-size 65535 --add-header "Connection: close"
  wait_for Keystone 60 python3 -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$KEYSTONE_PORT/v3')"
}

setup() {
  render
  install -d "$LOGS"
  mariadb_start
  mariadb <<SQL
CREATE DATABASE keystone; CREATE DATABASE glance; CREATE DATABASE placement;
CREATE DATABASE nova_api; CREATE DATABASE nova; CREATE DATABASE nova_cell0;
CREATE DATABASE neutron;
GRANT ALL ON keystone.* TO 'keystone'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON glance.* TO 'glance'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON placement.* TO 'placement'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON nova_api.* TO 'nova'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON nova.* TO 'nova'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON nova_cell0.* TO 'nova'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL ON neutron.* TO 'neutron'@'%' IDENTIFIED BY '$PASSWORD';
SQL
  say "keystone"
  keystone-manage db_sync
  keystone-manage fernet_setup --keystone-user root --keystone-group root
  keystone-manage credential_setup --keystone-user root --keystone-group root
  keystone-manage bootstrap --bootstrap-password "$PASSWORD" \
    --bootstrap-admin-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
    --bootstrap-internal-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
    --bootstrap-public-url "http://127.0.0.1:$KEYSTONE_PORT/v3/" \
    --bootstrap-region-id RegionOne
  keystone_start
  python3 "$TEMPLATES/catalog.py" "$PASSWORD"
  say "glance, placement, nova, neutron schemas"
  glance-manage db_sync
  placement-manage db sync
  nova-manage api_db sync
  nova-manage cell_v2 map_cell0
  nova-manage cell_v2 create_cell --name cell1
  nova-manage db sync
  neutron-db-manage "${NEUTRON_SERVER[@]}" upgrade heads
  say "rabbitmq (its first start makes its database)"
  RABBITMQ_NODENAME=rabbit@localhost rabbitmq-server >"$LOGS/rabbitmq.log" 2>&1 &
  wait_for RabbitMQ 120 rabbitmqctl -n rabbit@localhost await_startup
  rabbitmqctl -n rabbit@localhost stop
  kill "${PIDS[@]}"
  wait || true
  rm -f "$LOGS"/*.log
}

run() {
  render
  install -d "$LOGS"
  # the flat physnets: plain bridges (the "dummy" module is missing on our kernel)
  for bridge in br-ext br-provider; do
    ip link add "$bridge" type bridge
    ip link set "$bridge" up
  done
  mariadb_start
  # the catalog was made with the default ports: point it at this start's ones
  mariadb keystone <<SQL
UPDATE endpoint e JOIN service s ON e.service_id = s.id
  SET e.url = CASE s.type
    WHEN 'identity' THEN 'http://127.0.0.1:$KEYSTONE_PORT/v3/'
    WHEN 'image' THEN 'http://127.0.0.1:$GLANCE_PORT'
    WHEN 'placement' THEN 'http://127.0.0.1:$PLACEMENT_PORT'
    WHEN 'compute' THEN 'http://127.0.0.1:$NOVA_PORT/v2.1'
    WHEN 'network' THEN 'http://127.0.0.1:$NEUTRON_PORT'
  END;
SQL
  RABBITMQ_NODENAME=rabbit@localhost start rabbitmq rabbitmq-server
  keystone_start
  start placement uwsgi --plugin python3 --http-socket "0.0.0.0:$PLACEMENT_PORT" \
    --wsgi-file /usr/bin/placement-api --master --processes 1 --threads 4 --lazy-apps \
    --die-on-term --buffer-size 65535 --add-header "Connection: close"
  start glance glance-api --config-file /etc/glance/glance-api.conf
  start neutron-server neutron-server "${NEUTRON_SERVER[@]}"
  start neutron-linuxbridge-agent neutron-linuxbridge-agent "${NEUTRON_AGENT[@]}"
  start nova-api nova-api
  start nova-conductor nova-conductor
  start nova-scheduler nova-scheduler
  # nova-compute's Debian package pulls in libvirt and qemu: start it from python3-nova
  start nova-compute python3 -c 'import sys; from nova.cmd.compute import main; sys.exit(main())'
  say "started; logs in $LOGS"
  trap 'kill "${PIDS[@]}" 2>/dev/null; exit 0' TERM INT
  # a service that dies ends the container, with its log's tail
  wait -n "${PIDS[@]}" || true
  say "a service exited"
  tail -n 30 "$LOGS"/*.log
  exit 1
}

case ${1:-run} in
  setup) setup ;;
  run) run ;;
  *) echo "usage: start.sh [setup|run]" >&2; exit 2 ;;
esac
