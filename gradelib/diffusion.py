"""Denoising diffusion probabilistic models (DDPM): the forward process, the loss, the samplers.

The chapter *Diffusion models and flow matching* (syllabus §8) builds on this module. A DDPM
(Ho, Jain & Abbeel, 2020) fixes a Markov chain that adds Gaussian noise in ``T`` small steps,

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I),   t = 1..T,

whose marginals are Gaussian in closed form (Ho et al., Eq. 4), with
``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s <= t} alpha_s``:

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),

so ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` (:func:`q_sample`). A network
``eps_theta(x_t, t)`` learns to predict the noise ``eps``; the ELBO of the reverse chain reduces,
up to per-step weights, to the denoising loss ``E ||eps - eps_theta(x_t, t)||^2`` (Ho et al.,
Eq. 14, :func:`ddpm_loss`). Sampling runs the learned reverse chain from ``x_T ~ N(0, I)``
(Ho et al., Algorithm 2, :func:`ancestral_sample`), or the deterministic DDIM update
(Song, Meng & Ermon, 2021, Eq. 12 with ``eta = 0``, :func:`ddim_sample`) on a subsequence of
the steps.

Time steps are the paper's ``t = 1..T``; :class:`DiffusionSchedule` stores
``alpha_bar`` with a leading ``alpha_bar_0 = 1`` so that ``alpha_bars[t]`` indexes directly.
The networks (:class:`TimeConditionedMLP`) take the time as a float in ``[0, 1]``
(``t / T`` for a DDPM) so that the same class also serves continuous-time models.

Flow matching, classifier-free guidance and higher-order samplers are derived in the chapter
and are the homework's: they are deliberately not here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gradelib.validation import require_generator, require_positive_int, require_tensor

__all__ = [
    "DiffusionSchedule",
    "q_sample",
    "ddpm_loss",
    "ancestral_sample",
    "ddim_sample",
    "sinusoidal_embedding",
    "TimeConditionedMLP",
    "DDPMTrainingConfig",
    "train_ddpm",
    "TOY_DDPM",
    "TOY_DDPM_STEPS",
    "LATENT_DDPM",
    "LatentDDPMConfig",
    "LatentDDPM",
    "train_latent_ddpm",
]


# ----------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class DiffusionSchedule:
    """The variance schedule ``beta_1..beta_T`` of a DDPM and the quantities derived from it.

    Attributes:
        betas: ``(T,)`` float64, ``beta_t`` in ``(0, 1)`` for ``t = 1..T`` (index ``t - 1``).

    Build one with :meth:`linear` (Ho et al., 2020, §4: ``beta`` from 1e-4 to 0.02 over
    ``T = 1000`` steps) or :meth:`cosine` (Nichol & Dhariwal, 2021, Eq. 17).
    """

    betas: torch.Tensor

    def __post_init__(self):
        require_tensor("betas", self.betas, ndim=1, floating=True)
        if len(self.betas) == 0 or not bool(((self.betas > 0) & (self.betas < 1)).all()):
            raise ValueError("betas must be a non-empty (T,) tensor with values in (0, 1), got "
                             f"shape {tuple(self.betas.shape)}")
        object.__setattr__(self, "betas", self.betas.detach().to(torch.float64).cpu())

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4,
               beta_end: float = 0.02) -> "DiffusionSchedule":
        """``beta_t`` linear from ``beta_start`` to ``beta_end`` (Ho et al., 2020, §4).

        Raises:
            TypeError / ValueError: ``num_steps`` not a positive int, betas outside (0, 1).
        """
        require_positive_int("num_steps", num_steps)
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @classmethod
    def cosine(cls, num_steps: int = 1000, offset: float = 0.008,
               max_beta: float = 0.999) -> "DiffusionSchedule":
        """``alpha_bar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``
        (Nichol & Dhariwal, 2021, Eq. 17), betas clipped at ``max_beta``.

        Raises:
            TypeError / ValueError: ``num_steps`` not a positive int.
        """
        require_positive_int("num_steps", num_steps)
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
        alpha_bars = f / f[0]
        betas = 1 - alpha_bars[1:] / alpha_bars[:-1]
        return cls(betas.clamp(max=max_beta))

    @property
    def num_steps(self) -> int:
        """``T``."""
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        """``(T,)`` float64, ``alpha_t = 1 - beta_t`` (index ``t - 1``)."""
        return 1 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        """``(T + 1,)`` float64, ``alpha_bar_t = prod_{s<=t} alpha_s``; ``alpha_bars[0] = 1``."""
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(self.alphas, 0)])


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` values reshaped to ``(B, 1, ..., 1)`` to scale each example of ``like``."""
    return values.to(like).reshape(-1, *([1] * (like.dim() - 1)))  # (B, 1, ..., 1)


def _require_steps(t: object, batch: int, num_steps: int) -> torch.Tensor:
    require_tensor("t", t, ndim=1, floating=False)
    if len(t) != batch:
        raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
    if batch and not bool(((t >= 0) & (t <= num_steps)).all()):
        raise ValueError(f"t must hold steps in 0..{num_steps}, got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t


def q_sample(x0: torch.Tensor, t: torch.Tensor, schedule: DiffusionSchedule,
             eps: torch.Tensor) -> torch.Tensor:
    """Draw ``x_t ~ q(x_t | x_0)`` in one step: ``sqrt(ab_t) x0 + sqrt(1 - ab_t) eps``.

    Ho et al. (2020), Eq. 4 and the reparameterisation above Eq. 9.

    Args:
        x0: ``(B, ...)`` floating data.
        t: ``(B,)`` int64 steps in ``0..T`` (0 returns ``x0``).
        schedule: the betas.
        eps: standard normal noise of ``x0``'s shape.

    Returns:
        ``(B, ...)`` tensor of ``x0``'s shape and dtype.

    Raises:
        TypeError / ValueError: non-floating ``x0``, ``eps`` of another shape, bad ``t``.
    """
    require_tensor("x0", x0, floating=True)
    require_tensor("eps", eps, floating=True)
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have x0's shape {tuple(x0.shape)}, got {tuple(eps.shape)}")
    _require_steps(t, len(x0), schedule.num_steps)
    alpha_bar = schedule.alpha_bars[t.cpu()]  # (B,)
    return (_per_example(alpha_bar.sqrt(), x0) * x0
            + _per_example((1 - alpha_bar).sqrt(), x0) * eps)


def ddpm_loss(model: nn.Module, x0: torch.Tensor, schedule: DiffusionSchedule,
              generator: torch.Generator) -> torch.Tensor:
    """The simplified DDPM objective ``L_simple`` (Ho et al., 2020, Eq. 14, Algorithm 1).

    Draws, in this order and with ``generator`` only, ``t = torch.randint(1, T + 1, (B,))``
    and ``eps = torch.randn(x0.shape)`` (on the generator's device), forms
    ``x_t = q_sample(x0, t, schedule, eps)`` and returns
    ``mean_b sum_i (eps - model(x_t, t / T))^2``: the squared error summed over the data
    dimensions and averaged over the batch (the paper averages over dimensions too, which
    only rescales the step size).

    Args:
        model: ``model(x, t)`` with ``t`` a ``(B,)`` float in ``[0, 1]``; predicts ``eps``.
        x0: ``(B, ...)`` floating training data.
        schedule: the betas.
        generator: the only source of randomness.

    Returns:
        0-d tensor (squared data units), differentiable with respect to the model.

    Raises:
        TypeError: ``x0`` not floating, ``generator`` not a ``torch.Generator``.
    """
    require_tensor("x0", x0, floating=True)
    require_generator("generator", generator)
    batch, steps = len(x0), schedule.num_steps
    t = torch.randint(1, steps + 1, (batch,), generator=generator, device=generator.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)
    x_t = q_sample(x0, t.cpu(), schedule, eps)
    predicted = model(x_t, (t.to(x0) / steps))
    return ((eps - predicted) ** 2).flatten(1).sum(1).mean()


@torch.no_grad()
def ancestral_sample(model: nn.Module, x_T: torch.Tensor, schedule: DiffusionSchedule,
                     generator: torch.Generator) -> torch.Tensor:
    """Run the learned reverse chain from ``x_T`` to ``x_0`` (Ho et al., 2020, Algorithm 2).

    For ``t = T, ..., 1``:
    ``x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps_theta(x_t, t/T)) / sqrt(alpha_t) + sigma_t z``
    with ``sigma_t^2 = beta_t`` and ``z ~ N(0, I)`` drawn with ``generator`` (``z = 0`` at
    ``t = 1``). ``T`` network evaluations.

    Args:
        model: the noise predictor ``model(x, t)``; put in eval mode by the caller.
        x_T: ``(B, ...)`` standard normal starting points.
        schedule: the betas the model was trained with.
        generator: noise of the intermediate steps.

    Returns:
        ``(B, ...)`` samples, ``x_T``'s shape and dtype.

    Raises:
        TypeError: ``x_T`` not floating, ``generator`` not a ``torch.Generator``.
    """
    require_tensor("x_T", x_T, floating=True)
    require_generator("generator", generator)
    betas, alphas, alpha_bars = schedule.betas, schedule.alphas, schedule.alpha_bars
    steps = schedule.num_steps
    x = x_T.clone()
    for t in range(steps, 0, -1):
        time_t = torch.full((len(x),), t / steps, dtype=x.dtype, device=x.device)
        eps = model(x, time_t)
        beta, alpha, alpha_bar = float(betas[t - 1]), float(alphas[t - 1]), float(alpha_bars[t])
        x = (x - beta / math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha)
        if t > 1:
            z = torch.randn(x.shape, generator=generator, device=generator.device).to(x)
            x = x + math.sqrt(beta) * z
    return x


@torch.no_grad()
def ddim_sample(model: nn.Module, x_T: torch.Tensor, schedule: DiffusionSchedule,
                num_steps: int) -> torch.Tensor:
    """The deterministic DDIM sampler (Song, Meng & Ermon, 2021, Eq. 12 with ``eta = 0``).

    On the ``num_steps + 1`` evenly spaced steps ``tau_0 = 0 < ... < tau_S = T`` (rounded),
    each update predicts ``x0_hat = (x - sqrt(1 - ab_t) eps) / sqrt(ab_t)`` and moves to
    ``x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s) eps``. ``num_steps`` network evaluations, no
    noise: the same ``x_T`` always gives the same sample.

    Args:
        model: the noise predictor ``model(x, t)``.
        x_T: ``(B, ...)`` standard normal starting points.
        schedule: the betas the model was trained with.
        num_steps: ``S <= T``, network evaluations.

    Returns:
        ``(B, ...)`` samples.

    Raises:
        TypeError / ValueError: ``x_T`` not floating, ``num_steps`` not in ``1..T``.
    """
    require_tensor("x_T", x_T, floating=True)
    require_positive_int("num_steps", num_steps)
    steps = schedule.num_steps
    if num_steps > steps:
        raise ValueError(f"num_steps must be at most T = {steps}, got {num_steps}")
    taus = torch.linspace(0, steps, num_steps + 1, dtype=torch.float64).round().long().tolist()
    alpha_bars = schedule.alpha_bars
    x = x_T.clone()
    for t, s in zip(taus[:0:-1], taus[-2::-1]):  # (T, tau_{S-1}), ..., (tau_1, 0)
        time_t = torch.full((len(x),), t / steps, dtype=x.dtype, device=x.device)
        eps = model(x, time_t)
        ab_t, ab_s = float(alpha_bars[t]), float(alpha_bars[s])
        x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        x = math.sqrt(ab_s) * x0_hat + math.sqrt(1 - ab_s) * eps
    return x


# ----------------------------------------------------------------------------- networks


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style features of a time ``t`` in ``[0, 1]``: ``(B,)`` to ``(B, dim)``.

    ``[cos(1000 t w_k), sin(1000 t w_k)]`` with ``w_k = max_period^(-k / (dim/2))``, the
    position encoding of Vaswani et al. (2017, §3.5) that DDPM uses for its step index
    (Ho et al., 2020, Appendix B); ``1000 t`` is the step index of a 1,000-step DDPM.

    Raises:
        TypeError / ValueError: ``t`` not a floating ``(B,)`` tensor, ``dim`` not a positive
            even int.
    """
    require_tensor("t", t, ndim=1, floating=True)
    require_positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device,
                                                                 dtype=t.dtype) / half)
    angles = 1000 * t[:, None] * frequencies[None, :]  # (B, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, dim)


class TimeConditionedMLP(nn.Module):
    """``f(x, t, labels)``: a fully connected network of a point, a time and optionally a label.

    The chapter's DDPM noise predictor on the 2-D toys and on autoencoder codes, and (with
    ``num_classes``) a conditional velocity network. The input is ``x`` concatenated with
    :func:`sinusoidal_embedding` of ``t`` (``time_dim`` features) and, when ``num_classes >
    0``, a learned embedding of the label; then ``num_layers`` hidden layers of
    ``hidden_dim`` SiLU units, each also receiving the time-and-label embedding added to its
    input (as the residual blocks of DDPM's U-Net add it), and a linear output of ``x``'s
    size.

    Labels run over ``0..num_classes``: the extra index ``num_classes`` is the **null
    label**, "no label", for which the embedding table has its own row.

    Args:
        data_dim: size of ``x`` (``(B, data_dim)`` in and out).
        hidden_dim: width of the hidden layers.
        num_layers: number of hidden layers (>= 1).
        time_dim: number of sinusoidal time features (even).
        num_classes: number of real labels; 0 for an unconditional network.

    Raises:
        TypeError / ValueError: sizes that are not positive ints (``num_classes`` >= 0),
            odd ``time_dim``.
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
                 time_dim: int = 32, num_classes: int = 0):
        super().__init__()
        self.data_dim = require_positive_int("data_dim", data_dim)
        require_positive_int("hidden_dim", hidden_dim)
        require_positive_int("num_layers", num_layers)
        require_positive_int("time_dim", time_dim)
        if time_dim % 2:
            raise ValueError(f"time_dim must be even, got {time_dim}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        self.num_classes, self.time_dim = num_classes, time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden_dim), nn.SiLU(),
                                      nn.Linear(hidden_dim, hidden_dim))
        self.label_embedding = (nn.Embedding(num_classes + 1, hidden_dim) if num_classes
                                else None)
        self.input = nn.Linear(data_dim, hidden_dim)
        self.hidden = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.output = nn.Linear(hidden_dim, data_dim)
        self.activation = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, data_dim)`` points, ``(B,)`` float times in [0, 1], ``(B,)`` int64 labels in
        ``0..num_classes`` (required iff ``num_classes > 0``) to ``(B, data_dim)``.

        Raises:
            TypeError / ValueError: wrong shapes or dtypes, labels out of range or missing.
        """
        require_tensor("x", x, ndim=2, floating=True)
        if x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (B, {self.data_dim}), got {tuple(x.shape)}")
        require_tensor("t", t, ndim=1, floating=True)
        if len(t) != len(x):
            raise ValueError(f"t must have shape ({len(x)},), got {tuple(t.shape)}")
        # the time features of each distinct t once (a sampler passes one t for the batch)
        times, where = torch.unique(t.to(x), return_inverse=True)
        condition = self.time_mlp(sinusoidal_embedding(times, self.time_dim))[where]  # (B, H)
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError(f"labels are required: this network has num_classes = "
                                 f"{self.num_classes} (the null label is {self.num_classes})")
            require_tensor("labels", labels, ndim=1, floating=False)
            if len(labels) != len(x):
                raise ValueError(f"labels must have shape ({len(x)},), got {tuple(labels.shape)}")
            if len(labels) and not bool(((labels >= 0) & (labels <= self.num_classes)).all()):
                raise ValueError(f"labels must be in 0..{self.num_classes} ({self.num_classes} "
                                 f"is the null label), got values in [{int(labels.min())}, "
                                 f"{int(labels.max())}]")
            condition = condition + self.label_embedding(labels.to(x.device))  # (B, H)
        elif labels is not None:
            raise ValueError("labels must be None: this network is unconditional (num_classes = 0)")
        h = self.activation(self.input(x))
        for layer in self.hidden:
            h = self.activation(layer(h + condition))
        return self.output(h)  # (B, data_dim)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DDPMTrainingConfig:
    """Hyperparameters of :func:`train_ddpm`.

    Attributes:
        batch_size: examples per Adam step. 512 on the 2-D toys: ``L_simple`` averages over
            random steps ``t``, so its gradient is noisy and large batches pay for themselves.
        learning_rate: Adam's initial step size, decayed linearly to 0 over the run (the
            samples' precision around narrow modes improves markedly as it decays).
        ema_decay: the weights returned are an exponential moving average of the iterates
            with this decay, as in Ho et al. (2020, Appendix B, 0.9999 over 800k steps); our
            runs are ~1e4 steps, so the average spans the last ~1,000 with 0.999.
        num_steps: ``T`` of the linear schedule (1,000 as in the paper).
    """

    batch_size: int = 512
    learning_rate: float = 2e-3
    ema_decay: float = 0.999
    num_steps: int = 1000


#: The chapter's settings on the 2-D toys (benchmarks/diffusion.py measures them).
TOY_DDPM = DDPMTrainingConfig()
#: Adam steps on the toys, per toy. The modes are found within a few hundred steps; what
#: takes longer is precision (2,000 steps left the ring's samples ~9 std from the centres,
#: 8,000 put 95 % within 3 std on both toys, ~48 s of CPU on this machine).
TOY_DDPM_STEPS = {"ring": 6000, "grid": 8000}
#: The chapter's settings for the DDPM on autoencoder codes of MNIST.
LATENT_DDPM = DDPMTrainingConfig(batch_size=256, learning_rate=1e-3)


def train_ddpm(
    model: nn.Module,
    data: torch.Tensor | Callable[[int, torch.Generator], torch.Tensor],
    steps: int,
    generator: torch.Generator,
    *,
    config: DDPMTrainingConfig = DDPMTrainingConfig(),
    progress: bool = False,
) -> dict[str, object]:
    """Train a noise predictor with :func:`ddpm_loss` and Adam (Ho et al., 2020, Algorithm 1).

    Each step draws a minibatch (``data(batch_size, generator)`` for a sampler such as
    ``ring_mixture().sample``, else ``batch_size`` rows of the tensor ``data`` drawn
    uniformly with replacement using ``generator``), takes one Adam step on ``ddpm_loss``
    (with ``generator``), and updates an exponential moving average of the weights. The
    step size decays linearly to 0. At the end the model holds the averaged weights and is
    put in eval mode.

    Args:
        model: ``model(x, t)`` predicting the noise; trained in place on its device.
        data: a ``(N, ...)`` float tensor of training examples or a sampler.
        steps: Adam steps.
        generator: a CPU ``torch.Generator``, the only source of randomness besides the
            initialisation.
        config: batch size, step size, EMA decay and ``T`` (a linear schedule).
        progress: show a tqdm progress bar.

    Returns:
        ``{"loss": [one float per step], "seconds": training wall time,
        "schedule": the DiffusionSchedule}``.

    Raises:
        TypeError / ValueError: bad ``steps`` or ``generator``, ``data`` neither a floating
            tensor nor callable.
    """
    require_positive_int("steps", steps)
    require_generator("generator", generator)
    if not callable(data):
        require_tensor("data", data, floating=True)
    schedule = DiffusionSchedule.linear(config.num_steps)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    average = copy.deepcopy(model).requires_grad_(False)
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    from tqdm.auto import tqdm

    for _ in tqdm(range(steps), desc="DDPM", disable=None if progress else True, leave=False):
        if callable(data):
            batch = data(config.batch_size, generator).to(device)
        else:
            rows = torch.randint(len(data), (config.batch_size,), generator=generator)
            batch = data[rows].to(device)
        loss = ddpm_loss(model, batch, schedule, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay.step()
        with torch.no_grad():
            for kept, current in zip(average.parameters(), model.parameters()):
                kept.lerp_(current, 1 - config.ema_decay)
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    model.load_state_dict(average.state_dict())
    model.eval()
    return {"loss": losses, "seconds": seconds, "schedule": schedule}


# ----------------------------------------------------------------------------- digits


@dataclass(frozen=True)
class LatentDDPMConfig:
    """Hyperparameters of :func:`train_latent_ddpm`: a DDPM on the codes of an autoencoder.

    Attributes:
        latent_dim: size of the code of :class:`gradelib.autoencoders.Autoencoder`. 16
            numbers keep the decoded digits sharp enough for the digit classifier while the
            denoiser stays a small MLP.
        autoencoder_epochs: passes of the autoencoder over the 4,000 embedded digits.
        hidden_dim: width of the denoiser (:class:`TimeConditionedMLP`).
        num_layers: hidden layers of the denoiser.
        ddpm_steps: Adam steps of the denoiser on the standardised codes. 8,000 steps gave
            69-71 % confident samples (benchmarks/diffusion.py, two seed streams), 4,000 gave
            62 %; 12,000 keeps the whole training within ~140 s of CPU.
        ddpm: batch size, step size, EMA and ``T`` of the denoiser's training.
    """

    latent_dim: int = 16
    autoencoder_epochs: int = 30
    hidden_dim: int = 256
    num_layers: int = 3
    ddpm_steps: int = 12000
    ddpm: DDPMTrainingConfig = LATENT_DDPM


class LatentDDPM(nn.Module):
    """A DDPM in the code space of an autoencoder (latent diffusion, Rombach et al., 2022).

    Codes are standardised per dimension (``(z - code_mean) / code_std``) before the
    denoiser sees them, so that ``N(0, I)`` at ``t = T`` has their scale.

    Args:
        autoencoder: has ``encode`` ``(B, 1, 28, 28) -> (B, D)`` and ``decode`` back.
        denoiser: ``denoiser(z, t)`` predicting the noise on standardised codes.
        code_mean, code_std: ``(D,)`` statistics of the training codes.
        schedule: the betas the denoiser was trained with.
    """

    def __init__(self, autoencoder: nn.Module, denoiser: nn.Module, code_mean: torch.Tensor,
                 code_std: torch.Tensor, schedule: DiffusionSchedule):
        super().__init__()
        self.autoencoder, self.denoiser, self.schedule = autoencoder, denoiser, schedule
        self.register_buffer("code_mean", code_mean.detach().clone())
        self.register_buffer("code_std", code_std.detach().clone())

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, *, sampler: str = "ancestral",
               num_steps: int = 50) -> torch.Tensor:
        """``n`` digits ``(n, 1, 28, 28)`` in [0, 1]: draw codes with the denoiser, decode them.

        ``sampler="ancestral"`` takes ``T`` denoiser evaluations (``num_steps`` is ignored),
        ``"ddim"`` takes ``num_steps``. Noise comes from ``generator`` only.

        Raises:
            TypeError / ValueError: bad ``n``, ``generator`` or ``sampler``.
        """
        require_positive_int("n", n)
        require_generator("generator", generator)
        if sampler not in ("ancestral", "ddim"):
            raise ValueError(f"sampler must be 'ancestral' or 'ddim', got {sampler!r}")
        self.eval()
        device = self.code_mean.device
        z_T = torch.randn(n, len(self.code_mean), generator=generator,
                          device=generator.device).to(device)  # (n, D)
        if sampler == "ancestral":
            z = ancestral_sample(self.denoiser, z_T, self.schedule, generator)
        else:
            z = ddim_sample(self.denoiser, z_T, self.schedule, num_steps)
        return self.autoencoder.decode(z * self.code_std + self.code_mean)  # (n, 1, 28, 28)


def train_latent_ddpm(images: torch.Tensor, seed: int = 0, *,
                      config: LatentDDPMConfig = LatentDDPMConfig(),
                      progress: bool = False) -> tuple[LatentDDPM, dict[str, object]]:
    """Train an autoencoder on ``images``, then a DDPM on its standardised codes.

    Seeds torch's global generator with ``seed`` before building each network; shuffling,
    minibatches and noise come from ``make_generator(seed)`` and ``make_generator(seed + 1)``.

    Args:
        images: ``(N, 1, 28, 28)`` float32 in [0, 1] (embedded MNIST's training digits).
        seed: seeds both stages.
        config: code size, epochs, denoiser size and training settings.
        progress: show tqdm progress bars.

    Returns:
        ``(model, history)`` with ``history = {"autoencoder_loss": per-epoch losses,
        "autoencoder_seconds", "ddpm_loss": per-step losses, "ddpm_seconds"}``.

    Raises:
        TypeError / ValueError: bad ``images`` (see :func:`gradelib.autoencoders.train_autoencoder`).
    """
    from gradelib.autoencoders import Autoencoder, train_autoencoder
    from gradelib.device import get_device, make_generator

    device = get_device()
    torch.manual_seed(seed)
    autoencoder = Autoencoder(config.latent_dim).to(device)
    start = time.perf_counter()
    autoencoder_loss = train_autoencoder(autoencoder, images, config.autoencoder_epochs,
                                         make_generator(seed))
    autoencoder_seconds = time.perf_counter() - start
    with torch.no_grad():
        codes = torch.cat([autoencoder.encode(images[i : i + 1000].to(device))
                           for i in range(0, len(images), 1000)])  # (N, D)
    mean, std = codes.mean(0), codes.std(0)
    torch.manual_seed(seed)
    denoiser = TimeConditionedMLP(config.latent_dim, config.hidden_dim, config.num_layers).to(device)
    trained = train_ddpm(denoiser, (codes - mean) / std, config.ddpm_steps,
                         make_generator(seed + 1), config=config.ddpm, progress=progress)
    model = LatentDDPM(autoencoder, denoiser, mean, std, trained["schedule"])
    return model.eval(), {"autoencoder_loss": autoencoder_loss,
                          "autoencoder_seconds": autoencoder_seconds,
                          "ddpm_loss": trained["loss"], "ddpm_seconds": trained["seconds"]}
