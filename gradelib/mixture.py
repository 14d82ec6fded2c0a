"""The one-dimensional Gaussian mixture, fitted by maximum likelihood with EM (syllabus §1).

Chapter 1 of the book uses it to make "maximum likelihood" concrete before any neural
network appears: a density that can be evaluated, samples that can be drawn, and a fit that
maximises the average log-likelihood of data. A mixture of ``K`` Gaussians has density

    p(x) = sum_k pi_k N(x; mu_k, sigma_k^2),   pi_k >= 0,  sum_k pi_k = 1,

evaluated here in log space with ``logsumexp`` so that far tails do not underflow.

:func:`fit_gaussian_mixture` runs the expectation-maximisation algorithm of Dempster, Laird
& Rubin (1977) in the form of Bishop (2006, *Pattern Recognition and Machine Learning*,
§9.2.2, equations 9.23-9.28): the E-step computes each point's responsibilities
``r_nk = pi_k N(x_n; mu_k, sigma_k^2) / p(x_n)``, the M-step sets the weights, means and
variances to their responsibility-weighted averages. Each iteration never decreases the
log-likelihood (Dempster et al., 1977, Theorem 1), which the tests check.

The mixture likelihood is unbounded: a component centred on one data point whose standard
deviation shrinks to zero sends the likelihood to infinity (Bishop, 2006, §9.2.1). The fit
therefore keeps every standard deviation above a floor (:class:`EMConfig`); with the floor
the M-step is still the exact maximiser over the constrained set, so monotonicity holds.

:func:`kl_divergence_on_grid`, :func:`cross_entropy_on_grid` and :func:`entropy_on_grid`
integrate log-densities tabulated on a grid with the trapezoidal rule (``torch.trapezoid``);
the chapter uses them to check numerically that the expected negative log-likelihood of a
model equals ``H(p_data) + KL(p_data || p_model)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gradelib.validation import require_generator, require_positive_int, require_same_shape, require_tensor

__all__ = [
    "GaussianMixture1D",
    "EMConfig",
    "fit_gaussian_mixture",
    "cross_entropy_on_grid",
    "entropy_on_grid",
    "kl_divergence_on_grid",
]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class GaussianMixture1D:
    """A mixture of ``K`` univariate Gaussians.

    Attributes:
        weights: ``(K,)`` mixing proportions ``pi_k``, non-negative, summing to 1.
        means: ``(K,)`` component means ``mu_k``.
        stds: ``(K,)`` component standard deviations ``sigma_k > 0``.

    All three are stored as float64 (converted on construction).

    Raises:
        TypeError: an attribute is not a 1-D floating tensor.
        ValueError: shapes differ, ``K == 0``, weights are negative or do not sum to 1
            (within 1e-6), or a standard deviation is not positive and finite.
    """

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("weights", "means", "stds"):
            value = require_tensor(name, getattr(self, name), ndim=1, floating=True)
            object.__setattr__(self, name, value.detach().to(torch.float64))
        require_same_shape("weights", self.weights, "means", self.means)
        require_same_shape("weights", self.weights, "stds", self.stds)
        if self.weights.numel() == 0:
            raise ValueError("a mixture needs at least one component, got weights of shape (0,)")
        if bool((self.weights < 0).any()) or abs(float(self.weights.sum()) - 1.0) > 1e-6:
            raise ValueError(
                "weights must be non-negative and sum to 1, got "
                f"{self.weights.tolist()} (sum {float(self.weights.sum()):.8g})"
            )
        if not bool(torch.isfinite(self.means).all()):
            raise ValueError(f"means must be finite, got {self.means.tolist()}")
        if not bool(((self.stds > 0) & torch.isfinite(self.stds)).all()):
            raise ValueError(f"stds must be positive and finite, got {self.stds.tolist()}")

    @property
    def num_components(self) -> int:
        """``K``, the number of Gaussian components."""
        return int(self.weights.shape[0])

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log N(x_n; mu_k, sigma_k^2)`` for every point and component.

        Args:
            x: ``(N,)`` floating tensor.

        Returns:
            ``(N, K)`` float64 tensor, nats.

        Raises:
            TypeError / ValueError: ``x`` is not a 1-D floating tensor.
        """
        require_tensor("x", x, ndim=1, floating=True)
        x = x.detach().to(torch.float64).unsqueeze(1)  # (N, 1)
        z = (x - self.means) / self.stds  # (N, K)
        log_normal = -0.5 * z**2 - torch.log(self.stds) - _LOG_SQRT_2PI  # (N, K)
        return torch.log(self.weights) + log_normal

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density ``log p(x_n)`` of each point, in nats.

        Args:
            x: ``(N,)`` floating tensor.

        Returns:
            ``(N,)`` float64 tensor (``logsumexp`` over components, so no underflow in the
            tails).

        Raises:
            TypeError / ValueError: ``x`` is not a 1-D floating tensor.
        """
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` points ancestrally: a component ``k ~ pi``, then ``N(mu_k, sigma_k^2)``.

        Args:
            n: number of samples.
            generator: a CPU ``torch.Generator``, the only source of randomness.

        Returns:
            ``(n,)`` float64 tensor.

        Raises:
            TypeError: ``n`` is not an int or ``generator`` is not a ``torch.Generator``.
            ValueError: ``n`` is not positive.
        """
        require_positive_int("n", n)
        require_generator("generator", generator)
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, generator=generator, dtype=torch.float64)
        return self.means[components] + self.stds[components] * noise  # (n,)


@dataclass(frozen=True)
class EMConfig:
    """Settings of :func:`fit_gaussian_mixture`.

    Attributes:
        max_iterations: upper bound on EM iterations. 1-D fits of a few thousand points
            converge in tens to a few hundred iterations; 1,000 leaves room and still takes
            well under a second.
        tolerance: stop when an iteration raises the mean log-likelihood per point by less
            than this many nats. 1e-9 is far below any difference the book reports, so the
            fit is at a stationary point to plotting and printing precision.
        min_std_fraction: floor on every component's standard deviation, as a fraction of
            the data's standard deviation. The likelihood is unbounded (a component can
            collapse onto one point), so some floor is needed; 1e-3 of the data's scale
            never binds on the book's data but stops a collapse.
    """

    max_iterations: int = 1000
    tolerance: float = 1e-9
    min_std_fraction: float = 1e-3


def _initial_mixture(x: torch.Tensor, num_components: int) -> GaussianMixture1D:
    """Deterministic start: equal weights, means at the data's (k + 1/2)/K quantiles."""
    levels = (torch.arange(num_components, dtype=torch.float64) + 0.5) / num_components
    means = torch.quantile(x, levels)
    spread = x.std() / num_components if len(x) > 1 else torch.tensor(1.0, dtype=torch.float64)
    stds = torch.full((num_components,), float(spread.clamp_min(1e-12)), dtype=torch.float64)
    weights = torch.full((num_components,), 1.0 / num_components, dtype=torch.float64)
    return GaussianMixture1D(weights, means, stds)


def fit_gaussian_mixture(
    x: torch.Tensor,
    num_components: int,
    *,
    config: EMConfig = EMConfig(),
) -> tuple[GaussianMixture1D, list[float]]:
    """Fit a ``K``-component mixture to ``x`` by maximum likelihood with EM.

    Dempster, Laird & Rubin (1977); updates as in Bishop (2006), equations 9.23-9.28. The
    start is deterministic (means at evenly spaced quantiles of the data, equal weights,
    standard deviations ``std(x) / K``), so no random generator is needed: same data, same
    fit.

    Args:
        x: ``(N,)`` floating tensor, the data (converted to float64), ``N >= K``.
        num_components: ``K``.
        config: iteration limit, stopping tolerance and standard-deviation floor.

    Returns:
        ``(mixture, history)``: the fitted :class:`GaussianMixture1D` and the mean
        log-likelihood per point (nats) of the starting mixture followed by that after each
        iteration; non-decreasing up to round-off.

    Raises:
        TypeError / ValueError: ``x`` is not a 1-D floating tensor of finite values with at
            least ``K`` points, or ``num_components`` is not a positive int.
    """
    require_tensor("x", x, ndim=1, floating=True)
    require_positive_int("num_components", num_components)
    if len(x) < num_components:
        raise ValueError(
            f"x must hold at least num_components={num_components} points, got {len(x)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must contain only finite values")
    data = x.detach().to(torch.float64)
    floor = max(config.min_std_fraction * float(data.std()) if len(data) > 1 else 0.0, 1e-12)
    start = _initial_mixture(data, num_components)
    weights, means, stds = start.weights, start.means, start.stds
    column = data[:, None]  # (N, 1)
    history: list[float] = []
    for iteration in range(config.max_iterations + 1):
        # E-step: log pi_k + log N(x_n; mu_k, sigma_k^2) and responsibilities r_nk
        # (Bishop eq. 9.23), in log space; the log-likelihood of the current parameters
        # comes for free from the same logsumexp.
        joint = (torch.log(weights) - 0.5 * ((column - means) / stds) ** 2
                 - torch.log(stds) - _LOG_SQRT_2PI)  # (N, K)
        log_evidence = torch.logsumexp(joint, dim=1, keepdim=True)  # (N, 1)
        history.append(float(log_evidence.mean()))
        if iteration == config.max_iterations or (
            iteration > 0 and history[-1] - history[-2] < config.tolerance
        ):
            break
        responsibilities = torch.exp(joint - log_evidence)  # (N, K)
        # M-step (eqs. 9.24-9.26): responsibility-weighted counts, means and variances.
        counts = responsibilities.sum(dim=0)  # (K,)
        alive = counts > 1e-10  # a component that explains no point keeps its parameters
        safe = counts.clamp_min(1e-300)
        means = torch.where(alive, (responsibilities * column).sum(dim=0) / safe, means)
        variances = (responsibilities * (column - means) ** 2).sum(dim=0) / safe
        stds = torch.where(alive, variances.sqrt(), stds).clamp_min(floor)
        weights = counts / counts.sum()
    return GaussianMixture1D(weights, means, stds), history


def _check_grid(log_p: torch.Tensor, grid: torch.Tensor, name: str = "log_p") -> None:
    require_tensor(name, log_p, ndim=1, floating=True)
    require_tensor("grid", grid, ndim=1, floating=True)
    require_same_shape(name, log_p, "grid", grid)
    if len(grid) < 2 or not bool((grid[1:] > grid[:-1]).all()):
        raise ValueError("grid must hold at least two strictly increasing points")


def entropy_on_grid(log_p: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Differential entropy ``H(p) = -∫ p log p dx`` by the trapezoidal rule, in nats.

    Args:
        log_p: ``(G,)`` log-density of ``p`` at the grid points.
        grid: ``(G,)`` strictly increasing points covering (almost) all of ``p``'s mass.

    Returns:
        0-d float64 tensor. Differential entropy can be negative (narrow densities).

    Raises:
        TypeError / ValueError: not 1-D floating tensors of the same shape, or a grid that
            is not strictly increasing.
    """
    _check_grid(log_p, grid)
    log_p = log_p.to(torch.float64)
    integrand = -torch.exp(log_p) * log_p
    return torch.trapezoid(integrand, grid.to(torch.float64))


def cross_entropy_on_grid(
    log_p: torch.Tensor, log_q: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy ``H(p, q) = -∫ p log q dx``: the expected negative log-likelihood of a
    model ``q`` under data drawn from ``p``, in nats, by the trapezoidal rule.

    Args:
        log_p, log_q: ``(G,)`` log-densities at the grid points.
        grid: ``(G,)`` strictly increasing points.

    Returns:
        0-d float64 tensor.

    Raises:
        TypeError / ValueError: as :func:`entropy_on_grid`.
    """
    _check_grid(log_p, grid)
    _check_grid(log_q, grid, "log_q")
    integrand = -torch.exp(log_p.to(torch.float64)) * log_q.to(torch.float64)
    return torch.trapezoid(integrand, grid.to(torch.float64))


def kl_divergence_on_grid(
    log_p: torch.Tensor, log_q: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    """``KL(p || q) = ∫ p (log p - log q) dx`` by the trapezoidal rule, in nats.

    Note the direction: the expectation is under ``p`` (the data), which is the divergence
    that maximum likelihood minimises (see chapter 1).

    Args:
        log_p, log_q: ``(G,)`` log-densities at the grid points.
        grid: ``(G,)`` strictly increasing points.

    Returns:
        0-d float64 tensor, ``>= 0`` up to quadrature error.

    Raises:
        TypeError / ValueError: as :func:`entropy_on_grid`.
    """
    _check_grid(log_p, grid)
    _check_grid(log_q, grid, "log_q")
    log_p = log_p.to(torch.float64)
    integrand = torch.exp(log_p) * (log_p - log_q.to(torch.float64))
    return torch.trapezoid(integrand, grid.to(torch.float64))
