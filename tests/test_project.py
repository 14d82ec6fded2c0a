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


SAMPLES = ("gm", "ae", "pixelcnn", "vae", "gan", "wgan", "diffusion")


def test_readme_and_first_page_show_a_sample_figure_of_each_chapter():
    intro = (REPO / "book" / "intro.md").read_text()
    readme = (REPO / "README.md").read_text()
    for name in SAMPLES:
        assert f":name: intro-sample-{name}" in intro, f"intro.md lacks the {name} sample figure"
        path = f"book/samples/{name}.png"
        assert (REPO / path).is_file(), f"{path} is missing: run `make samples`"
        assert f"]({path})" in readme, f"README.md does not show {path}"


def _hidden_test_cells():
    import json

    for notebook in sorted((REPO / "solutions").glob("*/*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade") and cell["cell_type"] == "code":
                yield notebook.parent.name, cell["metadata"]["nbgrader"]["grade_id"], "".join(cell["source"])


def test_no_test_cell_ends_with_an_expression_nbgrader_would_read_as_a_score():
    """nbgrader takes a number displayed by a graded cell as its partial credit: every test
    cell must end with a statement (an assignment), a ``print``, or a call of a ``check_*``
    function declared to return None (the training checks' results are assigned)."""
    import ast
    import importlib

    offenders = []
    for assignment, grade_id, source in _hidden_test_cells():
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        last = ast.parse(code).body[-1]
        if not isinstance(last, ast.Expr):
            continue
        call = last.value
        name = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None
        checks = importlib.import_module(f"gradelib.checks.{assignment}")
        returns = getattr(getattr(checks, name or "", None), "__annotations__", {}).get("return", "?")
        if name == "print":
            continue
        if name is None or not name.startswith("check_") or returns not in (None, "None"):
            offenders.append(f"{assignment}/{grade_id}: {ast.unparse(last)}")
    assert not offenders, f"test cells that would display a value: {offenders}"


def test_every_chapter_ends_with_a_summary_linking_its_homework():
    """Each chapter has a Summary section and a {download} link to a student notebook."""
    import re

    for chapter in sorted((REPO / "book").glob("*.md")):
        if chapter.stem == "intro":
            continue
        text = chapter.read_text()
        assert "\n## Summary\n" in text, f"{chapter.name} has no Summary section"
        summary = text.split("\n## Summary\n", 1)[1]
        links = re.findall(r"\{download\}`[^`<]*<\.\./(notebooks/\w+/\w+\.ipynb)>`", summary)
        assert links, f"{chapter.name}: the summary does not link a homework notebook"
        for link in links:
            assert (REPO / link).is_file(), f"{chapter.name} links {link}, which does not exist"
