"""The one client of a Spark master's web UI (its /json/ endpoint): the local cluster's
commands and the Spark engine ask it which workers are alive."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def master_json(ui_url: str) -> dict | None:
    """What the master at ``ui_url`` says of itself, or None when it cannot be reached."""
    try:
        with urllib.request.urlopen(f"{ui_url}/json/", timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def alive(info: dict | None) -> list[dict]:
    """The ALIVE workers of a master's /json/ answer."""
    return [w for w in (info or {}).get("workers", []) if w.get("state") == "ALIVE"]


def alive_workers(ui_url: str) -> list[dict] | None:
    """The alive workers of the master at ``ui_url``, or None when it cannot be reached."""
    info = master_json(ui_url)
    return None if info is None else alive(info)
