#!/usr/bin/env python3
"""Offline check of the Kubernetes manifests under k8s/ (run by `make k8s-validate`).

1. Every resource in every manifest file is validated, strictly (unknown fields are errors),
   against the Kubernetes JSON schemas bundled with kubernetes-validate, for each version
   asked for. Unlike that package's CLI, a kind without a schema (a typo, a CRD) is an error,
   not a warning. Patch files are partial resources (no selector, no image): they are
   validated as part of what the overlays that use them render (3).
2. Every kustomization.yaml names only files and folders that exist, and every manifest file
   is named by some kustomization (none lies unused). The one file allowed to be missing is
   base/spark-secret.txt: it is made by `make k8s-secret` and never committed.
3. Where kustomize can run (`kubectl kustomize`, or a `kustomize` binary), each kustomization
   is built in a copy of k8s/ that holds a placeholder secret, and what it renders is
   validated as in 1. Without one this step is skipped, saying so (--require-build: fails).

Nothing here touches the network or a cluster. Needs PyYAML and kubernetes-validate.
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
# Made by `make k8s-secret`, ignored by git; the builds here get a placeholder instead.
SECRET_FILE = "base/spark-secret.txt"
PLACEHOLDER_SECRET = "placeholder-for-validation-only"
KUSTOMIZE_KEYS = ("resources", "components")


def manifest_files(root: Path) -> list[Path]:
    """Every Kubernetes manifest under root (kustomization files are kustomize's, not the API's)."""
    files = [*root.rglob("*.yaml"), *root.rglob("*.yml")]
    return sorted(p for p in files if p.name not in ("kustomization.yaml", "kustomization.yml"))


def kustomization_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def load_documents(text: str, origin: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or not all(k in d for k in ("apiVersion", "kind", "metadata")):
            raise ValueError(f"{origin}: a document without apiVersion, kind and metadata")
    return docs


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
    return errors


def _listed_paths(kustomization: dict) -> list[tuple[str, str]]:
    """(what, relative path) for every file or folder a kustomization names."""
    out = []
    for key in KUSTOMIZE_KEYS:
        out += [(key, p) for p in kustomization.get(key) or []]
    for patch in kustomization.get("patches") or []:
        if isinstance(patch, dict) and "path" in patch:
            out.append(("patches", patch["path"]))
    for key in ("patchesStrategicMerge", "crds", "configurations"):
        out += [(key, p) for p in kustomization.get(key) or [] if isinstance(p, str)]
    for key in ("secretGenerator", "configMapGenerator"):
        for gen in kustomization.get(key) or []:
            for entry in [*(gen.get("files") or []), *(gen.get("envs") or [])]:
                out.append((key, entry.split("=", 1)[-1]))
    return out


def patch_files(root: Path) -> set[Path]:
    """Files that kustomizations use as patches."""
    out = set()
    for kdir in kustomization_dirs(root):
        data = yaml.safe_load((kdir / "kustomization.yaml").read_text()) or {}
        out |= {
            (kdir / entry).resolve()
            for key, entry in _listed_paths(data)
            if key in ("patches", "patchesStrategicMerge")
        }
    return out


def kustomization_errors(root: Path) -> list[str]:
    errors, named = [], set()
    for kdir in kustomization_dirs(root):
        kfile = kdir / "kustomization.yaml"
        data = yaml.safe_load(kfile.read_text()) or {}
        rel = kfile.relative_to(root)
        if data.get("kind", "Kustomization") not in ("Kustomization", "Component"):
            errors.append(f"{rel}: kind {data.get('kind')!r} is not Kustomization")
        for key, entry in _listed_paths(data):
            if "://" in entry or entry.startswith(("github.com/", "git@")):
                errors.append(f"{rel}: {key} names a remote {entry!r}: builds must be offline")
                continue
            target = (kdir / entry).resolve()
            if target.is_dir():
                if not (target / "kustomization.yaml").is_file():
                    errors.append(f"{rel}: {key} {entry!r} is a folder without kustomization.yaml")
            elif target.is_file():
                named.add(target)
            elif target == (root / SECRET_FILE).resolve():
                pass  # generated by `make k8s-secret`, deliberately not in the repository
            else:
                errors.append(f"{rel}: {key} {entry!r} does not exist")
    for path in manifest_files(root):
        if path.resolve() not in named:
            errors.append(f"{path.relative_to(root)}: not named by any kustomization.yaml")
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
        for kdir in kustomization_dirs(copy):
            name = str(kdir.relative_to(copy))
            proc = subprocess.run(
                [*command, str(kdir)], capture_output=True, text=True, timeout=120
            )
            if proc.returncode != 0:
                out[name] = proc.stderr.strip() or f"exit status {proc.returncode}"
            else:
                out[name] = load_documents(proc.stdout, f"build of {name}")
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
    parser.add_argument("--no-build", action="store_true", help="skip the kustomize builds")
    args = parser.parse_args(argv)
    versions = args.versions or list(DEFAULT_VERSIONS)
    root = args.root.resolve()
    failed = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failed
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")

    command = None if args.no_build else find_kustomize()
    files = manifest_files(root)
    patches = patch_files(root)
    if not files:
        report(False, str(root), "no manifests found")
    for path in files:
        rel = path.relative_to(root)
        try:
            docs = load_documents(path.read_text(), str(rel))
        except (yaml.YAMLError, ValueError) as e:
            report(False, str(rel), f"not a Kubernetes manifest: {e}")
            continue
        if path.resolve() in patches:
            where = "checked in the kustomize builds" if command else "NOT checked: no build"
            print(f"ok   {rel}: patch of {', '.join(map(describe, docs))}, {where}")
            continue
        errors = [e for d in docs for e in schema_errors(d, versions)]
        for e in errors:
            report(False, str(rel), e)
        if not errors:
            report(True, str(rel), f"{', '.join(map(describe, docs))} ({', '.join(versions)})")

    errors = kustomization_errors(root)
    for e in errors:
        report(False, "kustomization", e)
    if not errors:
        report(
            True,
            "kustomization",
            f"{len(kustomization_dirs(root))} files name only "
            "existing files, and name every manifest",
        )

    if command is None:
        why = "--no-build" if args.no_build else "no kubectl or kustomize on PATH"
        report(not args.require_build, "kustomize build", f"skipped ({why})")
    else:
        for name, built in render(root, command).items():
            if isinstance(built, str):
                report(False, f"build {name}", built)
                continue
            errors = [e for d in built for e in schema_errors(d, versions)]
            errors += [
                f"{describe(d)} is outside namespace higgsbench"
                for d in built
                if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "higgsbench"
            ]
            for e in errors:
                report(False, f"build {name}", e)
            if not errors:
                report(
                    True,
                    f"build {name}",
                    f"{len(built)} resources valid ({' '.join(command)}, placeholder secret)",
                )

    print(f"{'FAILED' if failed else 'passed'}: {failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
