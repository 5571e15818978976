"""Options more than one command takes, with their fixed choices: --help lists them, shell
completion offers them, anything else is refused (exit 2) before a run starts."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import typer

from higgsbench.common.errors import UsageError
from higgsbench.core.hardware import PRECISIONS
from higgsbench.core.network import PRESETS
from higgsbench.core.optimizers import OPTIMIZERS
from higgsbench.data.layout import FEATURE_SETS
from higgsbench.engines import ENGINES

Progress = Annotated[
    bool,
    typer.Option("--progress/--no-progress", help="Show progress bars.", rich_help_panel="Output"),
]
Track = Annotated[
    str | None,
    typer.Option(
        help="Log parameters, per-epoch metrics, results and plots to this MLflow tracking "
        "server, e.g. http://127.0.0.1:5000 (`make tracking-up`); checked before training.",
        show_default="no tracking",
        metavar="URI",
        rich_help_panel="Output",
    ),
]

# Fixed choices: --help lists them, shell completion offers them, anything else is refused
# (exit 2) before a run starts. One list each, where the code that uses them keeps it.
Engine = Literal[tuple(ENGINES)]
Optimizer = Literal[OPTIMIZERS]
Features = Literal[tuple(FEATURE_SETS)]
Precision = Literal[PRECISIONS]
Recipe = Literal[tuple(PRESETS)]
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def _device(text: str) -> str:
    """--device: cpu, cuda or cuda:N (the GPU's index), the forms torch accepts."""
    if not DEVICE.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not one of 'cpu', 'cuda', 'cuda:N'.")
    return text


def _complete_device(incomplete: str) -> list[str]:
    return [
        d for d in ("cpu", "cuda", *(f"cuda:{i}" for i in range(8))) if d.startswith(incomplete)
    ]


Device = Annotated[
    str,
    typer.Option(
        help="cpu, cuda or cuda:N (torch and keras engines).",
        parser=_device,
        metavar="<cpu|cuda|cuda:N>",
        autocompletion=_complete_device,
        rich_help_panel="Hardware",
    ),
]


def completer(choices):
    """Completion for a comma-separated list: the names of ``choices`` not given yet, after
    what is typed so far."""

    def complete(incomplete: str) -> list[str]:
        done, _, last = incomplete.rpartition(",")
        given = set(done.split(",")) if done else set()
        prefix = f"{done}," if done else ""
        return [prefix + c for c in choices if c.startswith(last) and c not in given]

    return complete


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def integers(option: str, text: str) -> list[int]:
    try:
        return [int(n) for n in csv_list(text)]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected integers like 1,2,4") from None


Check = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Validate every setting (for a sweep: every run's), the dataset, the output "
        "directory, the cluster and the tracking server, and stop there: nothing is run or "
        "written.",
        rich_help_panel="Output",
    ),
]
