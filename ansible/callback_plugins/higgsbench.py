"""Ansible's default output, with waits that say how long they have waited.

A task that polls (`until:` with `retries:` and `delay:`: a server booting, a Spark worker
registering, a benchmark running for an hour) prints, in the default callback, one
"FAILED - RETRYING: … (5759 retries left)" line per poll: alarming, and silent about time.
Here it prints a line when the wait starts and then at most one every PROGRESS_SECONDS, with
the time waited and the limit:

    waiting [master]: Wait for the run to end … 2 min 30 s of at most 4 h (poll 16 of 1440)
"""

from __future__ import annotations

import time

from ansible.plugins.callback.default import CallbackModule as DefaultCallback

DOCUMENTATION = """
name: higgsbench
type: stdout
short_description: the default output, with the time waited instead of RETRYING lines
description:
  - Ansible's default stdout callback; a task that polls (until/retries/delay) prints the time
    waited and its limit at most once every 30 seconds instead of a line per retry.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - set as stdout_callback in ansible.cfg
"""

PROGRESS_SECONDS = 30.0


def duration(seconds: float) -> str:
    """2 h 5 min, 3 min 20 s, 45 s."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "higgsbench"

    def __init__(self) -> None:
        super().__init__()
        self._task_started: dict[str, float] = {}  # task uuid -> when it started
        self._last_shown: dict[tuple[str, str], float] = {}  # (host, task uuid) -> last line

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._task_started[task._uuid] = time.monotonic()
        super().v2_playbook_on_task_start(task, is_conditional)

    def v2_runner_retry(self, result) -> None:
        now = time.monotonic()
        task = result.task
        key = (result.host.get_name(), task._uuid)
        if key in self._last_shown and now - self._last_shown[key] < PROGRESS_SECONDS:
            return
        self._last_shown[key] = now
        waited = now - self._task_started.get(task._uuid, now)
        polls, limit = result.result.get("attempts", 0), result.result.get("retries", 0)
        delay = _number(result.task_fields.get("delay"))
        most = f" of at most {duration((limit - 1) * delay)}" if delay and limit else ""
        msg = (
            f"waiting [{self.host_label(result)}]: {result.task_name or task} … "
            f"{duration(waited)}{most} (poll {polls} of {limit})"
        )
        if self._run_is_verbose(result, verbosity=2):
            msg += f" Result was: {self._dump_results(result.result)}"
        self._display.display(msg)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
