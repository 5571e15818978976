"""The command line helps: every default in --help, fixed choices listed and completed, one
name for one thing, inputs checked before a sweep starts, documented exit statuses, and an
honest package description (Python version, licence, citation)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from higgsbench import cli
from higgsbench.core.hardware import PRECISIONS
from higgsbench.core.optimizers import OPTIMIZERS
from higgsbench.data.layout import FEATURE_SETS
from higgsbench.engines import ENGINES
from tests.helpers import refused, run_cli

REPO = Path(__file__).resolve().parents[1]
PLAIN = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
ROOT = typer.main.get_command(cli.app)
# options of click's and typer's own, which have nothing to default
OWN = {"help", "version", "install_completion", "show_completion"}


def _commands(group=ROOT, path=()):
    """Every command's path below ``group`` (groups included), e.g. ("data", "fetch")."""
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


COMMANDS = {" ".join(path): command for path, command in _commands()}


def _help_rows(text: str) -> dict[str, str]:
    """--help's panels as {first option name: the row's text, wrapped lines joined}."""
    rows: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        inner = line.strip().strip("│").rstrip()
        if not line.strip().startswith("│") or not inner.strip():
            current = None
            continue
        if len(inner) - len(inner.lstrip()) <= 4:  # a row starts: "* --name" or "--name"
            first = inner.lstrip(" *").split()[0]
            current = first if first.startswith("-") else None
            if current:
                rows[current] = inner.strip()
        elif current:  # a wrapped line of the same row
            rows[current] += " " + inner.strip()
    return rows


def _help(*path: str) -> str:
    proc = run_cli(*path, "--help", env=PLAIN, check=True)
    assert proc.stderr == ""
    return proc.stdout


# ------------------------------------------------------------------ defaults in --help


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_default_is_shown_in_help(path):
    """Each option with a default (a value, or a default described in words) says it in
    --help, whatever its help text holds: rich markup once swallowed `[default: …]`."""
    rows = _help_rows(_help(*path.split()))
    for param in COMMANDS[path].params:
        if param.param_type_name != "option" or param.name in OWN:
            continue
        name = param.opts[0]
        assert name in rows, f"{path} --help lacks {name}:\n{rows}"
        described = isinstance(param.show_default, str)
        if param.default in (None, "") and not described:
            continue  # nothing to show: e.g. --master, --from
        if param.default is False and not param.secondary_opts:
            continue  # a plain flag (--json) is off unless given
        found = re.search(r"\[default: ([^\]]*)\]", rows[name])
        assert found, f"`{path} --help` shows no default for {name}: {rows[name]!r}"
        if described:
            expected = f"({param.show_default})"
        elif isinstance(param.default, bool):
            continue  # shown as the flag's name: --progress, --no-resume
        else:
            expected = str(param.default)
        assert re.sub(r"\s", "", found[1]) == re.sub(r"\s", "", expected), rows[name]


@pytest.mark.parametrize(
    "path, option",
    [
        ("train", "--lr"),
        ("train", "--layers"),
        ("train", "--width"),
        ("train", "--threads"),
        ("train", "--cores-per-node"),
        ("train", "--max-train-rows"),
        ("bench", "--threads"),
        ("bench", "--cores-per-node"),
        ("bench", "--predict-cores"),
        ("report", "--out"),
    ],
)
def test_defaults_that_depend_on_something_else_say_what(path, option):
    row = _help_rows(_help(path))[option]
    assert re.search(r"\[default: \([a-z' ]+\)\]", row), row


# ------------------------------------------------------------------ fixed choices

CHOICES = {
    ("train", "--engine"): ENGINES,
    ("train", "--optimizer"): OPTIMIZERS,
    ("train", "--features"): FEATURE_SETS,
    ("train", "--precision"): PRECISIONS,
    ("train", "--recipe"): ("thesis", "baldi"),
    ("train", "--device"): ("cpu", "cuda", "cuda:N"),
    ("bench", "--features"): FEATURE_SETS,
    ("bench", "--precision"): PRECISIONS,
    ("bench", "--device"): ("cpu", "cuda", "cuda:N"),
}


@pytest.mark.parametrize("path", ["train", "bench"])
def test_help_lists_the_choices(path):
    rows = _help_rows(_help(path))
    for (command, option), choices in CHOICES.items():
        if command == path:
            assert "|".join(choices) in rows[option], rows[option]
    if path == "bench":  # comma-separated lists name their choices in the help text
        assert ",".join(ENGINES) in rows["--engines"]
        assert ",".join(OPTIMIZERS) in rows["--optimizers"]


@pytest.mark.parametrize(("path", "option"), list(CHOICES))
def test_a_bad_choice_is_refused_naming_the_choices(tmp_path, path, option):
    proc = run_cli(path, "--data", tmp_path / "d", "--out", tmp_path / "o", option, "tpu")
    message = refused(proc, option, "'tpu'", f"higgsbench {path} --help")
    for choice in CHOICES[path, option]:
        assert f"'{choice}'" in message
    assert list(tmp_path.iterdir()) == []


def test_choices_are_accepted_as_today(monkeypatch):
    """Optimizer names in any case (as before), cuda:N, and comma lists in bench."""
    from higgsbench import run as train
    from higgsbench.sweep import plan, summary
    from higgsbench.sweep import runner as sweep_runner

    seen = []
    monkeypatch.setattr(train, "run_training", seen.append)
    runner = CliRunner()
    args = ["train", "--data", "d", "--out", "o", "--optimizer", "AdaMax", "--device", "cuda:1"]
    result = runner.invoke(cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (seen[0].optimizer, seen[0].device) == ("adamax", "cuda:1")

    plans = []
    monkeypatch.setattr(
        sweep_runner, "run_bench", lambda plan, echo: plans.append(plan) or {"failures": []}
    )
    monkeypatch.setattr(summary, "finish_bench", lambda *a, **k: "RESULT {}")
    monkeypatch.setattr(plan.BenchPlan, "check", lambda self: None)
    args = ["bench", "--data", "d", "--out", "o", "--engines", "torch,keras"]
    result = runner.invoke(cli.app, [*args, "--optimizers", "adam,sgd"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (plans[0].engines, plans[0].optimizers) == (["torch", "keras"], ["adam", "sgd"])


# ------------------------------------------------------------------ shell completion


def _complete(words: str) -> list[str]:
    """What bash completion offers after ``words`` (the protocol the installed script uses)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_HIGGSBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = run_cli(env=env, check=True)
    return proc.stdout.split()


@pytest.mark.parametrize(
    "words, expected",
    [
        ("higgsbench tr", ["train"]),
        ("higgsbench train --engine ", list(ENGINES)),
        ("higgsbench train --optimizer adam", ["adam", "adamax"]),
        ("higgsbench train --features ", list(FEATURE_SETS)),
        ("higgsbench bench --precision ", list(PRECISIONS)),
        ("higgsbench bench --engines torch,s", ["torch,spark"]),
        ("higgsbench bench --optimizers sgd,adam,adama", ["sgd,adam,adamax"]),
    ],
)
def test_completion_offers_commands_and_choices(words, expected):
    assert _complete(words) == expected


def test_completion_offers_devices():
    assert _complete("higgsbench train --device ")[:3] == ["cpu", "cuda", "cuda:0"]


def test_show_completion_prints_a_script_for_the_program_name():
    env = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    for shell, marker in (("bash", "complete -o default -F"), ("zsh", "compdef")):
        proc = run_cli("--show-completion", shell, env=env, check=True)
        assert "_HIGGSBENCH_COMPLETE" in proc.stdout and marker in proc.stdout, proc.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_install_completion_works_in_bash(tmp_path):
    """Installed into a fresh HOME, sourced by bash, it completes through the real script."""
    env = {"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = run_cli("--install-completion", "bash", env=env, check=True)
    assert "bash completion installed" in proc.stdout
    script = tmp_path / ".bash_completions" / "higgsbench.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    bash = (
        f"source {script}; COMP_WORDS=(higgsbench train --precision ''); COMP_CWORD=3; "
        "_higgsbench_completion higgsbench; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "higgsbench").exists(), "the console script is not installed"
    done = subprocess.run(
        ["bash", "--norc", "-c", bash],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.stdout.split() == list(PRECISIONS), done.stderr


# ------------------------------------------------------------------ one name for one thing


def _usage_examples():
    """`higgsbench …` commands quoted in the Dockerfiles' comments: the images run higgsbench
    as their entry point, so a comment line that starts with a command and gives options
    is one."""
    for dockerfile in sorted((REPO / "docker").rglob("Dockerfile*")):
        for line in dockerfile.read_text().splitlines():
            words = line.lstrip("# ").split()
            if not line.startswith("#") or "--" not in line:
                continue
            for n in (2, 1):
                if " ".join(words[:n]) in COMMANDS:
                    yield dockerfile.relative_to(REPO), [" ".join(words[:n]), *words[n:]]
                    break


def test_usage_examples_in_the_dockerfiles_use_real_options():
    examples = list(_usage_examples())
    assert examples, "no usage example found in docker/*/Dockerfile"
    for where, (command, *words) in examples:
        known = {opt for p in COMMANDS[command].params for opt in (*p.opts, *p.secondary_opts)}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{where}: `{command} {word}` does not exist"


def test_train_engine_and_bench_engines_take_one_value_the_same_way(toy_dataset, tmp_path):
    for option in ("--engine", "--engines"):
        command = "train" if option == "--engine" else "bench"
        proc = run_cli(command, "--data", toy_dataset, "--out", tmp_path / "x", option, "jax")
        refused(proc, option, "'jax'", "torch")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bench checks its inputs


def _fake_python(tmp_path: Path, then: str = "exit 3") -> tuple[Path, Path]:
    """An "interpreter" for `bench --python torch=…` that leaves a mark when a child runs."""
    mark = tmp_path / "child-ran"
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\ntouch '{mark}'\necho 'higgsbench: error: boom' >&2\n{then}\n")
    fake.chmod(0o755)
    return fake, mark


def _not_prepared(tmp_path: Path, toy_dataset: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nothing"
    if kind == "empty directory":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "a file":
        return toy_dataset / "stats.json"
    broken = tmp_path / "broken"
    shutil.copytree(toy_dataset, broken)
    (broken / "test.parquet").unlink()
    return broken


@pytest.mark.parametrize("kind", ["missing", "empty directory", "a file", "a split missing"])
def test_bench_refuses_a_bad_data_quickly_before_any_child(toy_dataset, tmp_path, kind):
    fake, mark = _fake_python(tmp_path)
    data = _not_prepared(tmp_path, toy_dataset, kind)
    started = time.monotonic()
    proc = run_cli(
        "bench", "--data", data, "--out", tmp_path / "sweep", "--python", f"torch={fake}"
    )
    refused(proc, data.name)
    assert time.monotonic() - started < 30
    assert not mark.exists(), "a child ran"
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--python", "torch=/no/such/python"], "--python torch=/no/such/python: no such file"),
        (["--python", "jax=python3"], "no engine 'jax'"),
        (["--engines", "spark"], "--engines spark needs --master"),
        (["--engines", "spark", "--master", "local[2]"], "expected spark://HOST:PORT"),
        (["--batch-size", "1000000"], "--batch-size 1000000 exceeds"),
        (["--max-train-rows", "100", "--batch-size", "256"], "--max-train-rows 100"),
    ],
)
def test_bench_refuses_every_bad_input_before_any_child(toy_dataset, tmp_path, args, expected):
    fake, mark = _fake_python(tmp_path)
    python = [] if "--python" in args else ["--python", f"torch={fake}"]
    proc = run_cli("bench", "--data", toy_dataset, "--out", tmp_path / "sweep", *python, *args)
    refused(proc, expected)
    assert not mark.exists(), "a child ran"
    assert not (tmp_path / "sweep").exists()


def test_bench_refuses_an_out_that_is_a_file(toy_dataset, tmp_path):
    fake, mark = _fake_python(tmp_path)
    (tmp_path / "sweep").write_text("")
    args = ["--data", toy_dataset, "--out", tmp_path / "sweep", "--python", f"torch={fake}"]
    proc = run_cli("bench", *args)
    refused(proc, "--out", "is a file")
    assert not mark.exists()


# ------------------------------------------------------------------ exit statuses


def test_exit_statuses_are_documented_in_the_top_level_help():
    text = _help()
    assert "Exit status:" in text
    for status, words in (
        (0, "done"),
        (cli.EXIT_FAILED, "a run failed"),
        (cli.EXIT_USAGE, "bad input, usage or setting"),
        (cli.EXIT_INTERRUPTED, "interrupted"),
    ):
        assert re.search(rf"^\s*{status}\s+{words}", text, re.M), text
    assert (cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED) == (1, 2, 130)


def test_usage_errors_exit_2_in_one_line():
    refused(run_cli("nosuch"), "No such command 'nosuch'")
    refused(run_cli("train", "--out", "x"), "Missing option '--data'")
    refused(run_cli("bench", "--engine", "torch"), "No such option: --engine", "--engines")
    refused(run_cli("train", "--data", "d", "--out", "o", "--epochs", "two"), "--epochs")


def test_no_arguments_shows_the_help_and_exits_2():
    proc = run_cli(env=PLAIN)
    assert proc.returncode == 2 and "Usage: higgsbench" in proc.stdout


def test_a_sweep_with_a_failed_run_exits_1(toy_dataset, tmp_path):
    fake, mark = _fake_python(tmp_path)
    out = tmp_path / "sweep"
    args = ["--data", toy_dataset, "--out", out, "--python", f"torch={fake}"]
    proc = run_cli("bench", *args, "--optimizers", "adam", "--batch-size", "256")
    assert proc.returncode == 1, proc.stderr
    assert mark.exists() and '"failures":1' in proc.stdout.splitlines()[-1]
    assert "failed: exit 3: higgsbench: error: boom" in proc.stderr


def test_ctrl_c_exits_130_in_one_line(toy_dataset, tmp_path):
    fake, mark = _fake_python(tmp_path, then="exec sleep 60")
    args = ["--data", toy_dataset, "--out", tmp_path / "sweep", "--python", f"torch={fake}"]
    args += ["--optimizers", "adam", "--batch-size", "256"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "higgsbench", "bench", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIGGSBENCH_PROGRESS": "0"},
        # as from a terminal: a job a script starts in the background (CI) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mark.exists(), "the child never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "higgsbench: interrupted"
    assert "Traceback" not in err


def test_an_interrupt_anywhere_exits_130(monkeypatch, capsys):
    from higgsbench import report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    monkeypatch.setattr(sys, "argv", ["higgsbench", "report", "some-run"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1] == "higgsbench: interrupted"


# ------------------------------------------------------------------ an honest package


def test_requires_python_and_licence_match_what_is_shipped():
    import tomllib  # here: ruff's target-version (py310) does not know it is the stdlib's

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)
    assert project["license"] == "Apache-2.0"
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert project["license-files"] == ["LICENSE"]


def test_citation_cff_cites_the_project_and_baldi_et_al():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "license", "references"):
        assert cff.get(key), key
    assert cff["license"] == "Apache-2.0"
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    baldi = [r for r in cff["references"] if r.get("doi") == "10.1038/ncomms5308"]
    assert baldi, "Baldi, Sadowski, Whiteson (2014) is not cited"
    (ref,) = baldi
    assert [a["family-names"] for a in ref["authors"]] == ["Baldi", "Sadowski", "Whiteson"]
    assert ref["type"] == "article" and ref["year"] == 2014
    assert ref["journal"] == "Nature Communications"
    assert (str(ref["volume"]), str(ref["start"])) == ("5", "4308")


# ------------------------------------------------------------------ one validation


def test_every_problem_of_a_run_is_said_at_once(toy_dataset, tmp_path):
    proc = run_cli(
        "train", "--data", toy_dataset, "--out", tmp_path / "r", "--epochs", 0,
        "--seed", -1, "--lr", 0, "--engine", "spark",
    )  # fmt: skip
    line = refused(proc, "4 problems:", "--epochs 0", "--seed -1", "--lr 0", "--master")
    assert line.count(";") == 3
    assert list(tmp_path.iterdir()) == []


def test_check_validates_and_runs_nothing(toy_dataset, tmp_path):
    ok = run_cli("train", "--data", toy_dataset, "--out", tmp_path / "r", "--check", check=True)
    assert ok.stdout.startswith("checked:") and "RESULT" not in ok.stdout
    sweep = run_cli(
        "bench", "--data", toy_dataset, "--out", tmp_path / "s", "--optimizers", "adam,sgd",
        "--repeat", 2, "--batch-size", 256, "--check", check=True,
    )  # fmt: skip
    assert sweep.stdout.strip() == "checked: 4 runs, nothing was run"
    assert list(tmp_path.iterdir()) == []
    bad = run_cli("bench", "--data", toy_dataset, "--out", tmp_path / "s", "--epochs", 0, "--check")
    refused(bad, "--epochs 0")
    assert list(tmp_path.iterdir()) == []
