"""Reference implementations of graded functions, one module per assignment (instructor side)."""
