"""gradelib: reference implementations and autograder checks for *Deep Generative Models,
an executable course*.

Modules, one model family each:

- :mod:`gradelib.data`: embedded MNIST (default), full MNIST (opt-in), 2-D Gaussian toys.
- :mod:`gradelib.device`: device selection and seeding.
- :mod:`gradelib.plotting`: image grids, loss curves, 2-D scatter plots.
- :mod:`gradelib.autoencoders`: syllabus §2 (``hw1_autoencoders``).
- :mod:`gradelib.checks`: the autograder checks, one module per assignment.
"""

from gradelib import autoencoders, data, device, validation

__version__ = "0.1.0"

__all__ = ["autoencoders", "data", "device", "validation", "__version__"]
