"""The trusted-checker protocol: the wire format, the sandboxed harness, the proxies.

These tests start real student processes (``harness.py`` in a sandbox) and talk to them the
way the trusted checker does; the adversarial battery (``test_grading_battery.py``) grades
whole submissions. Every test states what would go wrong if it failed.
"""

from __future__ import annotations

import io
import os
import struct
import time

import pytest
import torch

from gradelib.checks import assertions
from gradelib.checks.assertions import (call_student, call_with_gradients, describe, forbid_autograd, portable,
                                        portable_attribute, seed_student)
from gradelib.device import make_generator
from gradelib.grading import wire
from gradelib.grading.remote import RemoteObject, StudentProcess, StudentProcessFault, stage_harness
from gradelib.grading.sandbox import Limits, Sandbox, bwrap_status, stage_student_library


# ----------------------------------------------------------------------------- wire format

def _round_trip(message):
    frame = wire.encode(message, 10**8)
    return wire.decode(wire.read_frame(io.BytesIO(frame).read, 10**9))


def test_wire_round_trips_plain_data_and_tensors():
    message = {"a": [1, -2.5, float("inf"), None, True, "text", (1, (2, 3))],
               "t": torch.arange(12, dtype=torch.int64).reshape(3, 4),
               "f": torch.randn(2, 3, dtype=torch.float64), "b": torch.tensor([True, False])}
    back = _round_trip(message)
    assert back["a"][:2] == [1, -2.5] and back["a"][2] == float("inf") and back["a"][6] == (1, (2, 3))
    for key in ("t", "f", "b"):
        assert type(back[key]) is torch.Tensor and torch.equal(back[key], message[key])
        assert back[key].dtype == message[key].dtype


class _Sneaky(torch.Tensor):
    def __eq__(self, other):  # always "equal": must not survive the wire
        return True


def test_wire_strips_tensor_subclasses_and_refuses_objects():
    sneaky = torch.zeros(3).as_subclass(_Sneaky)
    back = _round_trip({"x": sneaky})
    assert type(back["x"]) is torch.Tensor
    for bad in (object(), {1: 2}, {"__tensor__": "t0"}, lambda: 1, b"bytes"):
        with pytest.raises(wire.WireError):
            wire.encode({"x": bad}, 10**6)
    with pytest.raises(wire.WireError, match="exceed"):
        wire.encode({"x": torch.zeros(1000)}, 100)


def test_wire_rejects_oversize_and_malformed_frames():
    frame = wire.encode({"x": torch.zeros(1000)}, 10**6)
    with pytest.raises(wire.WireError, match="exceeds the cap"):
        wire.read_frame(io.BytesIO(frame).read, 100)
    for garbage in (b"\x00" * 8, b"not a safetensors blob", struct.pack("<Q", 10**12) + b"{}"):
        with pytest.raises(wire.WireError, match="malformed"):
            wire.decode(garbage)
    with pytest.raises(EOFError):
        wire.read_frame(io.BytesIO(frame[:20]).read, 10**6)


# ----------------------------------------------------------------------------- processes

CELLS = [
    {"label": "setup", "code": "import torch\nfrom torch import nn\nfrom gradelib.device import make_generator"},
    {"label": "student", "code": """
def double(x):
    return 2 * x

def clip_(module, c):
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)

def noise(n, generator):
    return torch.randn(n, generator=generator)

def uses_autograd(x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((x ** 2).sum(), x)
    return g

def square_sum(x):
    return (x ** 2).sum()

class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.layer = nn.Linear(2, width)
    def forward(self, x):
        return self.layer(x)

def not_done(x):
    raise NotImplementedError()

def spin(x):
    while True:
        pass

answer = 0.5
sampled = []
def apply_sampler(sampler, n, generator):
    return sampler(n, generator)
"""},
]


def _process(tmp_path, cells=CELLS, bwrap=False, limits=None) -> StudentProcess:
    workdir = tmp_path / "work"
    workdir.mkdir()
    library = stage_student_library(tmp_path / "library")
    box = Sandbox.create(workdir, limits or Limits(cell_timeout=20), "protocol/test", use_bwrap=bwrap,
                         library=library)
    process = StudentProcess(box, stage_harness(tmp_path / "harness"))
    statuses = process.start(cells, 120)
    assert all(s["status"] == "ok" for s in statuses), statuses
    return process


@pytest.fixture
def student(tmp_path):
    process = _process(tmp_path)
    yield process
    process.close()


def test_calls_return_plain_data_and_proxies(student):
    """A function gives back a plain tensor; a class gives back a proxy whose methods and
    attributes are requests; plain globals come back as values."""
    double = student.get("double")
    assert isinstance(double, RemoteObject) and student.get("answer") == 0.5
    out = double(torch.tensor([1.0, 2.0]))
    assert type(out) is torch.Tensor and out.tolist() == [2.0, 4.0]
    seed_student_hook = assertions._SEED_HOOK.set(student.seed)
    try:
        seed_student(7)
        first = student.get("Net")(3).state_dict()
        seed_student(7)
        second = student.get("Net")(3).state_dict()
    finally:
        assertions._SEED_HOOK.reset(seed_student_hook)
    assert torch.equal(first["layer.weight"], second["layer.weight"]), "seed_student must seed the sandbox"
    net = student.get("Net")(4)
    assert net(torch.zeros(5, 2)).shape == (5, 4)
    info = describe(net)
    assert info["type"].endswith("Net") and any(m["type"].endswith("Linear") for m in info["modules"])
    assert net.training is True and len(list(net.layer.parameters())) == 2


def test_in_place_changes_generators_and_portable_objects_come_back(student):
    """What student code does to the check's own arguments is copied back: clipped weights of
    a portable module, a generator's advanced state; portable samplers are rebuilt inside."""
    layer = portable("torch.nn.Linear", 3, 2)
    with torch.no_grad():
        layer.weight.fill_(5.0)
    assert student.get("clip_")(layer, 0.01) is None
    assert float(layer.weight.detach().abs().max()) == pytest.approx(0.01)
    generator = make_generator(3)
    got = student.get("noise")(4, generator)
    reference_generator = make_generator(3)
    assert torch.equal(got, torch.randn(4, generator=reference_generator))
    assert torch.equal(generator.get_state(), reference_generator.get_state())
    ring = portable("gradelib.data.ring_mixture")
    drawn = student.get("apply_sampler")(portable_attribute(ring, "sample"), 6, make_generator(1))
    assert torch.equal(drawn, ring.sample(6, make_generator(1)))


def test_errors_autograd_rules_and_gradients_cross_as_data(student):
    with pytest.raises(AssertionError, match="NotImplementedError"):
        call_student("not_done", student.get("not_done"), torch.zeros(1))
    with pytest.raises(AssertionError, match="automatic differentiation"):
        with forbid_autograd("uses_autograd"):
            call_student("uses_autograd", student.get("uses_autograd"), torch.ones(2))
    x = torch.tensor([1.0, -2.0])
    out, (grad,) = call_with_gradients("square_sum", student.get("square_sum"), [x], wrt=[0])
    assert float(out) == 5.0 and grad.tolist() == [2.0, -4.0]


def test_a_call_that_never_returns_is_ended_on_the_trusted_clock(student):
    spin = student.get("spin")
    options = assertions.CALL_OPTIONS.set({"deadline_s": 2.0})
    start = time.monotonic()
    try:
        with pytest.raises(StudentProcessFault, match="no reply within"):
            spin(torch.zeros(1))
    finally:
        assertions.CALL_OPTIONS.reset(options)
    assert time.monotonic() - start < 15
    with pytest.raises(StudentProcessFault, match="gone"):
        student.get("double")


FORGER = {"label": "forger", "code": """
import os, struct
# write a well-formed-looking reply on every descriptor before the checker asks anything
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack('>Q', 5) + b'hello')
    except OSError:
        pass
def double(x):
    return 2 * x
"""}


def test_forged_frames_on_the_channel_are_a_fault_not_a_result(tmp_path):
    """A student cell that writes frames to the reply channel cannot make a reply: the
    trusted side reads exactly one frame per request and checks it answers that request."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    box = Sandbox.create(workdir, Limits(cell_timeout=20), "protocol/forger", use_bwrap=False,
                         library=stage_student_library(tmp_path / "library"))
    process = StudentProcess(box, stage_harness(tmp_path / "harness"))
    try:
        with pytest.raises(StudentProcessFault, match="malformed|does not answer|ended"):
            process.start([FORGER], 60)
    finally:
        process.close()


def test_a_cell_that_never_ends_is_found_on_the_cell_clock_not_the_run_budget(tmp_path):
    """A setup cell that blocks the harness's alarm and spins: the trusted side, which hears
    of each cell as it finishes, ends the process after ``cell_timeout`` + the slack, naming
    the cell, long before the run's budget (here 300 s) is spent."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    box = Sandbox.create(workdir, Limits(cell_timeout=2), "protocol/spinner", use_bwrap=False,
                         library=stage_student_library(tmp_path / "library"))
    process = StudentProcess(box, stage_harness(tmp_path / "harness"))
    cells = [{"label": "quick", "code": "x = 1"},
             {"label": "spinner", "code": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                          "while True:\n    pass"},
             {"label": "never", "code": "y = 2"}]
    start = time.monotonic()
    try:
        with pytest.raises(StudentProcessFault, match=r"cell spinner did not finish within 12 s"):
            process.start(cells, 300)
    finally:
        process.close()
    assert time.monotonic() - start < 60, f"the fault came after {time.monotonic() - start:.0f} s"


def test_bwrap_sandbox_has_no_checks_and_no_grading(tmp_path):
    """Inside the sandbox, gradelib is the student-facing copy: its checks (and the
    references and answer keys in them) and the grading pipeline do not exist."""
    available, why = bwrap_status()
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"bubblewrap must run under CI: {why}")
        pytest.skip(f"bubblewrap cannot run here ({why})")
    cells = [{"label": "probe", "code": """
import importlib, gradelib, os
found = []
for name in ('gradelib.checks', 'gradelib.grading', 'gradelib.checks.hw6_exercises'):
    try:
        importlib.import_module(name)
        found.append(name)
    except ImportError:
        pass
listing = sorted(os.listdir(os.path.dirname(gradelib.__file__)))
"""}]
    process = _process(tmp_path, cells, bwrap=True)
    try:
        assert process.get("found") == []
        listing = process.get("listing")
        assert "data.py" in listing and "checks" not in listing and "grading" not in listing
    finally:
        process.close()
