"""Reference implementations of the graded functions, one module per assignment (instructor side only)."""
