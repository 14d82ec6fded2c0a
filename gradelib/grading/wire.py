"""The wire format between the trusted checker and the sandboxed student process.

A message is a frame: an 8-byte big-endian length, then that many bytes of a safetensors
blob whose metadata holds one JSON document (the message) and whose tensors are the message's
tensors. Nothing is ever unpickled: JSON gives the structure, safetensors the raw tensor
bytes with a declared dtype and shape. The trusted side owns the framing: it reads exactly
one frame per request, under a size cap and a clock, and validates what it decodes.

Plain data, in both directions:

- ``None``, ``bool``, ``int``, ``float`` (``inf``/``nan`` included), ``str``;
- ``list``/``tuple``/``dict`` with ``str`` keys, nested at most ``MAX_DEPTH`` deep;
- ``torch.Tensor`` (CPU, a dtype in ``DTYPES``), sent as a safetensors entry;
- tagged dicts for what is not data: ``{"__handle__": n}`` (an object that stays in the
  sandbox), ``{"__generator__": ...}`` (a ``torch.Generator`` sent by its state),
  ``{"__portable__": spec}`` (a public object to rebuild, with its state dict).

This file imports only the standard library, torch and safetensors: it is mounted into the
sandbox beside ``harness.py``, without the rest of ``gradelib.grading``.
"""

from __future__ import annotations

import json
import math
import struct

import torch
from safetensors.torch import load as _load_tensors
from safetensors.torch import save as _save_tensors

MAX_DEPTH = 12
MAX_ITEMS = 100_000
MAX_STRING = 1_000_000
DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
          "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


class WireError(ValueError):
    """A frame or a message that does not follow the format (too large, malformed, a type
    that is not plain data)."""


def _plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU tensor of the base class, detached, without running subclass code."""
    with torch._C.DisableTorchFunction():
        plain = torch.Tensor.as_subclass(value, torch.Tensor)
        plain = torch.Tensor.detach(plain)
        if plain.is_complex() or str(plain.dtype).replace("torch.", "") not in DTYPES:
            raise WireError(f"tensor dtype {plain.dtype} is not sent; expected one of {sorted(DTYPES)}")
        return torch.Tensor.contiguous(torch.Tensor.to(plain, device="cpu", copy=True))


def encode(message, tensor_budget: int) -> bytes:
    """The frame of ``message`` (plain data, see the module docstring).

    Raises:
        WireError: ``message`` holds something that is not plain data, or its tensors exceed
            ``tensor_budget`` bytes.
    """
    tensors: dict[str, torch.Tensor] = {}
    count = [0]
    total = [0]

    def pack(value, depth: int):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise WireError("message nested too deep or too large")
        if value is None or type(value) in (bool, str):
            if type(value) is str and len(value) > MAX_STRING:
                raise WireError(f"string of {len(value)} characters exceeds {MAX_STRING}")
            return value
        if type(value) is int:
            return value if abs(value) < 2**62 else {"__float__": repr(float(value))}
        if type(value) is float:
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, torch.Tensor):
            plain = _plain_tensor(value)
            total[0] += plain.numel() * plain.element_size()
            if total[0] > tensor_budget:
                raise WireError(f"tensors exceed {tensor_budget} bytes")
            key = f"t{len(tensors)}"
            tensors[key] = plain
            return {"__tensor__": key}
        if type(value) in (list, tuple):
            items = [pack(v, depth + 1) for v in value]
            return items if type(value) is list else {"__tuple__": items}
        if type(value) is dict:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    raise WireError(f"dict key of type {type(k).__name__}; expected str")
                if k in ("__tensor__", "__tuple__", "__float__"):
                    raise WireError(f"dict key {k!r} is reserved")
                out[k] = pack(v, depth + 1)
            return out
        raise WireError(f"value of type {type(value).__module__}.{type(value).__qualname__} is not plain data")

    document = json.dumps(pack(message, 0), allow_nan=False)
    if not tensors:  # safetensors needs one tensor at least
        tensors["_"] = torch.zeros(0)
    blob = _save_tensors(tensors, metadata={"message": document})
    return struct.pack(">Q", len(blob)) + blob


def decode(blob: bytes):
    """The message of a frame's payload (the bytes after the length).

    Raises:
        WireError: the payload is not a safetensors blob with a JSON message, a tensor it
            names is missing, or a value is not plain data.
    """
    try:
        header_len = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + header_len])
        document = json.loads(header["__metadata__"]["message"])
        tensors = _load_tensors(blob)
    except Exception as error:  # noqa: BLE001 - anything malformed is one kind of error
        raise WireError(f"malformed frame: {type(error).__name__}: {str(error)[:200]}") from None
    count = [0]

    def unpack(value, depth: int):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise WireError("message nested too deep or too large")
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [unpack(v, depth + 1) for v in value]
        if type(value) is dict:
            if "__tensor__" in value:
                key = value["__tensor__"]
                if type(key) is not str or key not in tensors or len(value) != 1:
                    raise WireError(f"tensor reference {key!r} is not in the frame")
                return tensors[key].clone()
            if "__tuple__" in value:
                if type(value["__tuple__"]) is not list or len(value) != 1:
                    raise WireError("malformed tuple")
                return tuple(unpack(v, depth + 1) for v in value["__tuple__"])
            if "__float__" in value:
                try:
                    return float(value["__float__"])
                except (TypeError, ValueError):
                    raise WireError("malformed float") from None
            return {k: unpack(v, depth + 1) for k, v in value.items()}
        raise WireError(f"value of JSON type {type(value).__name__} is not plain data")

    return unpack(document, 0)


def read_frame(read, max_bytes: int) -> bytes:
    """The payload of the next frame from ``read(n)`` (a function returning up to n bytes).

    Raises:
        WireError: the declared length exceeds ``max_bytes``.
        EOFError: the stream ends before the frame does.
    """
    head = _read_exactly(read, 8)
    (length,) = struct.unpack(">Q", head)
    if length > max_bytes:
        raise WireError(f"a reply of {length} bytes exceeds the cap of {max_bytes} bytes")
    return _read_exactly(read, length)


def _read_exactly(read, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = read(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError(f"stream ended {remaining} bytes before the frame did")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
