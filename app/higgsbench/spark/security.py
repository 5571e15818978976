"""Spark's security settings, said once for the local cluster's daemons and for every driver.

What is on by default: RPC authentication with a shared secret, AES-based RPC encryption
without the SASL fallback (a peer that does not encrypt is refused), no kill buttons in the web
UIs, no REST submission server.

How a driver gets the secret matters. pyspark starts the driver's JVM as
``spark-submit --conf KEY=VALUE …``, so anything given to ``SparkSession.builder.config`` or
``SparkConf.set`` ends up on a command line that every local user can read in ``ps``. Drivers
therefore never put the secret into a SparkConf: ``driver_properties`` writes it, with the other
security settings and whatever spark-defaults.conf already holds, to a properties file of mode
0600 and has spark-submit read it (``--properties-file``); the file is removed as soon as the
JVM has started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.errors import UsageError
from higgsbench.spark.state import local_cluster

SECRET_ENV = "HIGGSBENCH_SPARK_SECRET"
SECRET_FILE_ENV = "HIGGSBENCH_SPARK_SECRET_FILE"
SECRET_KEY = "spark.authenticate.secret"
ENCRYPTION_KEY = "spark.network.crypto.enabled"


def security_properties(secret: str | None, encryption: bool = True) -> dict[str, str]:
    """The settings every daemon and driver of a cluster agree on (without a secret: none)."""
    if not secret:
        return {}
    return {
        "spark.authenticate": "true",
        SECRET_KEY: secret,
        ENCRYPTION_KEY: str(encryption).lower(),
        # A peer that does not encrypt must not be let in through the older SASL handshake.
        "spark.network.crypto.saslFallback": "false",
        "spark.ui.killEnabled": "false",
    }


def is_loopback_master(master: str) -> bool:
    """A master on this machine (``local[N]`` or ``spark://`` on loopback): a driver that talks
    to it keeps every socket, web UI included, on 127.0.0.1."""
    if master.startswith("local"):
        return True
    host = urllib.parse.urlparse(master.replace("spark://", "http://", 1)).hostname
    return host in ("127.0.0.1", "localhost")


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte)."""
    return write_text_atomic(path, text, mode=0o600)


def properties_text(properties: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in properties.items())


def read_secret(master: str) -> str | None:
    """The cluster's RPC secret: $HIGGSBENCH_SPARK_SECRET, else the file named by
    $HIGGSBENCH_SPARK_SECRET_FILE (the Docker/Kubernetes way), else the local cluster's."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].strip()
    path = os.environ.get(SECRET_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise UsageError(f"${SECRET_FILE_ENV}={path}: cannot read it ({exc})") from None
    local = local_cluster(master)
    if local is not None:
        return Path(local.secret_file).read_text().strip()
    return None


def _stop_readers_of(path: Path, timeout: float = 10.0) -> None:
    """Stop this process's children whose command line names ``path`` (the driver JVM being
    started, and the scripts launching it), and what they started."""
    import psutil

    named = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if str(path) in child.cmdline():
                named += [child, *child.children(recursive=True)]
    for proc in named:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(named, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def driver_encryption(master: str) -> bool:
    """RPC encryption is on, except towards a local cluster started without it (for measuring
    what encryption costs), whose daemons would otherwise refuse this driver."""
    local = local_cluster(master)
    return True if local is None else local.rpc_encryption


@contextlib.contextmanager
def driver_properties(master: str) -> Iterator[dict[str, str]]:
    """Within this block, a new pyspark driver JVM reads the cluster's security settings and the
    secret from a private properties file instead of its command line.

    Yields the settings (secret included) so that the caller can tell whether the cluster has
    one. spark-defaults.conf of $SPARK_CONF_DIR (event logs, driver host in the images) is
    carried over, since spark-submit reads only one properties file.
    """
    properties = security_properties(read_secret(master), driver_encryption(master))
    if not properties:
        yield properties
        return
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    defaults = Path(conf_dir, "spark-defaults.conf") if conf_dir else None
    text = defaults.read_text() if defaults is not None and defaults.is_file() else ""
    private = Path(tempfile.mkdtemp(prefix="higgsbench-driver-"))  # mode 0700
    previous = os.environ.get("PYSPARK_SUBMIT_ARGS")
    try:
        path = write_private(private / "driver.properties", text + properties_text(properties))
        # Later keys override earlier ones, so ours win over spark-defaults.conf.
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"--properties-file {path} pyspark-shell"
        yield properties
    except BaseException:
        # Interrupted while the JVM starts: stop it before its file goes, or spark-submit
        # finds the file gone and prints its usage after this command has said why it ended.
        _stop_readers_of(path)
        raise
    finally:
        if previous is None:
            os.environ.pop("PYSPARK_SUBMIT_ARGS", None)
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = previous
        shutil.rmtree(private, ignore_errors=True)
