"""The project's own promises: the README's two commands, CI calls the test command, and
the conda environment lists exactly the packages of pyproject.toml."""

from __future__ import annotations

import re

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conftest import REPO


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = list(project["project"]["dependencies"])
    for group in project.get("dependency-groups", {}).values():
        requirements += [r for r in group if isinstance(r, str)]
    return {re.sub(r"\s+", "", r) for r in requirements}


def test_environment_yml_matches_pyproject():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    conda_requirements = {re.sub(r"\s+", "", r) for r in pip_section if r != "-e ."}
    assert "-e ." in pip_section, "environment.yml must install gradelib itself (-e .)"
    missing = _pyproject_requirements() - conda_requirements
    extra = conda_requirements - _pyproject_requirements()
    assert not missing and not extra, f"missing in environment.yml: {missing}; extra: {extra}"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.MULTILINE)
    makefile = (REPO / "Makefile").read_text()
    for target in ("book:", "test:", "uv:", "release:"):
        assert re.search(rf"^{target}", makefile, flags=re.MULTILINE), target


def test_jupyter_book_is_pinned_below_2():
    assert "jupyter-book>=1,<2" in _pyproject_requirements()


def test_every_toc_entry_exists_and_every_chapter_is_in_the_toc():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (REPO / f"{f}.md").exists(), f"_toc.yml lists {f} but {f}.md does not exist"
    on_disk = {f"book/{p.stem}" for p in (REPO / "book").glob("*.md")}
    assert on_disk == set(files), f"chapters missing from _toc.yml: {on_disk - set(files)}"
