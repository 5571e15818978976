#!/usr/bin/env python3
"""Offline check of the Kubernetes manifests under k8s/ (run by `make k8s-validate`).

1. Every kustomization under k8s/ (components excepted: they are built inside the overlays
   that name them) is built with kustomize (`kubectl kustomize`, or a
   `kustomize` binary) in a copy of k8s/ that holds a placeholder secret, and every resource
   it renders is validated, strictly (unknown fields are errors), against the Kubernetes JSON
   schemas bundled with kubernetes-validate, for each version asked for, and must lie in the
   namespace higgsbench. Unlike that package's CLI, a kind without a schema (a typo, a CRD) is
   an error, not a warning. kustomize itself rejects what does not build: a missing file, a
   folder without kustomization.yaml, a patch whose target does not exist. Patches are checked
   as part of what the overlays that use them render.
2. What no build can see: every YAML file under k8s/ is named by some kustomization.yaml (none
   lies unused), and none names a remote base (the builds must stay offline).

Without kubectl or kustomize step 1 is skipped, saying so (--require-build: fails). Nothing here
touches the network or a cluster. Needs PyYAML and kubernetes-validate.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

K8S_DIR = Path(__file__).resolve().parent
DEFAULT_VERSIONS = ("1.30", "1.37")
NAMESPACE = "higgsbench"
# Made by `make k8s-secret`, ignored by git; the builds here get a placeholder instead.
SECRET_FILE = "base/spark-secret.txt"
PLACEHOLDER_SECRET = "placeholder-for-validation-only"


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def is_component(kdir: Path) -> bool:
    """A kustomize Component: not built alone, only as part of an overlay naming it."""
    data = yaml.safe_load((kdir / "kustomization.yaml").read_text()) or {}
    return data.get("kind") == "Component"


def references(root: Path) -> list[tuple[Path, str, str]]:
    """(kustomization.yaml, key, entry) for every file or folder a kustomization names."""
    out = []
    for kdir in kustomization_dirs(root):
        kfile = kdir / "kustomization.yaml"
        data = yaml.safe_load(kfile.read_text()) or {}
        for key in ("resources", "components", "patchesStrategicMerge", "crds", "configurations"):
            out += [(kfile, key, e) for e in data.get(key) or [] if isinstance(e, str)]
        patches = [p for p in data.get("patches") or [] if isinstance(p, dict) and "path" in p]
        out += [(kfile, "patches", p["path"]) for p in patches]
        for key in ("secretGenerator", "configMapGenerator"):
            for gen in data.get(key) or []:
                for entry in [*(gen.get("files") or []), *(gen.get("envs") or [])]:
                    out.append((kfile, key, entry.split("=", 1)[-1]))
    return out


def resource_files(root: Path) -> list[Path]:
    """The manifest files kustomizations name as resources: whole resources, not patches."""
    files = {(k.parent / e).resolve() for k, key, e in references(root) if key == "resources"}
    return sorted(p for p in files if p.is_file())


def remote_errors(root: Path) -> list[str]:
    """Kustomizations that name a remote base, which kustomize would fetch."""
    return [
        f"{kfile.relative_to(root)}: {key} names a remote {entry!r}"
        for kfile, key, entry in references(root)
        if "://" in entry or entry.startswith(("github.com/", "git@"))
    ]


def orphan_errors(root: Path) -> list[str]:
    """YAML files that no kustomization names, and components that no overlay names: no
    build would ever check them."""
    named = {(kfile.parent / entry).resolve() for kfile, _, entry in references(root)}
    files = [
        f"{path.relative_to(root)}: not named by any kustomization.yaml"
        for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")])
        if path.name != "kustomization.yaml" and path.resolve() not in named
    ]
    components = [
        f"{kdir.relative_to(root)}: a component no kustomization.yaml names"
        for kdir in kustomization_dirs(root)
        if is_component(kdir) and kdir.resolve() not in named
    ]
    return files + components


def describe(doc: dict) -> str:
    return f"{doc['kind'].lower()}/{doc.get('metadata', {}).get('name', '?')}"


def schema_errors(doc: dict, versions: list[str]) -> list[str]:
    import kubernetes_validate as kv

    errors = []
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top)"
            errors.append(f"{describe(doc)} against {version}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{describe(doc)}: {e.message}")
        except kv.VersionNotSupportedError as e:
            errors.append(e.message)
    if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE:
        errors.append(f"{describe(doc)} is outside namespace {NAMESPACE}")
    return errors


def find_kustomize() -> list[str] | None:
    """The command that builds a kustomization folder, or None."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(root: Path, command: list[str]) -> dict[str, list[dict] | str]:
    """Build every kustomization in a copy of root with a placeholder secret: folder -> the
    rendered resources, or the error text when the build failed."""
    out: dict[str, list[dict] | str] = {}
    with tempfile.TemporaryDirectory(prefix="k8s-validate-") as tmp:
        copy = Path(tmp) / "k8s"
        skip = shutil.ignore_patterns("__pycache__", Path(SECRET_FILE).name)  # never the real one
        shutil.copytree(root, copy, ignore=skip)
        (copy / SECRET_FILE).write_text(PLACEHOLDER_SECRET)
        for kdir in (d for d in kustomization_dirs(copy) if not is_component(d)):
            name = str(kdir.relative_to(copy))
            proc = subprocess.run(
                [*command, str(kdir)], capture_output=True, text=True, timeout=120
            )
            if proc.returncode != 0:
                out[name] = proc.stderr.strip() or f"exit status {proc.returncode}"
            else:
                out[name] = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-k",
        "--kubernetes-version",
        action="append",
        dest="versions",
        help=f"schema version, repeatable (default: {' '.join(DEFAULT_VERSIONS)})",
    )
    parser.add_argument("--root", type=Path, default=K8S_DIR, help="the k8s folder")
    parser.add_argument(
        "--require-build", action="store_true", help="fail, not skip, when kustomize cannot be run"
    )
    args = parser.parse_args(argv)
    versions = args.versions or list(DEFAULT_VERSIONS)
    root = args.root.resolve()
    failed = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failed
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")

    if not kustomization_dirs(root):
        report(False, str(root), "no kustomization.yaml found")
    remote = remote_errors(root)
    for e in remote:
        report(False, "kustomization", e)
    command = find_kustomize()
    if command is None or remote:
        why = "a remote base is named" if remote else "no kubectl or kustomize on PATH"
        report(not args.require_build and not remote, "build", f"skipped ({why})")
    else:
        for name, built in render(root, command).items():
            if isinstance(built, str):
                report(False, f"build {name}", built)
                continue
            errors = [e for d in built for e in schema_errors(d, versions)]
            for e in errors:
                report(False, f"build {name}", e)
            if not errors:
                what = ", ".join(map(describe, built))
                report(True, f"build {name}", f"{what} ({', '.join(versions)})")

    errors = orphan_errors(root)
    for e in errors:
        report(False, "kustomization", e)
    if not errors:
        report(True, "kustomization", "every YAML file under the root is named by one")

    print(f"{'FAILED' if failed else 'passed'}: {failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
