"""Mutation testing of the modules whose results users read (make test-mutation).

mutmut changes one operator, constant or call at a time in the modules that pyproject.toml's
[tool.mutmut] names (only_mutate) and runs the fast unit tests against each change; a change no
test notices ("survived") is a bug the tests would let through. This prints the score, killed
over all mutants less those listed as equivalent in tests/mutation/equivalent.txt (a change
that behaves exactly as the original, with the reason), and every other survivor.

mutmut finds sources in ./src only, so the run happens in build/mutation/, a copy of the
checkout with app/ as src/; the copy carries a marker and is replaced only when it has it.

    python tests/mutation/run.py [--max-children N] [--target PERCENT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "mutation"
MARKER = ".higgsbench-mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
# the genuine HIGGS rows (tests/conftest.py): ../shared/data beside the checkout, not beside the
# copy, where the tests that read them would skip and reach none of their mutants
SHARED_DATA = os.environ.get("HIGGSBENCH_SHARED_DATA", str(REPO.parent / "shared" / "data"))
STATUS = re.compile(r"^\s+(\S+): (.+)$")


def fresh_work_dir() -> None:
    """build/mutation/ made anew: app/ as src/, the tests and pyproject.toml beside it."""
    if WORK.exists():
        if not (WORK / MARKER).exists():
            sys.exit(f"{WORK} exists and was not made by this script (no {MARKER}): not replaced")
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    (WORK / MARKER).write_text("made by tests/mutation/run.py\n")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "app", WORK / "src", ignore=skip)
    shutil.copytree(REPO / "tests", WORK / "tests", ignore=skip)
    shutil.copy2(REPO / "pyproject.toml", WORK / "pyproject.toml")


def equivalent_mutants() -> dict[str, str]:
    """name → reason, from equivalent.txt ("NAME  reason" per line, # comments)."""
    found = {}
    for number, line in enumerate(EQUIVALENT.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{EQUIVALENT}:{number}: {name} has no reason")
        found[name] = reason.strip()
    return found


def statuses() -> dict[str, str]:
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=WORK, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {m[1]: m[2] for m in map(STATUS.match, listed.stdout.splitlines()) if m}


def per_module(found: dict[str, str]) -> dict[str, tuple[int, int]]:
    """module → (killed, mutants); a mutant is named module.x_function__mutmut_N."""
    table: dict[str, tuple[int, int]] = {}
    for name, status in found.items():
        module = name.rsplit(".", 1)[0]
        killed, total = table.get(module, (0, 0))
        table[module] = (killed + (status in ("killed", "timeout")), total + 1)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (cores)")
    parser.add_argument("--target", type=float, default=90.0, help="score to reach, percent")
    args = parser.parse_args()
    if not (Path(SHARED_DATA) / "higgs-head-11.csv").is_file():
        sys.exit(
            f"no genuine HIGGS rows in {SHARED_DATA} (HIGGSBENCH_SHARED_DATA): the data modules'"
            " tests need them; without them those modules' mutants would all survive"
        )
    fresh_work_dir()
    run = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)],
        cwd=WORK, check=False,
        env={**os.environ, "HIGGSBENCH_SHARED_DATA": SHARED_DATA, "HIGGSBENCH_REQUIRE_DATA": "1"},
    )  # fmt: skip
    if run.returncode:
        print(f"mutmut run failed (exit {run.returncode}); see {WORK}/mutants", file=sys.stderr)
        return 1
    found, equivalent = statuses(), equivalent_mutants()
    stale = sorted(set(equivalent) - set(found))
    counted = {name: s for name, s in found.items() if name not in equivalent}
    killed = sum(s in ("killed", "timeout") for s in counted.values())
    score = 100.0 * killed / max(len(counted), 1)
    survivors = sorted(name for name, s in counted.items() if s not in ("killed", "timeout"))
    for name in survivors:
        print(f"survived: {name} ({counted[name]})   mutmut show {name}  (in {WORK})")
    for module, (dead, total) in sorted(per_module(counted).items()):
        print(f"{module:<32} {dead:>5} of {total:>5} killed  {100 * dead / total:5.1f} %")
    for name in stale:
        print(f"equivalent.txt lists {name}, which this run did not make: remove it")
    summary = {"mutants": len(found), "equivalent": len(found) - len(counted), "killed": killed,
               "survived": len(survivors), "score_percent": round(score, 1),
               "per_module": per_module(counted)}  # fmt: skip
    (WORK / "score.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"mutation score {score:.1f} % ({killed} of {len(counted)} killed, "
          f"{summary['equivalent']} equivalent; target {args.target:g} %)")  # fmt: skip
    return 0 if score >= args.target and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
