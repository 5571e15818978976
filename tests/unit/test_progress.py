"""Progress from processes whose terminal is elsewhere: a Spark rank prints its bar as tagged
lines (progress.remote_bar), the driver draws them (progress.RemoteProgress) and passes every
other line on untouched."""

import io
import json

import pytest
from rich.console import Console

from higgsbench.common import progress


@pytest.fixture
def screen(monkeypatch):
    """What the bars draw, as a terminal 120 columns wide would show it."""
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=120))
    monkeypatch.setenv("HIGGSBENCH_PROGRESS", "1")
    return out


def _tagged(text: str) -> list[dict]:
    return [
        json.loads(line[len(progress.REMOTE_TAG) :])
        for line in text.splitlines()
        if line.startswith(progress.REMOTE_TAG)
    ]


def test_a_remote_bar_prints_at_most_once_a_second_and_always_at_a_new_line_and_the_end(
    capsys, monkeypatch
):
    clock = iter([0.0, 0.0, 0.2, 0.4, 1.5, 1.6, 2.0, 2.5, 3.0]).__next__
    monkeypatch.setattr(progress.time, "monotonic", clock)
    with progress.remote_bar("epoch 1/2", 10, show=True) as bar:  # 0.0: the line opens
        bar.advance(2)  # 0.2: too soon after the first
        bar.advance(2)  # 0.4: too soon
        bar.advance(2)  # 1.5: a second since the last line
        bar.update(10)  # 1.6: the line's end, always said
        bar.next("epoch 2/2", 10)  # 2.0: a new line, always said
        bar.advance(5)  # 2.5: too soon
    lines = _tagged(capsys.readouterr().out)
    assert [(s["description"], s["completed"], s["line"]) for s in lines] == [
        ("epoch 1/2", 0, 0),
        ("epoch 1/2", 6, 0),
        ("epoch 1/2", 10, 0),
        ("epoch 2/2", 0, 1),
    ]
    # steps per second measured by the rank over its line: 6 steps in 1.5 s, 10 in 1.6 s
    assert lines[1]["steps_per_second"] == pytest.approx(4.0)
    assert lines[2]["steps_per_second"] == pytest.approx(6.25)


def test_a_hidden_remote_bar_prints_nothing(capsys):
    with progress.remote_bar("epoch 1/1", 10, show=False) as bar:
        bar.advance(10)
        bar.next("epoch 2/2", 10)
    assert capsys.readouterr().out == ""


def test_the_driver_draws_progress_lines_and_passes_every_other_line_on(screen):
    state = {"description": "epoch 1/2", "total": 40, "completed": 40, "line": 0}
    with progress.RemoteProgress(True, events_per_step=256, prefix="2 ranks, ") as bars:
        # torchrun may put a rank prefix before what the rank printed
        line = "[rank0]: " + progress.REMOTE_TAG + json.dumps({**state, "steps_per_second": 10})
        assert bars.feed(line) is None
        second = {**state, "description": "epoch 2/2", "completed": 20, "line": 1}
        assert bars.feed(progress.REMOTE_TAG + json.dumps(second)) is None
        # Spark's and torchrun's own lines, and anything malformed, are not swallowed
        assert bars.feed("WARN something from Spark") == "WARN something from Spark"
        broken = progress.REMOTE_TAG + "{not json"
        assert bars.feed(broken) == broken
    drawn = screen.getvalue()
    assert "2 ranks, epoch 1/2" in drawn and "40/40" in drawn
    assert "2,560 events/s" in drawn  # the rank's 10 steps/s × 256 events a step
    assert "2 ranks, epoch 2/2" in drawn and "20/40" in drawn


def test_the_driver_draws_nothing_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("HIGGSBENCH_PROGRESS", "0")
    state = {"description": "epoch 1/1", "total": 4, "completed": 4, "line": 0}
    with progress.RemoteProgress(True, events_per_step=256) as bars:
        assert bars.feed(progress.REMOTE_TAG + json.dumps(state)) is None
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_a_local_bar_says_events_per_second_and_what_it_is_doing(screen):
    with progress.progress_bar("bench", 3, unit="runs", show=True, events_per_step=100) as bar:
        bar.describe("bench [2/3] torch-n1-adam")
        bar.advance(2)
    drawn = screen.getvalue()
    assert "bench [2/3] torch-n1-adam" in drawn and "2/3" in drawn and "events/s" in drawn
