"""Autograder checks, one module per assignment (``gradelib.checks.hw1_autoencoders``, ...).

Hidden test cells of the homework notebooks call these; each check is itself tested in
``tests/`` against the reference and against realistic wrong answers.
"""
