"""gradelib.training: the step clock leaves out monitoring time; monitors run on schedule in
eval mode and leave the modules training; the device of a module."""

from __future__ import annotations

import time

import torch
from torch import nn

from gradelib.training import TrainingClock, device_of, evaluating, monitor_step


def test_clock_leaves_out_paused_time():
    clock = TrainingClock()
    time.sleep(0.05)
    with clock.paused() as at_pause:
        time.sleep(0.3)
    assert 0.04 < at_pause < 0.25
    assert 0.04 < clock.seconds < 0.25, "the paused 0.3 s must not count as training time"


def test_monitor_runs_on_schedule_in_eval_mode_and_restores_training():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net.train()
    seen = []

    def monitor(step, seconds):
        seen.append((step, net.training, torch.is_grad_enabled()))
        return step

    clock, history = TrainingClock(), {"monitor": []}
    for step in range(1, 8):
        monitor_step(step, 7, monitor, 3, clock, history, net)
    assert seen == [(3, False, False), (6, False, False), (7, False, False)]
    assert history["monitor"] == [3, 6, 7] and net.training
    monitor_step(1, 7, None, 1, clock, history, net)  # no monitor: nothing happens
    assert history["monitor"] == [3, 6, 7]


def test_evaluating_and_device_of():
    net = nn.Linear(3, 1)
    with evaluating(net):
        assert not net.training
    assert net.training
    assert device_of(net) == torch.device("cpu") and device_of(nn.ReLU()) == torch.device("cpu")
