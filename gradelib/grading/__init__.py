"""Sandboxed, parallel, tamper-evident autograding of nbgrader assignments.

``python -m gradelib.grading <step> --course DIR ...`` (see ``cli.py``) runs the
instructor's workflow on a course directory outside the repository. Modules, one purpose
each: ``cells`` (nbgrader metadata; the notebook actually graded), ``sandbox`` (bubblewrap
and resource limits), ``kernel`` (the sandboxed in-kernel run), ``verify`` (the checks
re-run in a fresh process), ``tamper`` (comparison with the release, code scan),
``pipeline`` (one submission in, plain data out; pools, Dask, gradebook), ``cli``.
"""
