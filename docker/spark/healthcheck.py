"""Container health: the role's web UI answers (master 8080, worker 8081, history 18080)."""

import os
import sys
import urllib.request
from pathlib import Path

PORTS = {
    "master": os.environ.get("SPARK_MASTER_WEBUI_PORT", "8080"),
    "worker": os.environ.get("SPARK_WORKER_WEBUI_PORT", "8081"),
    "history": os.environ.get("SPARK_HISTORY_UI_PORT", "18080"),
}
# written by the entrypoint into its (private) configuration directory
conf_dir = os.environ.get("SPARK_CONF_DIR", "/tmp/spark-conf")
try:
    role = (Path(conf_dir) / "role").read_text().strip()
except OSError:
    role = "driver"
if role not in PORTS:
    sys.exit(0)  # drivers have no UI worth checking
try:
    urllib.request.urlopen(f"http://127.0.0.1:{PORTS[role]}/", timeout=5)
except OSError as exc:
    print(f"{role} UI not answering: {exc}")
    sys.exit(1)
