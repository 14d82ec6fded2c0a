"""Generative adversarial networks: the minimax game, its optimum, and mode coverage.

The code of the GAN chapter (syllabus §5): the minimax game's losses, its optimum on
discrete distributions, mode coverage, and the small models the chapter trains. (The
homework ``hw4_gan`` takes the next step, a convolutional DCGAN and the least-squares GAN;
its references live with its checks, on the instructor's side.)

A generator ``G`` maps noise ``z ~ N(0, I)`` to samples; a discriminator ``D`` maps a sample
to the probability that it is real. Goodfellow et al. (2014, eq. 1) train them on the value

    V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))],

which ``D`` maximises and ``G`` minimises. For a fixed ``G`` the best discriminator is
``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` (Proposition 1 of the paper), and at that
discriminator ``V(D*, G) = -log 4 + 2 JS(p_data || p_g)`` (Theorem 1), minimised exactly
when ``p_g = p_data``. Discriminators here output *logits* ``a`` with ``D = sigmoid(a)``,
and every loss is computed from them with ``softplus``:

    log D = log sigmoid(a) = -softplus(-a),     log(1 - D) = log sigmoid(-a) = -softplus(a),

which is finite for any finite ``a`` (``log(sigmoid(a))`` is ``-inf`` in float32 once
``sigmoid`` rounds to 0, from ``|a|`` of about 90 on, and ``log(1 - sigmoid(a))`` from
``a`` of about 17 on).

Mode coverage on the 2-D toys follows the evaluation protocol of VEEGAN (Srivastava et al.,
2017, §5): a sample is *high quality* when it lies within three standard deviations of the
nearest mode centre, and a mode is *captured* when at least one high-quality sample (or a
chosen minimum number) lands on it.

Models: small MLPs for the toys; for MNIST a DCGAN-style pair (Radford et al., 2016:
strided convolutions instead of pooling, batch normalisation, ReLU in the generator and
LeakyReLU in the discriminator, no hidden fully connected layers besides the projection of
``z``), optionally conditioned on the digit's class (Mirza & Osindero, 2014) with a
projection discriminator (Miyato & Koyama, 2018).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradelib.training import TrainingClock, device_of, monitor_step
from gradelib.training import progress as training_progress
from gradelib.validation import (
    require_generator,
    require_choice,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "TOY_GAN_STEPS",
    "discriminator_loss",
    "generator_loss_minimax",
    "generator_loss_nonsaturating",
    "gan_value",
    "optimal_discriminator",
    "js_divergence",
    "mode_coverage",
    "MLPGenerator",
    "MLPDiscriminator",
    "MNISTGenerator",
    "MNISTDiscriminator",
    "GANTrainingConfig",
    "train_gan",
    "ConditionalGANTrainingConfig",
    "train_conditional_gan",
    "draw_samples",
    "interpolate_latents",
]

GENERATOR_LOSSES = ("nonsaturating", "minimax")
#: Generator steps of the chapter's toy GANs (k = 1, :class:`GANTrainingConfig` defaults):
#: the ring's modes are reached in about 1,000 steps, the grid needs more.
TOY_GAN_STEPS = {"ring": 1500, "grid": 3000}


# --------------------------------------------------------------------------- the losses


def _require_logits(name: str, logits: object) -> torch.Tensor:
    logits = require_tensor(name, logits, floating=True)
    if logits.numel() == 0:
        raise ValueError(f"{name} must hold at least one logit, got shape {tuple(logits.shape)}")
    return logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: the negated minimax value, estimated on a minibatch.

    ``-( mean_i log D(x_i) + mean_j log(1 - D(G(z_j))) )`` with ``D = sigmoid(logit)``,
    i.e. ``mean softplus(-real_logits) + mean softplus(fake_logits)`` (Goodfellow et al.,
    2014, eq. 1 and Algorithm 1). Minimising it maximises ``V`` over ``D``. It is the
    binary cross-entropy of labelling real samples 1 and generated samples 0.

    Args:
        real_logits: logits of ``D`` on real samples, any shape (e.g. ``(B,)``), floating.
        fake_logits: logits on generated samples, any shape (the batch sizes may differ).

    Returns:
        0-d tensor in nats, ``>= 0``; finite for any finite logits (no ``log(sigmoid)``).

    Raises:
        TypeError / ValueError: an argument is not a non-empty floating tensor.
    """
    _require_logits("real_logits", real_logits)
    _require_logits("fake_logits", fake_logits)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's original (saturating) loss: ``mean log(1 - D(G(z)))``, to minimise.

    Equal to ``-mean softplus(fake_logits)``. Its gradient with respect to a logit ``a`` is
    ``-sigmoid(a) = -D``, which vanishes when the discriminator confidently rejects the
    fakes (``D -> 0``), the situation early in training (Goodfellow et al., 2014, §3).

    Args:
        fake_logits: logits of ``D`` on generated samples, any shape, floating.

    Returns:
        0-d tensor in nats, ``<= 0``; finite for any finite logits.

    Raises:
        TypeError / ValueError: ``fake_logits`` is not a non-empty floating tensor.
    """
    _require_logits("fake_logits", fake_logits)
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: ``mean -log D(G(z))`` (Goodfellow et al., 2014, §3).

    Equal to ``mean softplus(-fake_logits)``. Its gradient with respect to a logit is
    ``-(1 - D)``, largest exactly where the minimax loss's gradient vanishes (``D -> 0``).

    Args:
        fake_logits: logits of ``D`` on generated samples, any shape, floating.

    Returns:
        0-d tensor in nats, ``>= 0``; finite for any finite logits.

    Raises:
        TypeError / ValueError: ``fake_logits`` is not a non-empty floating tensor.
    """
    _require_logits("fake_logits", fake_logits)
    return F.softplus(-fake_logits).mean()


# ---------------------------------------------------------------- theory on discrete data


def _require_distribution(name: str, p: object) -> torch.Tensor:
    p = require_tensor(name, p, floating=True)
    if p.numel() == 0:
        raise ValueError(f"{name} must hold at least one probability, got shape {tuple(p.shape)}")
    if bool((p < 0).any()) or not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} must hold finite non-negative probabilities, got minimum "
                         f"{float(p.min())}")
    return p


def _require_normalised(name: str, p: torch.Tensor) -> None:
    total = float(p.sum())
    if not math.isclose(total, 1.0, rel_tol=0.0, abs_tol=1e-5):
        raise ValueError(f"{name} must sum to 1 (a discrete distribution), got sum {total:.6g}")


def gan_value(
    discriminator: torch.Tensor, p_data: torch.Tensor, p_model: torch.Tensor
) -> torch.Tensor:
    """``V(D, G)`` on a finite sample space: ``sum_x p_data log D + p_model log(1 - D)``.

    Terms whose probability is 0 count as 0 (the convention ``0 log 0 = 0``), so a
    discriminator of exactly 0 or 1 is allowed where the matching mass is 0.

    Args:
        discriminator: ``D(x)`` for every point ``x``, values in [0, 1].
        p_data, p_model: probabilities of the same points, same shape as ``discriminator``.

    Returns:
        0-d tensor in nats, ``<= 0``; ``-inf`` if ``D`` is 0 where ``p_data > 0``.

    Raises:
        TypeError / ValueError: not floating tensors of one shape, or negative entries.
    """
    require_tensor("discriminator", discriminator, floating=True)
    _require_distribution("p_data", p_data)
    _require_distribution("p_model", p_model)
    require_same_shape("discriminator", discriminator, "p_data", p_data)
    require_same_shape("p_data", p_data, "p_model", p_model)
    return (torch.xlogy(p_data, discriminator) + torch.xlogy(p_model, 1 - discriminator)).sum()


def optimal_discriminator(p_data: torch.Tensor, p_model: torch.Tensor) -> torch.Tensor:
    """``D*(x) = p_data(x) / (p_data(x) + p_model(x))``, elementwise (Goodfellow et al.,
    2014, Proposition 1).

    For each ``x`` the integrand ``a log y + b log(1 - y)`` with ``a = p_data(x)``,
    ``b = p_model(x)`` is maximised over ``y`` in [0, 1] at ``y = a / (a + b)``. Where both
    probabilities are 0 the point does not contribute to ``V`` and any value is optimal; this
    function returns 1/2 there.

    Args:
        p_data: probabilities (or densities) of the data, any shape, floating, ``>= 0``.
        p_model: the model's, same shape.

    Returns:
        Tensor of the same shape and dtype, values in [0, 1].

    Raises:
        TypeError / ValueError: not floating tensors of one shape, negative or non-finite.
    """
    _require_distribution("p_data", p_data)
    _require_distribution("p_model", p_model)
    require_same_shape("p_data", p_data, "p_model", p_model)
    total = p_data + p_model
    return torch.where(total > 0, p_data / torch.where(total > 0, total, 1), 0.5)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence between two discrete distributions, in nats.

    ``JS(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m)`` with ``m = (p + q) / 2``, using
    ``0 log 0 = 0`` so that disjoint supports give exactly ``log 2``. Symmetric, between 0
    and ``log 2`` (Lin, 1991; Goodfellow et al., 2014, eq. 6).

    Args:
        p, q: ``(K,)`` floating tensors of probabilities, each summing to 1 (tolerance 1e-5).

    Returns:
        0-d tensor, same dtype as ``p``.

    Raises:
        TypeError / ValueError: not 1-D floating tensors of one shape, negative entries, or
            not summing to 1.
    """
    _require_distribution("p", p)
    _require_distribution("q", q)
    require_tensor("p", p, ndim=1)
    require_tensor("q", q, ndim=1)
    require_same_shape("p", p, "q", q)
    _require_normalised("p", p)
    _require_normalised("q", q)
    m = (p + q) / 2
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum()
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum()
    return (kl_pm + kl_qm) / 2


# ------------------------------------------------------------------------ mode coverage


def mode_coverage(
    samples: torch.Tensor,
    centers: torch.Tensor,
    std: float,
    *,
    num_std: float = 3.0,
    min_count: int = 1,
) -> tuple[int, float]:
    """Modes captured and share of high-quality samples (VEEGAN, Srivastava et al., 2017, §5).

    A sample is *high quality* when its Euclidean distance to the nearest centre is at most
    ``num_std * std``. A mode is *captured* when at least ``min_count`` high-quality samples
    have it as their nearest centre. The published tables (VEEGAN Table 1, PacGAN Table 1)
    use 2,500 samples and three standard deviations.

    Args:
        samples: ``(N, d)`` floating tensor of generated points, N >= 1.
        centers: ``(K, d)`` floating tensor of mode centres.
        std: the standard deviation of each mixture component, > 0.
        num_std: the radius in standard deviations (3 in the papers).
        min_count: high-quality samples a mode needs to count as captured (1 by default).

    Returns:
        ``(modes_captured, high_quality_share)``: an ``int`` in ``0..K`` and a ``float`` in
        [0, 1] (a fraction, not a percentage).

    Raises:
        TypeError / ValueError: bad shapes, non-positive ``std``/``num_std``/``min_count``,
            or non-finite samples.
    """
    require_tensor("samples", samples, ndim=2, floating=True)
    require_tensor("centers", centers, ndim=2, floating=True)
    require_shape("centers", centers, (None, samples.shape[1]))
    if samples.shape[0] == 0 or centers.shape[0] == 0:
        raise ValueError(f"samples and centers must be non-empty, got shapes "
                         f"{tuple(samples.shape)} and {tuple(centers.shape)}")
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("samples must be finite, got NaN or infinite values")
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not std > 0:
        raise ValueError(f"std must be a positive number, got {std!r}")
    if not num_std > 0:
        raise ValueError(f"num_std must be positive, got {num_std!r}")
    require_positive_int("min_count", min_count)
    points = samples.detach().to(torch.float64)
    distances = torch.cdist(points, centers.detach().to(device=points.device, dtype=torch.float64))
    nearest_distance, nearest = distances.min(dim=1)  # (N,), (N,)
    high_quality = nearest_distance <= num_std * std  # (N,)
    counts = torch.bincount(nearest[high_quality], minlength=centers.shape[0])  # (K,)
    return int((counts >= min_count).sum()), float(high_quality.to(torch.float64).mean())


# ------------------------------------------------------------------------------- models


def _mlp(sizes: list[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """A fully connected generator for 2-D toys: ``(B, latent_dim)`` noise to ``(B, output_dim)``.

    ``num_layers`` hidden layers of ``hidden_dim`` ReLU units and a linear output (the toys
    are unbounded). The WGAN-GP toy experiments use the same shape (Gulrajani et al., 2017,
    with 512 units; 128 suffice here and train several times faster on a CPU).

    Args:
        latent_dim: size of the noise ``z ~ N(0, I)``; stored as ``self.latent_dim``, which
            :func:`train_gan` reads to draw noise.
        hidden_dim: width of the hidden layers.
        num_layers: number of hidden layers.
        output_dim: dimension of the samples.

    Raises:
        TypeError / ValueError: a size is not a positive int.
    """

    def __init__(self, latent_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
                 output_dim: int = 2):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        require_positive_int("hidden_dim", hidden_dim)
        require_positive_int("num_layers", num_layers)
        require_positive_int("output_dim", output_dim)
        self.net = _mlp([latent_dim] + [hidden_dim] * num_layers + [output_dim], nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim)`` to ``(B, output_dim)``."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """A fully connected discriminator (or WGAN critic): ``(B, input_dim)`` to ``(B,)`` scores.

    ``num_layers`` hidden layers of ``hidden_dim`` units with LeakyReLU(0.2) (Radford et al.,
    2016, recommend leaky rectifiers in the discriminator) and a linear output: a logit for a
    GAN discriminator, an unbounded score for a WGAN critic. No batch normalisation, so that
    the gradient penalty of WGAN-GP is defined per example.

    Raises:
        TypeError / ValueError: a size is not a positive int.
    """

    def __init__(self, input_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3):
        super().__init__()
        self.input_dim = require_positive_int("input_dim", input_dim)
        require_positive_int("hidden_dim", hidden_dim)
        require_positive_int("num_layers", num_layers)
        self.net = _mlp([input_dim] + [hidden_dim] * num_layers + [1],
                        lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, input_dim)`` to ``(B,)`` logits."""
        require_tensor("x", x, ndim=2, floating=True)
        require_shape("x", x, (None, self.input_dim))
        return self.net(x).squeeze(1)  # (B,)



class MNISTGenerator(nn.Module):
    """A small generator of ``(B, 1, 28, 28)`` digits, optionally conditioned on the class.

    Fully connected (a convolutional DCGAN is several times slower on a CPU and not needed
    for 28x28 digits), but built on DCGAN's guidelines (Radford et al., 2016): batch
    normalisation and ReLU in every hidden layer, a bounded output (a sigmoid, so that
    pixels lie in [0, 1] like the data). Layers: ``latent_dim (+ num_classes)`` - 256 - 512 -
    784. A conditional generator (Mirza & Osindero, 2014) receives the one-hot class
    concatenated to ``z``.

    Args:
        latent_dim: size of ``z``, stored as ``self.latent_dim``.
        num_classes: 0 for an unconditional generator, else the number of classes (10).
        hidden_dim: width of the first hidden layer (the second is twice as wide).

    Raises:
        TypeError / ValueError: bad sizes.
    """

    def __init__(self, latent_dim: int = 64, num_classes: int = 0, hidden_dim: int = 256):
        super().__init__()
        self.latent_dim = require_positive_int("latent_dim", latent_dim)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
        self.num_classes = num_classes
        require_positive_int("hidden_dim", hidden_dim)
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden_dim),
            nn.BatchNorm1d(hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.BatchNorm1d(2 * hidden_dim), nn.ReLU(),
            nn.Linear(2 * hidden_dim, 28 * 28), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, latent_dim)`` noise (and ``(B,)`` int64 labels if conditional) to images."""
        require_tensor("z", z, ndim=2, floating=True)
        require_shape("z", z, (None, self.latent_dim))
        if self.num_classes:
            _require_labels(labels, len(z), self.num_classes)
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        elif labels is not None:
            raise ValueError("labels must be None for an unconditional generator")
        return self.net(z)


class MNISTDiscriminator(nn.Module):
    """A discriminator for ``(B, 1, 28, 28)`` digits, optionally a projection discriminator.

    784 - 512 - 256 with LeakyReLU(0.2) (DCGAN's guideline) and a linear logit. A
    conditional one adds ``<embed(y), h(x)>`` to the logit, the projection discriminator of
    Miyato & Koyama (2018), which conditions more reliably than concatenating the label to
    the input.

    Args:
        num_classes: 0 for unconditional, else the number of classes.
        hidden_dim: width of the last hidden layer (the first is twice as wide).

    Raises:
        TypeError / ValueError: bad sizes.
    """

    def __init__(self, num_classes: int = 0, hidden_dim: int = 256):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
        self.num_classes = num_classes
        require_positive_int("hidden_dim", hidden_dim)
        self.features = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            nn.Linear(28 * 28, 2 * hidden_dim), nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden_dim, hidden_dim), nn.LeakyReLU(0.2),
        )
        self.logit = nn.Linear(hidden_dim, 1)
        self.embed = nn.Embedding(num_classes, hidden_dim) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, 28, 28)`` images (and ``(B,)`` labels if conditional) to ``(B,)`` logits."""
        require_tensor("x", x, ndim=4, floating=True)
        require_shape("x", x, (None, 1, 28, 28))
        h = self.features(x)  # (B, hidden)
        logits = self.logit(h).squeeze(1)  # (B,)
        if self.embed is not None:
            _require_labels(labels, len(x), self.num_classes)
            logits = logits + (self.embed(labels) * h).sum(dim=1)
        elif labels is not None:
            raise ValueError("labels must be None for an unconditional discriminator")
        return logits


def _require_labels(labels: object, batch: int, num_classes: int) -> torch.Tensor:
    if labels is None:
        raise ValueError("labels are required: the model is conditional")
    require_tensor("labels", labels, ndim=1, floating=False)
    require_shape("labels", labels, (batch,))
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class GANTrainingConfig:
    """Hyperparameters of :func:`train_gan`.

    Attributes:
        batch_size: samples per minibatch, real and fake alike. 256 gives low-variance
            estimates of the value on the 2-D toys for the cost of a few milliseconds a step.
        learning_rate: Adam's step size for both players. 1e-3 reaches the toys' modes
            within a few thousand steps; DCGAN's 2e-4 (Radford et al., 2016) is for images.
        betas: Adam's moment decay rates. DCGAN's ``beta1 = 0.5`` damps the oscillations
            that momentum causes in the two-player game.
        generator_loss: ``"nonsaturating"`` (``-log D(G(z))``, the default everyone uses)
            or ``"minimax"`` (``log(1 - D(G(z)))``, to show why it stalls).
    """

    batch_size: int = 256
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    generator_loss: str = "nonsaturating"


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data_sampler: Callable[[int, torch.Generator], torch.Tensor],
    steps: int,
    k: int,
    generator_rng: torch.Generator,
    *,
    config: GANTrainingConfig = GANTrainingConfig(),
    progress: bool = False,
    monitor: Callable[[int, float], dict] | None = None,
    monitor_every: int = 0,
) -> dict[str, list]:
    """Train a GAN with minibatch stochastic gradient (Goodfellow et al., 2014, Algorithm 1).

    Each of the ``steps`` iterations takes ``k`` discriminator steps, each on a fresh real
    batch ``data_sampler(batch_size, generator_rng)`` and a fresh fake batch
    ``generator(z)``, ``z = torch.randn(batch_size, generator.latent_dim,
    generator=generator_rng)``, minimising :func:`discriminator_loss`; then one generator
    step on fresh noise, minimising the chosen generator loss. Both use Adam. The only
    randomness besides the networks' initialisation comes from ``generator_rng`` (noise is
    drawn on its device, then moved to the models' device).

    Args:
        generator: maps ``(B, generator.latent_dim)`` noise to samples; trained in place.
        discriminator: maps samples to ``(B,)`` logits; trained in place.
        data_sampler: ``data_sampler(n, generator_rng)`` returns ``n`` real samples, e.g.
            ``gradelib.data.ring_mixture().sample``.
        steps: generator updates.
        k: discriminator updates per generator update (Algorithm 1's ``k``).
        generator_rng: a ``torch.Generator`` for noise and data.
        config: batch size, Adam's hyperparameters and the generator loss.
        progress: show a tqdm progress bar.
        monitor: optional ``monitor(step, elapsed_seconds) -> dict`` called every
            ``monitor_every`` generator steps (and after the last one); its dicts are
            collected under ``"monitor"`` (e.g. mode coverage against time).
        monitor_every: see ``monitor``; 0 calls it only at the end.

    Returns:
        ``{"discriminator": [...], "generator": [...], "d_real": [...], "d_fake": [...]}``,
        one float per generator step: the discriminator's loss (mean over its ``k`` steps),
        the generator's loss, and the mean ``D(x)`` on real and ``D(G(z))`` on fake samples
        seen by the last discriminator step; plus ``"monitor"`` (a list of dicts) and
        ``"seconds"`` (wall-clock training time, the monitor's time excluded).

    Raises:
        TypeError / ValueError: bad ``steps``, ``k``, ``generator_rng`` or generator loss
            name, or a generator without an int ``latent_dim`` attribute.
    """
    require_positive_int("steps", steps)
    require_positive_int("k", k)
    require_generator("generator_rng", generator_rng)
    require_choice("config.generator_loss", config.generator_loss, GENERATOR_LOSSES)
    latent_dim = getattr(generator, "latent_dim", None)
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int):
        raise TypeError("generator must have an int attribute latent_dim (the noise size), "
                        f"got {latent_dim!r}")
    loss_g_fn = (generator_loss_nonsaturating if config.generator_loss == "nonsaturating"
                 else generator_loss_minimax)
    device = device_of(generator)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.learning_rate,
                                   betas=config.betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.learning_rate,
                                   betas=config.betas)
    n = config.batch_size

    def noise() -> torch.Tensor:
        return torch.randn(n, latent_dim, generator=generator_rng,
                           device=generator_rng.device).to(device)  # (B, D)

    history: dict[str, list] = {"discriminator": [], "generator": [], "d_real": [],
                                "d_fake": [], "monitor": []}
    generator.train()
    discriminator.train()
    clock = TrainingClock()  # the monitor's time is not training time
    for step in training_progress(range(1, steps + 1), progress, "GAN"):
        d_total = 0.0
        for _ in range(k):
            real = data_sampler(n, generator_rng).to(device)
            with torch.no_grad():
                fake = generator(noise())
            real_logits, fake_logits = discriminator(real), discriminator(fake)
            loss_d = discriminator_loss(real_logits, fake_logits)
            optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            optimizer_d.step()
            d_total += loss_d.item()
        loss_g = loss_g_fn(discriminator(generator(noise())))
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        history["discriminator"].append(d_total / k)
        history["generator"].append(loss_g.item())
        history["d_real"].append(torch.sigmoid(real_logits.detach()).mean().item())
        history["d_fake"].append(torch.sigmoid(fake_logits.detach()).mean().item())
        monitor_step(step, steps, monitor, monitor_every, clock, history, generator)
    history["seconds"] = clock.seconds
    generator.eval()
    discriminator.eval()
    return history


@dataclass(frozen=True)
class ConditionalGANTrainingConfig:
    """Hyperparameters of :func:`train_conditional_gan` (and of the MNIST GAN of the chapter).

    Attributes:
        batch_size: 64 digits per minibatch (DCGAN used 128 on far larger data sets).
        learning_rate: DCGAN's 2e-4 for both players (Radford et al., 2016).
        betas: DCGAN's ``(0.5, 0.999)``.
    """

    batch_size: int = 64
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


def train_conditional_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    generator_rng: torch.Generator,
    *,
    config: ConditionalGANTrainingConfig = ConditionalGANTrainingConfig(),
    progress: bool = False,
    monitor: Callable[[int, float], dict] | None = None,
    monitor_every: int = 0,
) -> dict[str, list]:
    """Train a conditional GAN (Mirza & Osindero, 2014) with the non-saturating loss.

    As :func:`train_gan` with ``k = 1``, except that both players see a class label: real
    minibatches ``(x, y)`` are drawn from ``images``/``labels`` (indices from
    ``generator_rng``), and fakes ``G(z, y')`` use labels ``y'`` drawn uniformly from
    ``0..num_classes-1``; the discriminator scores ``D(x, y)``.

    Args:
        generator: ``generator(z, labels)`` with int attributes ``latent_dim`` and
            ``num_classes``.
        discriminator: ``discriminator(x, labels)`` to ``(B,)`` logits.
        images: ``(N, ...)`` training samples; labels: ``(N,)`` int64.
        steps: generator updates.
        generator_rng: a CPU ``torch.Generator``.
        config: batch size and Adam's hyperparameters.
        progress, monitor, monitor_every: as in :func:`train_gan`.

    Returns:
        ``{"discriminator", "generator", "d_real", "d_fake"}`` per step, ``"monitor"``,
        ``"seconds"``, as in :func:`train_gan`.

    Raises:
        TypeError / ValueError: bad arguments.
    """
    require_positive_int("steps", steps)
    require_generator("generator_rng", generator_rng)
    require_tensor("labels", labels, ndim=1, floating=False)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels must have the same length, got {images.shape[0]} "
                         f"and {labels.shape[0]}")
    num_classes = require_positive_int("generator.num_classes", generator.num_classes)
    device = device_of(generator)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.learning_rate,
                                   betas=config.betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.learning_rate,
                                   betas=config.betas)
    n = config.batch_size

    def fake_batch() -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, generator.latent_dim, generator=generator_rng)  # (B, D)
        y = torch.randint(num_classes, (n,), generator=generator_rng)  # (B,)
        y = y.to(device)
        return generator(z.to(device), y), y

    history: dict[str, list] = {"discriminator": [], "generator": [], "d_real": [],
                                "d_fake": [], "monitor": []}
    generator.train()
    discriminator.train()
    clock = TrainingClock()
    for step in training_progress(range(1, steps + 1), progress, "conditional GAN"):
        index = torch.randint(len(images), (n,), generator=generator_rng)
        real, real_y = images[index].to(device), labels[index].to(device)
        with torch.no_grad():
            fake, fake_y = fake_batch()
        real_logits = discriminator(real, real_y)
        fake_logits = discriminator(fake, fake_y)
        loss_d = discriminator_loss(real_logits, fake_logits)
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()
        fake, fake_y = fake_batch()
        loss_g = generator_loss_nonsaturating(discriminator(fake, fake_y))
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        history["discriminator"].append(loss_d.item())
        history["generator"].append(loss_g.item())
        history["d_real"].append(torch.sigmoid(real_logits.detach()).mean().item())
        history["d_fake"].append(torch.sigmoid(fake_logits.detach()).mean().item())
        monitor_step(step, steps, monitor, monitor_every, clock, history, generator)
    history["seconds"] = clock.seconds
    generator.eval()
    discriminator.eval()
    return history


def draw_samples(
    generator: nn.Module,
    n: int,
    generator_rng: torch.Generator,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw ``n`` samples ``generator(z[, labels])`` in eval mode, without gradients.

    Args:
        generator: a trained generator with an int ``latent_dim``.
        n: number of samples.
        generator_rng: a CPU ``torch.Generator`` for ``z``.
        labels: ``(n,)`` int64 classes for a conditional generator, else None.

    Returns:
        The samples on the CPU (``(n, 1, 28, 28)`` for the MNIST generators).

    Raises:
        TypeError / ValueError: ``n`` not a positive int, ``generator_rng`` not a
            ``torch.Generator``; a conditional generator validates ``labels`` itself.
    """
    require_positive_int("n", n)
    require_generator("generator_rng", generator_rng)
    device = device_of(generator)
    z = torch.randn(n, generator.latent_dim, generator=generator_rng)  # (n, D)
    generator.eval()
    with torch.no_grad():
        if labels is None:
            return generator(z.to(device)).cpu()
        return generator(z.to(device), labels.to(device)).cpu()


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, num: int) -> torch.Tensor:
    """``num`` points on the segment from ``z0`` to ``z1`` (both ``(D,)``): ``(num, D)``.

    Linear interpolation, as in DCGAN's latent walks (Radford et al., 2016, §6.1).

    Raises:
        TypeError / ValueError: ``z0`` or ``z1`` not a 1-D floating tensor, their shapes
            differ, or ``num`` is not a positive int.
    """
    require_tensor("z0", z0, ndim=1, floating=True)
    require_tensor("z1", z1, ndim=1, floating=True)
    require_same_shape("z0", z0, "z1", z1)
    require_positive_int("num", num)
    t = torch.linspace(0, 1, num, dtype=z0.dtype).unsqueeze(1)  # (num, 1)
    return (1 - t) * z0 + t * z1  # (num, D)
