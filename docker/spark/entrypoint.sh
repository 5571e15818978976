#!/bin/sh
# One image, several roles: master | worker | history | anything else (run as the driver).
#
# Configuration comes from the environment (Bitnami style); the RPC secret from a file
# (SPARK_RPC_SECRET_FILE, default /run/secrets/spark_secret) or SPARK_RPC_SECRET. It is
# written, with the rest of the Spark settings, to a spark-defaults.conf of mode 0600 in a
# private directory of this container: never onto a command line, never into the image.
#
# Safe by default: with a secret, RPC is authenticated (SPARK_AUTHENTICATE) and encrypted
# with AES (SPARK_NETWORK_CRYPTO), and the SASL fallback is off, so a peer that does not
# encrypt is refused rather than let in unencrypted. The web UIs have no kill buttons and the
# master no REST submission server. This script writes only under /tmp (and the events
# directory): the containers run with a read-only root and a tmpfs at /tmp.
set -eu

SPARK_HOME=${SPARK_HOME:?}
export SPARK_CONF_DIR="${SPARK_CONF_DIR:-/tmp/spark-conf}"
export SPARK_LOG_DIR="${SPARK_LOG_DIR:-/tmp/spark-logs}"
export SPARK_WORKER_DIR="${SPARK_WORKER_DIR:-/tmp/spark-work}"
export SPARK_NO_DAEMONIZE=1
SPARK_MASTER_URL=${SPARK_MASTER_URL:-spark://master:7077}
SPARK_MASTER_PORT=${SPARK_MASTER_PORT:-7077}
SPARK_MASTER_WEBUI_PORT=${SPARK_MASTER_WEBUI_PORT:-8080}
SPARK_WORKER_CORES=${SPARK_WORKER_CORES:-1}
SPARK_WORKER_MEMORY=${SPARK_WORKER_MEMORY:-2g}
SPARK_WORKER_PORT=${SPARK_WORKER_PORT:-7078}
SPARK_WORKER_WEBUI_PORT=${SPARK_WORKER_WEBUI_PORT:-8081}
SPARK_EVENTS_DIR=${SPARK_EVENTS_DIR:-}
SPARK_RPC_SECRET_FILE=${SPARK_RPC_SECRET_FILE:-/run/secrets/spark_secret}
SPARK_NETWORK_CRYPTO=${SPARK_NETWORK_CRYPTO:-true}

umask 077
mkdir -p "$SPARK_CONF_DIR" "$SPARK_LOG_DIR" "$SPARK_WORKER_DIR"

secret=${SPARK_RPC_SECRET:-}
if [ -z "$secret" ] && [ -r "$SPARK_RPC_SECRET_FILE" ]; then
  secret=$(cat "$SPARK_RPC_SECRET_FILE")
fi
role=${1:-driver}
case "$role" in
  master|worker|history)
    # Daemons never run open: without a secret they refuse to start.
    if [ -z "$secret" ] && [ "${SPARK_AUTHENTICATE:-true}" = "true" ]; then
      echo "entrypoint: no RPC secret: mount one at $SPARK_RPC_SECRET_FILE or set SPARK_RPC_SECRET" >&2
      echo "            (SPARK_AUTHENTICATE=false turns authentication off, for experiments only)" >&2
      exit 64
    fi ;;
esac
case "$SPARK_NETWORK_CRYPTO" in
  true|false) ;;
  *) echo "entrypoint: SPARK_NETWORK_CRYPTO=$SPARK_NETWORK_CRYPTO: expected true or false" >&2
     exit 64 ;;
esac

conf="$SPARK_CONF_DIR/spark-defaults.conf"
{
  if [ -n "$secret" ]; then
    echo "spark.authenticate true"
    echo "spark.authenticate.secret $secret"
    # SPARK_NETWORK_CRYPTO=false leaves RPC unencrypted, for experiments only; every member
    # of a cluster must then say so, or the others refuse it.
    echo "spark.network.crypto.enabled $SPARK_NETWORK_CRYPTO"
    echo "spark.network.crypto.saslFallback false"
  fi
  echo "spark.master.rest.enabled false"
  echo "spark.ui.killEnabled false"
  echo "spark.worker.cleanup.enabled true"
  if [ -n "$SPARK_EVENTS_DIR" ]; then
    mkdir -p "$SPARK_EVENTS_DIR" 2>/dev/null || true
    echo "spark.eventLog.enabled true"
    echo "spark.eventLog.dir file://$SPARK_EVENTS_DIR"
    echo "spark.history.fs.logDirectory file://$SPARK_EVENTS_DIR"
  fi
} > "$conf"
chmod 600 "$conf"
unset secret SPARK_RPC_SECRET
# the driver (higgsbench) reads the same secret file
if [ -r "$SPARK_RPC_SECRET_FILE" ]; then
  export HIGGSBENCH_SPARK_SECRET_FILE="$SPARK_RPC_SECRET_FILE"
fi

echo "$role" > "$SPARK_CONF_DIR/role"  # for the health check (healthcheck.py)
case "$role" in
  master)
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host "${SPARK_MASTER_HOST:-$(hostname)}" --port "$SPARK_MASTER_PORT" \
      --webui-port "$SPARK_MASTER_WEBUI_PORT" ;;
  worker)
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --port "$SPARK_WORKER_PORT" --webui-port "$SPARK_WORKER_WEBUI_PORT" \
      --cores "$SPARK_WORKER_CORES" --memory "$SPARK_WORKER_MEMORY" "$SPARK_MASTER_URL" ;;
  history)
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.history.HistoryServer ;;
esac
# Anything else is a driver (`driver ARGS…` means `higgsbench ARGS…`). Executors must be able
# to call back: advertise this container's address.
echo "spark.driver.host $(hostname -i | cut -d' ' -f1)" >> "$conf"
case "$role" in
  driver) shift || true; set -- higgsbench "$@" ;;
  data|train|bench|report|cluster|-*) set -- higgsbench "$@" ;;
esac
exec "$@"
