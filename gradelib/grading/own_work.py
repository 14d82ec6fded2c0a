"""Own work: a graded name must not be bound to one of ``gradelib``'s implementations.

The trusted checker (``trusted.py``) judges what a student's function computes; this module
judges where it comes from. ``own_work_static`` reads the student's code (in the trusted
process, as text: it never runs it) for imports of a ``gradelib`` module that defines a
function or class of the same name as a graded one (``from gradelib.autoencoders import
reconstruction_loss as f``, ``import gradelib.autoencoders as g``,
``importlib.import_module("gradelib.autoencoders")``, ``__import__``). The references the
hidden checks compare against live in ``gradelib.checks``, which the sandbox does not mount,
so only the student-facing family modules can be reached this way.
"""

from __future__ import annotations

import ast

from gradelib import FAMILIES

# Student-facing gradelib modules with the book's code (the families of ``gradelib.FAMILIES``
# and the digit classifier): a graded name that comes from one of them is not the student's
# own work.
REFERENCE_MODULES = tuple(f"gradelib.{name}" for name in (*FAMILIES, "digit_classifier"))


def own_work_static(student_cells: list[tuple[str, str]], names: list[str]) -> dict[str, str]:
    """Graded names whose reference implementation the student's code imports.

    Args:
        student_cells: ``[(label, source)]`` of the student's cells.
        names: the graded names (arguments of the checks).

    Returns:
        ``{name: reason}`` for each name with a reference in ``REFERENCE_MODULES`` that the
        code imports by name, or reaches as an attribute or string while importing (in any
        way) the module that defines it.
    """
    from gradelib.grading.tamper import python_source  # IPython: the parent only

    import importlib

    references: dict[str, list[str]] = {}
    for module_name in REFERENCE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            if hasattr(module, name):
                references.setdefault(name, []).append(module_name)
    found: dict[str, str] = {}
    for label, text in student_cells:
        try:
            tree = ast.parse(python_source(text))
        except SyntaxError:
            continue
        modules_touched: set[str] = set()
        attributes: set[str] = set()
        strings: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if node.module in REFERENCE_MODULES and alias.name in references:
                        found.setdefault(alias.name, f"{label}: imports {full}")
                    modules_touched.add(full if full in REFERENCE_MODULES else node.module)
            elif isinstance(node, ast.Import):
                modules_touched |= {a.name for a in node.names}
            elif isinstance(node, ast.Attribute):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
                modules_touched |= {m for m in REFERENCE_MODULES if m in node.value}
                if node.value.startswith("gradelib"):  # importlib.import_module("gradelib." + name)
                    modules_touched.add("gradelib")
        for name, modules in references.items():
            hit = [m for m in modules if m in modules_touched or
                   ("gradelib" in modules_touched and m.rsplit(".", 1)[1] in attributes | strings)]
            if hit and (name in attributes or name in strings):
                found.setdefault(name, f"{label}: reaches {hit[0]}.{name}")
    return found
