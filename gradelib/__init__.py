"""gradelib: reference implementations and autograder checks for *Deep Generative Models,
an executable course*.

Modules, one model family each:

- :mod:`gradelib.data`: embedded MNIST (default), full MNIST (opt-in), 2-D Gaussian toys.
- :mod:`gradelib.device`: device selection and seeding.
- :mod:`gradelib.plotting`: image grids, loss curves, 2-D scatter plots.
- :mod:`gradelib.mixture`: syllabus §1, maximum likelihood for a 1-D Gaussian mixture.
- :mod:`gradelib.autoencoders`: syllabus §2 (``hw1_autoencoders``).
- :mod:`gradelib.pixelcnn`: syllabus §3 (``hw2_pixelcnn``).
- :mod:`gradelib.vae`: syllabus §4 (``hw3_vae``).
- :mod:`gradelib.gan`: syllabus §5 (``hw4_gan``), with :mod:`gradelib.digit_classifier`
  to judge generated digits.
- :mod:`gradelib.wgan`: syllabus §6 (``hw5_wgan``).
- :mod:`gradelib.diffusion`: syllabus §8 (the chapter's DDPM; ``hw7_diffusion`` is flow matching).
- :mod:`gradelib.checks`: the autograder checks, one module per assignment.
"""

from gradelib import (
    autoencoders,
    data,
    device,
    diffusion,
    digit_classifier,
    gan,
    mixture,
    pixelcnn,
    vae,
    validation,
    wgan,
)

__version__ = "0.1.0"

#: The registry of model families, one module each, in syllabus order. Everything that needs
#: the list reads it here: the grading pipeline's own-work rule (``grading/own_work.py``) and
#: the public objects a check may send to student code (``checks/assertions.portable``).
FAMILIES = ("mixture", "autoencoders", "pixelcnn", "vae", "gan", "wgan", "diffusion")
#: The other student-facing modules (data, devices, plots, argument checks, the judge of
#: generated digits).
SUPPORT = ("data", "device", "plotting", "validation", "digit_classifier")

__all__ = [
    "autoencoders", "data", "device", "diffusion", "digit_classifier", "gan", "mixture", "pixelcnn",
    "vae", "validation", "wgan", "__version__", "FAMILIES", "SUPPORT",
]
