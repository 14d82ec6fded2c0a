"""Sandboxed, parallel, tamper-evident autograding of nbgrader assignments.

``python -m gradelib.grading <step> --course DIR ...`` (see ``cli.py``) runs the
instructor's workflow on a course directory outside the repository. Modules, one purpose
each: ``cells`` (nbgrader metadata; the notebook actually graded), ``sandbox`` (bubblewrap
and resource limits), ``kernel`` (the sandboxed in-kernel run: the student's feedback),
``wire`` (the plain-data format between trusted and untrusted processes), ``harness`` (the
student's code in a sandboxed process, answering calls), ``remote`` (the trusted side's
client and proxies), ``trusted`` (the hidden checks, run where no student code runs: the
grade), ``own_work`` (graded names bound to gradelib's code), ``tamper`` (comparison with
the release, code scan), ``sanitize`` (output caps; notebooks and feedback pages defused),
``similarity`` (copies of the reference, near-identical pairs), ``pipeline`` (one submission in, plain data out; pools, Dask,
gradebook), ``cli``.

The invariant: no grade, comparison, answer-key lookup or metric is computed in a process
that has executed student code (``trusted.py``).
"""
