"""Argument validation for public functions: clear errors instead of deep torch tracebacks.

Every public function of :mod:`gradelib` checks its tensor arguments with these helpers, so
that a wrong shape, dtype or value range raises a :class:`TypeError` or :class:`ValueError`
that names the argument, what was expected and what was given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "require_tensor",
    "require_shape",
    "require_same_shape",
    "require_in_range",
    "require_binary",
    "require_positive_int",
    "require_choice",
    "require_generator",
]


def require_tensor(
    name: str,
    value: object,
    *,
    ndim: int | Sequence[int] | None = None,
    floating: bool | None = None,
) -> torch.Tensor:
    """Return ``value`` if it is a tensor of the expected rank and kind, else raise.

    Args:
        name: the argument's name, used in the error message.
        value: what the caller passed.
        ndim: the accepted number of dimensions (an int or a sequence of ints), or None.
        floating: True requires a floating-point dtype, False an integer or bool dtype.

    Raises:
        TypeError: ``value`` is not a ``torch.Tensor`` or has the wrong kind of dtype.
        ValueError: ``value`` has the wrong number of dimensions.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            expected = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {expected} dimension(s), got shape {tuple(value.shape)}"
            )
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    if floating is False and value.is_floating_point():
        raise TypeError(f"{name} must have an integer dtype, got {value.dtype}")
    return value


def require_shape(name: str, value: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise ValueError unless ``value.shape`` matches ``shape`` (None matches any size)."""
    actual = tuple(value.shape)
    ok = len(actual) == len(shape) and all(e is None or e == a for e, a in zip(shape, actual))
    if not ok:
        expected = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {actual}")


def require_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise ValueError unless two tensors have identical shapes (no silent broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def require_in_range(name: str, value: torch.Tensor, low: float, high: float) -> None:
    """Raise ValueError unless every element lies in ``[low, high]`` (NaN fails too)."""
    if value.numel() == 0:
        return
    v = value.detach()
    bad = ~((v >= low) & (v <= high))
    if bool(bad.any()):
        raise ValueError(
            f"{name} must have values in [{low}, {high}], got values in "
            f"[{float(v.min())}, {float(v.max())}]"
            + (" including NaN" if bool(torch.isnan(v).any()) else "")
        )


def require_binary(name: str, value: torch.Tensor) -> None:
    """Raise ValueError unless every element is exactly 0 or 1 (binarized images)."""
    v = value.detach()
    if not bool(((v == 0) | (v == 1)).all()):
        raise ValueError(
            f"{name} must be binarized (values in {{0, 1}}), got values such as "
            f"{v[(v != 0) & (v != 1)].flatten()[:3].tolist()}"
        )


def require_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int (not a bool), else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def require_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def require_generator(name: str, value: object) -> torch.Generator:
    """Return ``value`` if it is a ``torch.Generator`` (randomness is passed in), else raise.

    Raises:
        TypeError: ``value`` is not a ``torch.Generator`` (e.g. a seed, or None).
    """
    if not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator, got {type(value).__name__}")
    return value
