"""Wasserstein GAN: the earth mover's distance, weight clipping and the gradient penalty.

The code of the WGAN chapter (syllabus §6): the distances it computes, the critic's losses,
the two ways of keeping a critic Lipschitz that the chapter shows, the WGAN training loop it
runs on the 2-D toys of :mod:`gradelib.gan`, the experiment on disjoint supports, and the
kernel-MMD generator it compares with. (The homework ``hw5_wgan`` takes the next step,
spectral normalisation and the sliced distance; its references live with its checks.)

The Wasserstein-1 (earth mover's) distance between distributions ``P`` and ``Q`` is the
least expected distance ``E|X - Y|`` over couplings of ``X ~ P`` and ``Y ~ Q``. By the
Kantorovich–Rubinstein duality it equals ``sup_{||f||_L <= 1} E_P[f] - E_Q[f]``, the
supremum over 1-Lipschitz functions (Arjovsky et al., 2017, eq. 3). A WGAN trains a
*critic* ``f`` (a network with unbounded scalar output) to approximate that supremum and
the generator to lower it. The critic is kept Lipschitz either by clipping every weight to
``[-c, c]`` after each step (Arjovsky et al., 2017, Algorithm 1: RMSProp, ``alpha = 5e-5``,
``c = 0.01``, ``m = 64``, ``n_critic = 5``) or by the gradient penalty
``lambda E[(||grad f(x_hat)||_2 - 1)^2]`` on random interpolates ``x_hat`` of real and fake
points (Gulrajani et al., 2017, Algorithm 1: Adam, ``alpha = 1e-4``, ``beta = (0, 0.9)``,
``lambda = 10``, ``n_critic = 5``).

In one dimension the optimal coupling pairs the sorted samples, so between two samples of
equal size ``W1 = mean_i |x_(i) - y_(i)|``. In two dimensions :func:`exact_wasserstein`
solves the transport linear program with POT's ``ot.emd2`` (Flamary et al., 2021).

A generator can also be trained without any adversary, by minimising a kernel maximum mean
discrepancy to the data (:func:`mmd_loss`, :func:`train_mmd`; Li et al., 2015; Dziugaite et
al., 2015), the moment-matching idea that the chapter's comparison includes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from gradelib.training import TrainingClock, device_of, monitor_step
from gradelib.training import progress as training_progress
from gradelib.validation import (
    require_choice,
    require_generator,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "wasserstein_1d",
    "exact_wasserstein",
    "parallel_lines_divergences",
    "critic_loss",
    "generator_loss",
    "clip_weights_",
    "gradient_penalty",
    "WGANTrainingConfig",
    "WGAN_CLIPPING",
    "WGAN_GP",
    "train_wgan",
    "GapExperimentConfig",
    "GAP_EXPERIMENT",
    "segment_sample",
    "gradients_across_gaps",
    "mmd_loss",
    "MMDTrainingConfig",
    "train_mmd",
    "ToyMethod",
    "train_toy",
    "TOY_BUDGET_SECONDS",
    "TOY_TUNING_SEEDS",
    "TOY_HELD_OUT_SEEDS",
    "TOY_COMPARISON",
    "TOY_CHOSEN",
    "TOY_CANDIDATES",
]


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical distributions of two equal-size 1-D samples, by sorting.

    ``W1 = (1/N) sum_i |x_(i) - y_(i)|`` where ``x_(i)`` is the i-th smallest value: in one
    dimension the monotone coupling is optimal (Villani, 2009; Peyré & Cuturi, 2019, §2.6).
    Equal to ``scipy.stats.wasserstein_distance(x, y)``. Differentiable in ``x`` and ``y``.

    Args:
        x, y: ``(N,)`` floating tensors, same shape, N >= 1.

    Returns:
        0-d tensor, in the units of the samples, same dtype as ``x``.

    Raises:
        TypeError / ValueError: not non-empty 1-D floating tensors of one shape.
    """
    require_tensor("x", x, ndim=1, floating=True)
    require_tensor("y", y, ndim=1, floating=True)
    require_same_shape("x", x, "y", y)
    if x.numel() == 0:
        raise ValueError("x and y must hold at least one sample, got shape (0,)")
    return (torch.sort(x).values - torch.sort(y).values).abs().mean()


def exact_wasserstein(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W1 between two point clouds with equal weights, by optimal transport (POT).

    Solves ``min_T sum_ij T_ij |x_i - y_j|_2`` over transport plans with uniform marginals
    with the network simplex of ``ot.emd2`` (Flamary et al., 2021). Cost ``O(N^3)``-ish:
    fine for a few thousand points.

    Args:
        x: ``(N, d)`` floating tensor; y: ``(M, d)``.

    Returns:
        A Python float, in the units of the points (Euclidean ground distance).

    Raises:
        TypeError / ValueError: not non-empty 2-D floating tensors of the same width.
    """
    import ot

    require_tensor("x", x, ndim=2, floating=True)
    require_tensor("y", y, ndim=2, floating=True)
    require_shape("y", y, (None, x.shape[1]))
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"x and y must be non-empty, got shapes {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    a = x.detach().cpu().to(torch.float64).numpy()
    b = y.detach().cpu().to(torch.float64).numpy()
    cost = ot.dist(a, b, metric="euclidean")  # (N, M)
    return float(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=10**7))


def parallel_lines_divergences(theta: float | torch.Tensor) -> dict[str, torch.Tensor]:
    """KL, JS and W1 between ``P = (0, U[0, 1])`` and ``Q_theta = (theta, U[0, 1])``.

    Two uniform distributions on parallel vertical segments (Arjovsky et al., 2017,
    Example 1). For ``theta != 0`` the supports are disjoint: ``KL(P || Q) = +inf``,
    ``JS(P || Q) = log 2`` and ``W1 = |theta|`` (move every point horizontally); at
    ``theta = 0`` all three are 0. Only ``W1`` is continuous in ``theta`` and has a useful
    derivative (``sign(theta)``); JS is constant, with zero gradient, away from 0.

    Args:
        theta: a Python number or a floating tensor of any shape (elementwise).

    Returns:
        ``{"kl": ..., "js": ..., "w": ...}``, tensors of ``theta``'s shape (float64 for a
        Python number), in nats for KL and JS. ``"w"`` is differentiable in ``theta``.

    Raises:
        TypeError: ``theta`` is neither a real number nor a floating tensor.
        ValueError: ``theta`` is not finite.
    """
    if isinstance(theta, bool) or not isinstance(theta, (int, float, torch.Tensor)):
        raise TypeError(f"theta must be a number or a floating tensor, got "
                        f"{type(theta).__name__}")
    if not isinstance(theta, torch.Tensor):
        theta = torch.tensor(float(theta), dtype=torch.float64)
    require_tensor("theta", theta, floating=True)
    if not bool(torch.isfinite(theta).all()):
        raise ValueError("theta must be finite")
    apart = theta.detach() != 0
    zero = torch.zeros_like(theta.detach())
    return {
        "kl": torch.where(apart, math.inf, zero),
        "js": torch.where(apart, math.log(2.0), zero),
        "w": theta.abs(),
    }


def _require_scores(name: str, scores: object) -> torch.Tensor:
    scores = require_tensor(name, scores, floating=True)
    if scores.numel() == 0:
        raise ValueError(f"{name} must hold at least one score, got shape {tuple(scores.shape)}")
    return scores


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's loss ``mean f(fake) - mean f(real)`` (Arjovsky et al., 2017, Algorithm 1).

    Minimising it maximises ``mean f(real) - mean f(fake)``, the critic's estimate of W1
    (up to the Lipschitz constant); a penalty, if any, is added by the caller.

    Args:
        real_scores: critic outputs on real samples, any shape (e.g. ``(B,)``), floating.
        fake_scores: on generated samples, any shape (batch sizes may differ).

    Returns:
        0-d tensor.

    Raises:
        TypeError / ValueError: an argument is not a non-empty floating tensor.
    """
    _require_scores("real_scores", real_scores)
    _require_scores("fake_scores", fake_scores)
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The WGAN generator's loss ``-mean f(G(z))`` (Arjovsky et al., 2017, Algorithm 1).

    Args:
        fake_scores: critic outputs on generated samples, any shape, floating.

    Returns:
        0-d tensor.

    Raises:
        TypeError / ValueError: ``fake_scores`` is not a non-empty floating tensor.
    """
    _require_scores("fake_scores", fake_scores)
    return -fake_scores.mean()


def clip_weights_(critic: nn.Module, c: float) -> None:
    """Clip every parameter of ``critic`` to ``[-c, c]``, in place (Arjovsky et al., 2017,
    Algorithm 1, line 7).

    The parameter tensors keep their identity and storage (so an optimizer holding them
    keeps working); the operation is not recorded by autograd.

    Args:
        critic: any ``nn.Module``; all of ``critic.parameters()`` are clipped, biases too.
        c: the clipping bound, a positive number.

    Returns:
        None.

    Raises:
        TypeError: ``critic`` is not an ``nn.Module`` or ``c`` not a real number.
        ValueError: ``c`` is not positive and finite.
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise TypeError(f"c must be a real number, got {type(c).__name__}")
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"c must be positive and finite, got {c}")
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.clamp_(-c, c)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP's penalty ``mean_i (||grad_x f(x_hat_i)||_2 - 1)^2`` (Gulrajani et al., 2017,
    eq. 3 and Algorithm 1), without the factor ``lambda``.

    ``x_hat = eps * real + (1 - eps) * fake`` are points on straight lines between paired
    real and fake samples; the gradient of the critic's output is taken with respect to
    ``x_hat`` with ``create_graph=True``, so the penalty can be differentiated with respect
    to the critic's parameters. The norm is per example, over all non-batch dimensions.

    Args:
        critic: maps ``(B, ...)`` inputs to ``(B,)`` (or ``(B, 1)``) scores, per example
            (no batch normalisation).
        real, fake: ``(B, ...)`` floating tensors, same shape.
        eps: ``(B, 1, ..., 1)`` (or anything that broadcasts to ``real`` per example), values
            in [0, 1], drawn by the caller (uniformly in the paper).

    Returns:
        0-d tensor, differentiable with respect to the critic's parameters.

    Raises:
        TypeError / ValueError: bad types or shapes, or ``eps`` that does not broadcast.
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
    require_tensor("real", real, floating=True)
    require_tensor("fake", fake, floating=True)
    require_tensor("eps", eps, floating=True)
    require_same_shape("real", real, "fake", fake)
    if real.dim() < 1 or real.shape[0] == 0:
        raise ValueError(f"real must have a non-empty batch dimension, got {tuple(real.shape)}")
    try:
        broadcast = torch.broadcast_shapes(eps.shape, real.shape)
    except RuntimeError as error:
        raise ValueError(f"eps of shape {tuple(eps.shape)} does not broadcast to real's "
                         f"shape {tuple(real.shape)}") from error
    if broadcast != real.shape:
        raise ValueError(f"eps of shape {tuple(eps.shape)} must broadcast to real's shape "
                         f"{tuple(real.shape)}, got {tuple(broadcast)}")
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (gradients,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = gradients.reshape(len(gradients), -1).norm(dim=1)  # (B,)
    return ((norms - 1) ** 2).mean()


@dataclass(frozen=True)
class WGANTrainingConfig:
    """Hyperparameters of :func:`train_wgan`; :data:`WGAN_CLIPPING` and :data:`WGAN_GP` are
    the papers' settings.

    Attributes:
        lipschitz: ``"clip"`` (weight clipping) or ``"gp"`` (gradient penalty).
        optimizer: ``"rmsprop"`` (WGAN: momentum-based optimizers made the clipped critic
            unstable, Arjovsky et al., 2017, §3) or ``"adam"`` (WGAN-GP).
        learning_rate: the step size ``alpha`` of the critic (and of the generator unless
            ``generator_learning_rate`` is set).
        generator_learning_rate: a separate, usually smaller, step size for the generator
            (a two time-scale update rule, Heusel et al., 2017), or None for ``alpha``.
        betas: Adam's ``(beta1, beta2)``; WGAN-GP uses ``(0, 0.9)``. Ignored by RMSProp.
        n_critic: critic updates per generator update (5 in both papers).
        batch_size: ``m``, samples per minibatch (64 in both papers).
        clip: ``c``, the weight-clipping bound (0.01).
        gp_weight: ``lambda``, the penalty's weight (10).
        linear_decay: decay both learning rates linearly to 0 over the run, as Gulrajani
            et al. (2017) do in their CIFAR-10 experiments; on the toys it lets the samples
            settle on the modes instead of jittering around them at the end.
        decay_critic: with ``linear_decay``, decay the critic's step size too (True), or
            only the generator's, so that the critic keeps tracking the data's fine
            structure while the samples settle (False).
    """

    lipschitz: str = "gp"
    optimizer: str = "adam"
    learning_rate: float = 1e-4
    generator_learning_rate: float | None = None
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5
    batch_size: int = 64
    clip: float = 0.01
    gp_weight: float = 10.0
    linear_decay: bool = False
    decay_critic: bool = True


#: Arjovsky et al. (2017), Algorithm 1: RMSProp, alpha = 5e-5, c = 0.01, m = 64, n_critic = 5.
WGAN_CLIPPING = WGANTrainingConfig(lipschitz="clip", optimizer="rmsprop", learning_rate=5e-5)
#: Gulrajani et al. (2017), Algorithm 1: Adam, alpha = 1e-4, betas (0, 0.9), lambda = 10.
WGAN_GP = WGANTrainingConfig(lipschitz="gp", optimizer="adam", learning_rate=1e-4)
def _optimizer(parameters, config: WGANTrainingConfig, lr: float) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr)
    return torch.optim.Adam(parameters, lr=lr, betas=config.betas)


def train_wgan(
    generator: nn.Module,
    critic: nn.Module,
    data_sampler: Callable[[int, torch.Generator], torch.Tensor],
    steps: int,
    generator_rng: torch.Generator,
    *,
    config: WGANTrainingConfig = WGAN_GP,
    progress: bool = False,
    monitor: Callable[[int, float], dict] | None = None,
    monitor_every: int = 0,
) -> dict[str, list]:
    """Train a WGAN (weight clipping) or a WGAN-GP (Arjovsky et al., 2017, Algorithm 1;
    Gulrajani et al., 2017, Algorithm 1).

    Each of the ``steps`` generator updates follows ``config.n_critic`` critic updates, each
    on a fresh real batch ``data_sampler(m, generator_rng)`` and fresh fakes, minimising
    :func:`critic_loss` (plus ``gp_weight *`` :func:`gradient_penalty` with ``eps ~ U[0, 1]``
    per example, or followed by :func:`clip_weights_`); the generator then minimises
    :func:`generator_loss` on fresh noise ``torch.randn(m, generator.latent_dim,
    generator=generator_rng)``. All randomness besides initialisation comes from
    ``generator_rng``.

    Args:
        generator: maps ``(B, latent_dim)`` noise to samples; has an int ``latent_dim``.
        critic: maps samples to ``(B,)`` scores (no batch normalisation with ``"gp"``).
        data_sampler: ``data_sampler(n, generator_rng)`` returns ``n`` real samples.
        steps: generator updates.
        generator_rng: a ``torch.Generator``.
        config: see :class:`WGANTrainingConfig`.
        progress: show a tqdm progress bar.
        monitor: optional ``monitor(step, elapsed_seconds) -> dict``, called every
            ``monitor_every`` generator steps and after the last; collected in
            ``"monitor"``; its own run time is excluded from ``elapsed_seconds``.
        monitor_every: see ``monitor``; 0 calls it only at the end.

    Returns:
        One float per generator step under ``"critic"`` (the critic's last loss, penalty
        included), ``"wasserstein_estimate"`` (``mean f(real) - mean f(fake)`` on the last
        critic batch), ``"gradient_penalty"`` (unweighted, 0.0 with clipping) and
        ``"generator"``; plus ``"monitor"`` and ``"seconds"`` (training time).

    Raises:
        TypeError / ValueError: bad ``steps``, ``generator_rng``, config names, or a
            generator without an int ``latent_dim``.
    """
    require_positive_int("steps", steps)
    require_generator("generator_rng", generator_rng)
    require_choice("config.lipschitz", config.lipschitz, ("clip", "gp"))
    require_choice("config.optimizer", config.optimizer, ("rmsprop", "adam"))
    require_positive_int("config.n_critic", config.n_critic)
    latent_dim = getattr(generator, "latent_dim", None)
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int):
        raise TypeError("generator must have an int attribute latent_dim (the noise size), "
                        f"got {latent_dim!r}")
    device = device_of(generator)
    lr_g = config.generator_learning_rate or config.learning_rate
    optimizer_g = _optimizer(generator.parameters(), config, lr_g)
    optimizer_c = _optimizer(critic.parameters(), config, config.learning_rate)
    schedulers = []
    if config.linear_decay:
        decayed = (optimizer_g, optimizer_c) if config.decay_critic else (optimizer_g,)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
                      for opt in decayed]
    m = config.batch_size
    rng_device = generator_rng.device

    def noise() -> torch.Tensor:
        return torch.randn(m, latent_dim, generator=generator_rng, device=rng_device).to(device)

    history: dict[str, list] = {"critic": [], "wasserstein_estimate": [],
                                "gradient_penalty": [], "generator": [], "monitor": []}
    generator.train()
    critic.train()
    if config.lipschitz == "clip":
        clip_weights_(critic, config.clip)
    clock = TrainingClock()  # the monitor's time is not training time
    for step in training_progress(range(1, steps + 1), progress, f"WGAN ({config.lipschitz})"):
        for _ in range(config.n_critic):
            real = data_sampler(m, generator_rng).to(device)
            with torch.no_grad():
                fake = generator(noise())
            real_scores, fake_scores = critic(real), critic(fake)
            loss_c = critic_loss(real_scores, fake_scores)
            penalty = torch.zeros(())
            if config.lipschitz == "gp":
                shape = (m,) + (1,) * (real.dim() - 1)
                eps = torch.rand(shape, generator=generator_rng, device=rng_device).to(device)
                penalty = gradient_penalty(critic, real, fake, eps)
                loss_c = loss_c + config.gp_weight * penalty
            optimizer_c.zero_grad(set_to_none=True)
            loss_c.backward()
            optimizer_c.step()
            if config.lipschitz == "clip":
                clip_weights_(critic, config.clip)
        loss_g = generator_loss(critic(generator(noise())))
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        for scheduler in schedulers:
            scheduler.step()
        history["critic"].append(loss_c.item())
        history["wasserstein_estimate"].append((real_scores.mean() - fake_scores.mean()).item())
        history["gradient_penalty"].append(penalty.item())
        history["generator"].append(loss_g.item())
        monitor_step(step, steps, monitor, monitor_every, clock, history, generator, critic)
    history["seconds"] = clock.seconds
    generator.eval()
    critic.eval()
    return history


# ------------------------------------------------------------- gradients across a support gap


@dataclass(frozen=True)
class GapExperimentConfig:
    """Settings of :func:`gradients_across_gaps`: a small network trained to near-optimality
    at each gap, the same for the discriminator and the critic.

    Attributes:
        steps: optimiser steps at each gap, continuing from the previous gap. 300 make the
            discriminator confident (its mean ``D`` on the generator's segment is below 1e-3
            from a gap of 0.1 on) and bring the critic's score gap within a few per cent of
            W1.
        batch_size: points drawn from each segment per step.
        hidden_dim, num_layers: the :class:`gradelib.gan.MLPDiscriminator` used for both.
        learning_rate, betas: Adam's, for both.
        gp_weight: ``lambda`` of the critic's gradient penalty (Gulrajani et al., 2017).
        eval_size: points of the generator's segment on which its gradient is averaged.
    """

    steps: int = 300
    batch_size: int = 256
    hidden_dim: int = 64
    num_layers: int = 2
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    eval_size: int = 4096


#: The chapter's setting of the disjoint-supports experiment (:func:`gradients_across_gaps`).
GAP_EXPERIMENT = GapExperimentConfig()
GAP_LOSSES = ("js", "wasserstein")


def segment_sample(theta: float | torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the vertical segment ``{theta} x [0, 1]``: ``(n, 2)`` float32.

    The parallel lines of Arjovsky et al. (2017, Example 1): ``theta = 0`` is the data
    ``P``, ``theta != 0`` the one-parameter generator ``Q_theta = (theta, z)``,
    ``z ~ U[0, 1]``. A ``theta`` that requires gradients gives points differentiable in it.

    Raises:
        TypeError / ValueError: bad ``n`` or ``generator``.
    """
    require_positive_int("n", n)
    require_generator("generator", generator)
    z = torch.rand(n, 1, generator=generator)  # (n, 1)
    theta = torch.as_tensor(theta, dtype=torch.float32)
    return torch.cat([theta.expand(n, 1), z], dim=1)  # (n, 2)


def gradients_across_gaps(thetas: tuple[float, ...], loss: str, generator_rng: torch.Generator,
                          *, config: GapExperimentConfig = GAP_EXPERIMENT) -> list[dict[str, float]]:
    """The generator's gradient when data and samples lie on disjoint parallel segments.

    The data is ``P`` = uniform on ``{0} x [0, 1]``, the generator ``Q_theta`` uniform on
    ``{theta} x [0, 1]``. For each gap of ``thetas`` in turn, ``theta`` is held fixed while
    one network, carried over from the previous gap (as a discriminator is carried over
    while a generator approaches the data), is trained for ``config.steps`` more Adam steps
    to tell the two segments apart:

    - ``loss="js"``: a discriminator on :func:`gradelib.gan.discriminator_loss`, whose value
      at the optimum is ``log 4 - 2 JS(P || Q_theta)`` (Goodfellow et al., 2014, Theorem 1);
    - ``loss="wasserstein"``: a WGAN-GP critic on :func:`critic_loss` plus
      ``gp_weight *`` :func:`gradient_penalty`, whose score gap estimates ``W1 = |theta|``.

    Then the generator's loss is evaluated on ``config.eval_size`` fresh points of its
    segment and differentiated with respect to ``theta``: the minimax (JS) loss
    :func:`gradelib.gan.generator_loss_minimax` and the non-saturating one for the
    discriminator, :func:`generator_loss` for the critic. Arjovsky & Bottou (2017, Theorem
    2.4) prove that the first vanishes as the discriminator approaches the optimum when the
    supports are disjoint; ``dW1/dtheta = sign(theta)`` does not.

    The network is a :class:`gradelib.gan.MLPDiscriminator` initialised from torch's global
    generator (seed it first); the data and the ``eps`` of the penalty come from
    ``generator_rng``.

    Args:
        thetas: the gaps, non-zero numbers, in the order they are visited.
        loss: ``"js"`` or ``"wasserstein"``.
        generator_rng: a CPU ``torch.Generator``.
        config: see :class:`GapExperimentConfig`.

    Returns:
        One dict per gap. For ``"js"``: ``{"theta", "estimate": JS estimate (nats),
        "gradient": d(minimax loss)/dtheta, "nonsaturating_gradient": d(non-saturating
        loss)/dtheta, "d_fake": mean D on the generator's points}``; for ``"wasserstein"``:
        ``{"theta", "estimate": mean f(real) - mean f(fake), "gradient": d(-mean
        f(fake))/dtheta}``. Python floats.

    Raises:
        TypeError / ValueError: a gap that is not a non-zero finite number, bad ``loss`` or
            ``generator_rng``.
    """
    from gradelib.gan import (
        MLPDiscriminator,
        discriminator_loss,
        generator_loss_minimax,
        generator_loss_nonsaturating,
    )

    for theta in thetas:
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) \
                or not math.isfinite(theta) or theta == 0:
            raise ValueError(f"thetas must be non-zero finite numbers, got {theta!r}")
    require_choice("loss", loss, GAP_LOSSES)
    require_generator("generator_rng", generator_rng)
    net = MLPDiscriminator(hidden_dim=config.hidden_dim, num_layers=config.num_layers)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, betas=config.betas)
    m = config.batch_size
    results = []
    for theta in thetas:
        for _ in range(config.steps):
            real = segment_sample(0.0, m, generator_rng)
            fake = segment_sample(theta, m, generator_rng)
            if loss == "js":
                objective = discriminator_loss(net(real), net(fake))
            else:
                eps = torch.rand(m, 1, generator=generator_rng)
                objective = (critic_loss(net(real), net(fake))
                             + config.gp_weight * gradient_penalty(net, real, fake, eps))
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
        shift = torch.tensor(float(theta), requires_grad=True)
        fake_scores = net(segment_sample(shift, config.eval_size, generator_rng))  # (n,)
        with torch.no_grad():
            real_scores = net(segment_sample(0.0, config.eval_size, generator_rng))
        if loss == "js":
            (minimax,) = torch.autograd.grad(generator_loss_minimax(fake_scores), shift,
                                             retain_graph=True)
            (nonsaturating,) = torch.autograd.grad(generator_loss_nonsaturating(fake_scores),
                                                   shift)
            value = -discriminator_loss(real_scores, fake_scores.detach()).item()  # V(D, G)
            results.append({"theta": float(theta), "estimate": (value + math.log(4.0)) / 2,
                            "gradient": minimax.item(),
                            "nonsaturating_gradient": nonsaturating.item(),
                            "d_fake": torch.sigmoid(fake_scores.detach()).mean().item()})
        else:
            (gradient,) = torch.autograd.grad(generator_loss(fake_scores), shift)
            results.append({"theta": float(theta),
                            "estimate": (real_scores.mean() - fake_scores.detach().mean()).item(),
                            "gradient": gradient.item()})
    return results


# ------------------------------------------------------------------ moment matching (MMD)


def mmd_loss(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> torch.Tensor:
    """Squared maximum mean discrepancy between two samples, with a sum of Gaussian kernels.

    ``MMD^2 = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j)``
    with ``k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2))`` over the bandwidths ``s``: the
    biased (V-statistic) estimate that the generative moment matching networks of Li et al.
    (2015, eq. 3 and §3.3, a mixture of bandwidths) and Dziugaite et al. (2015) minimise. It
    is the squared distance between the two samples' mean embeddings in the kernel's feature
    space, so it is ``>= 0``, and 0 for identical samples; with a characteristic kernel such
    as the Gaussian the population MMD is 0 only when the distributions are equal (Gretton et
    al., 2012). Differentiable in ``x`` and ``y``.

    Args:
        x: ``(N, d)`` floating tensor; y: ``(M, d)``, same dtype.
        bandwidths: one or more positive kernel widths, in the units of the points.

    Returns:
        0-d tensor (squared units of nothing: kernel values are dimensionless).

    Raises:
        TypeError / ValueError: not non-empty 2-D floating tensors of one width, or bad
            bandwidths.
    """
    require_tensor("x", x, ndim=2, floating=True)
    require_tensor("y", y, ndim=2, floating=True)
    require_shape("y", y, (None, x.shape[1]))
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"x and y must be non-empty, got shapes {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    widths = tuple(bandwidths) if isinstance(bandwidths, (tuple, list)) else ()
    if not widths or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                             and math.isfinite(s) and s > 0 for s in widths):
        raise ValueError(f"bandwidths must be a non-empty sequence of positive numbers, got "
                         f"{bandwidths!r}")

    def mean_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: matrix products, several times faster than
        # differences of all pairs; clamped because rounding can make it slightly negative
        squared = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :]
                   - 2 * a @ b.T).clamp_min(0)  # (len(a), len(b))
        return sum(torch.exp(-squared / (2 * s**2)).mean() for s in widths)

    return mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)


@dataclass(frozen=True)
class MMDTrainingConfig:
    """Hyperparameters of :func:`train_mmd`.

    Attributes:
        batch_size: generated and real points per step; the estimate's variance falls with
            it, its cost grows with its square.
        learning_rate: Adam's step size.
        betas: Adam's moment decay rates.
        bandwidths: the kernel widths of :func:`mmd_loss`, from the modes' scale to the
            toy's (a single width sees only one scale: too wide and it matches the mean and
            the spread, too narrow and distant points feel no pull).
        linear_decay: decay the step size linearly to 0 over the run (as the WGAN-GP runs).
    """

    batch_size: int = 512
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    bandwidths: tuple[float, ...] = (0.05, 0.2, 1.0)
    linear_decay: bool = True


def train_mmd(
    generator: nn.Module,
    data_sampler: Callable[[int, torch.Generator], torch.Tensor],
    steps: int,
    generator_rng: torch.Generator,
    *,
    config: MMDTrainingConfig = MMDTrainingConfig(),
    progress: bool = False,
    monitor: Callable[[int, float], dict] | None = None,
    monitor_every: int = 0,
) -> dict[str, list]:
    """Train a generator to minimise the kernel MMD to the data: a generative moment matching
    network (Li et al., 2015, §3; Dziugaite et al., 2015).

    No discriminator: each step draws ``real = data_sampler(m, generator_rng)`` and
    ``generator(z)``, ``z = torch.randn(m, generator.latent_dim, generator=generator_rng)``,
    and takes an Adam step on :func:`mmd_loss` between them.

    Args:
        generator: maps ``(B, latent_dim)`` noise to samples; has an int ``latent_dim``.
        data_sampler: ``data_sampler(n, generator_rng)`` returns ``n`` real samples.
        steps: generator updates.
        generator_rng: a ``torch.Generator``.
        config: see :class:`MMDTrainingConfig`.
        progress, monitor, monitor_every: as in :func:`train_wgan`.

    Returns:
        ``{"mmd": [...]}`` (one float per step), ``"monitor"`` and ``"seconds"`` (training
        time, the monitor's excluded).

    Raises:
        TypeError / ValueError: bad ``steps``, ``generator_rng``, or a generator without an
            int ``latent_dim``.
    """
    require_positive_int("steps", steps)
    require_generator("generator_rng", generator_rng)
    latent_dim = getattr(generator, "latent_dim", None)
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int):
        raise TypeError("generator must have an int attribute latent_dim (the noise size), "
                        f"got {latent_dim!r}")
    device = device_of(generator)
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.learning_rate,
                                 betas=config.betas)
    scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
                 if config.linear_decay else None)
    m = config.batch_size
    history: dict[str, list] = {"mmd": [], "monitor": []}
    generator.train()
    clock = TrainingClock()  # the monitor's time is not training time
    for step in training_progress(range(1, steps + 1), progress, "MMD"):
        real = data_sampler(m, generator_rng).to(device)
        z = torch.randn(m, latent_dim, generator=generator_rng, device=generator_rng.device)
        loss = mmd_loss(generator(z.to(device)), real, config.bandwidths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history["mmd"].append(loss.item())
        monitor_step(step, steps, monitor, monitor_every, clock, history, generator)
    history["seconds"] = clock.seconds
    generator.eval()
    return history


# ------------------------------------------------------------ the equal-budget comparison


@dataclass(frozen=True)
class ToyMethod:
    """How one method trains on one toy in the chapter's equal-budget comparison.

    Attributes:
        label: the method's name in tables and figures.
        trainer: ``"gan"`` (:func:`gradelib.gan.train_gan`, k = 1), ``"wgan"``
            (:func:`train_wgan`) or ``"mmd"`` (:func:`train_mmd`).
        steps: generator updates, chosen so that the run takes about the toy's budget of
            CPU time (:data:`TOY_BUDGET_SECONDS`) with one torch thread.
        config: the trainer's configuration.
        hidden_dim: width of the three hidden layers of the generator and of the
            discriminator or critic.
    """

    label: str
    trainer: str
    steps: int
    config: object
    hidden_dim: int = 128


def train_toy(toy, method: ToyMethod, seed: int, *, progress: bool = False,
              monitor: Callable | None = None, monitor_every: int = 0):
    """Train one method of the comparison on a 2-D toy from ``seed``.

    The same seed gives every method the same initial generator: torch's global generator is
    seeded with ``seed`` (:func:`gradelib.device.seed_everything`), then a
    :class:`gradelib.gan.MLPGenerator` (2-D noise, 3 hidden ReLU layers of
    ``method.hidden_dim``) and, for the adversarial methods, a
    :class:`gradelib.gan.MLPDiscriminator` (3 LeakyReLU layers of the same width); data,
    noise and every other random number come from ``make_generator(seed)``.

    Args:
        toy: a :class:`gradelib.data.GaussianMixture2D` (its ``sample`` is the data).
        method: see :class:`ToyMethod`.
        seed: an int.
        progress: show a progress bar.
        monitor: optional ``monitor(step, seconds, generator, critic)`` (``critic`` None for
            MMD) returning a dict, every ``monitor_every`` steps and after the last.
        monitor_every: see ``monitor``.

    Returns:
        ``(generator, critic, history)`` with the trainer's history (``"monitor"``,
        ``"seconds"``...); ``critic`` is None for MMD. Both networks end in eval mode.

    Raises:
        ValueError: an unknown ``method.trainer``.
    """
    from gradelib.device import make_generator, seed_everything
    from gradelib.gan import MLPDiscriminator, MLPGenerator, train_gan

    require_choice("method.trainer", method.trainer, ("gan", "wgan", "mmd"))
    seed_everything(seed)
    generator = MLPGenerator(hidden_dim=method.hidden_dim)
    critic = None if method.trainer == "mmd" else MLPDiscriminator(hidden_dim=method.hidden_dim)
    watch = None
    if monitor is not None:
        def watch(step: int, seconds: float) -> dict:
            return monitor(step, seconds, generator, critic)
    rng = make_generator(seed)
    options = {"progress": progress, "monitor": watch, "monitor_every": monitor_every}
    if method.trainer == "gan":
        history = train_gan(generator, critic, toy.sample, method.steps, 1, rng,
                            config=method.config, **options)
    elif method.trainer == "wgan":
        history = train_wgan(generator, critic, toy.sample, method.steps, rng,
                             config=method.config, **options)
    else:
        history = train_mmd(generator, toy.sample, method.steps, rng, config=method.config,
                            **options)
    return generator, critic, history


# The comparison's settings. Steps fill each toy's budget at each configuration's measured
# CPU cost per generator step (one torch thread; ``benchmarks/wgan.py`` records the CPU
# seconds each run took). Candidates were trained on the tuning seeds; the chosen ones are
# those of TOY_COMPARISON (the highest mean high-quality share with every mode captured).

#: CPU seconds of one thread that every method gets on each toy.
TOY_BUDGET_SECONDS = {"ring": 60.0, "grid": 80.0}
#: Seeds the candidates were compared on, and the seeds the chapter's table reports.
TOY_TUNING_SEEDS = (0, 1, 2)
TOY_HELD_OUT_SEEDS = (3, 4, 5, 6, 7)


def _gan(steps: int, hidden_dim: int = 128, **changes) -> ToyMethod:
    from gradelib.gan import GANTrainingConfig

    return ToyMethod("GAN", "gan", steps, GANTrainingConfig(**changes), hidden_dim)


def _clip(steps: int) -> ToyMethod:
    return ToyMethod("WGAN (clipping)", "wgan", steps, WGAN_CLIPPING)


def _gp(steps: int, hidden_dim: int = 128, **changes) -> ToyMethod:
    config = WGANTrainingConfig(lipschitz="gp", optimizer="adam", learning_rate=1e-3,
                                betas=(0.5, 0.9), batch_size=256, linear_decay=True)
    return ToyMethod("WGAN-GP", "wgan", steps, dataclasses.replace(config, **changes),
                     hidden_dim)


def _mmd(steps: int, **changes) -> ToyMethod:
    return ToyMethod("MMD", "mmd", steps, dataclasses.replace(MMDTrainingConfig(), **changes))


#: The candidates of the tuning runs, per toy and method (``benchmarks/wgan.py --tune``);
#: a method with one candidate keeps the settings of its paper or of the GAN chapter.
#: Steps: 95 % of the toy's budget at each candidate's cost per generator step, measured on
#: 200 steps (CPU ms, one thread, 2 cores at load average 2.4-3.3): ring / grid GAN 3.42 /
#: 3.47, clipping 6.20 / 6.21, WGAN-GP 17.5 / 16.9 (10.2 with 64 units), MMD 34.8 / 32.1
#: with batches of 512 and 8.84 / 8.43 with 256. The record's CPU seconds show what each
#: run took.
TOY_CANDIDATES: dict[str, dict[str, list[ToyMethod]]] = {
    "ring": {
        "gan": [_gan(16600)],
        "wgan_clip": [_clip(9100)],
        "wgan_gp": [_gp(3200)],
        "mmd": [_mmd(1600), _mmd(6400, batch_size=256)],
    },
    "grid": {
        "gan": [_gan(21800)],
        "wgan_clip": [_clip(12200)],
        # a two time-scale update rule (Heusel et al., 2017): the generator's step size 10x
        # smaller, so that the critic resolves the grid's 25 narrow modes before the samples
        # move (equal step sizes left a diffuse cloud: 18/25 modes, 1.6 % high quality)
        "wgan_gp": [_gp(4500, generator_learning_rate=1e-4),
                    _gp(7400, hidden_dim=64, generator_learning_rate=1e-4)],
        "mmd": [_mmd(2300), _mmd(9000, batch_size=256)],
    },
}

#: The candidate each method keeps where it has several, chosen on the tuning seeds
#: (``benchmarks/results/wgan_tuning.json``, means over seeds 0-2): the most modes, then the
#: highest high-quality share. Ring, MMD: batches of 256 (8.0 modes, 80.4 % high quality,
#: against 8.0 and 49.9 % with 512). Grid, WGAN-GP: 64 units (21.7 modes, 10.5 %, against
#: 21.0 and 6.2 % with 128). Grid, MMD: batches of 256 (25.0 modes, 55.6 %, against 23.0 and
#: 16.2 %).
TOY_CHOSEN: dict[str, dict[str, int]] = {"ring": {"mmd": 1}, "grid": {"wgan_gp": 1, "mmd": 1}}

#: The configurations of the chapter's table, one per toy and method.
TOY_COMPARISON: dict[str, dict[str, ToyMethod]] = {
    toy: {key: candidates[TOY_CHOSEN.get(toy, {}).get(key, 0)]
          for key, candidates in methods.items()}
    for toy, methods in TOY_CANDIDATES.items()
}
# end of the comparison's settings
