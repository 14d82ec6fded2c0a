"""Tests of the hw4_gan autograder checks (second edition: DCGAN and LSGAN): each accepts the
reference and rejects realistic wrong answers with a message that names the function and
gives a targeted hint."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradelib.checks import assertions
from gradelib.checks import hw4_gan as checks
from gradelib.checks.references import hw4_gan as reference

# ------------------------------------------------------------------------------ LSGAN


def test_lsgan_losses_accepts_the_reference_and_mse_loss():
    checks.check_lsgan_losses(reference.lsgan_losses)

    def with_mse(real, fake):
        return (0.5 * F.mse_loss(real, torch.ones_like(real))
                + 0.5 * F.mse_loss(fake, torch.zeros_like(fake)),
                0.5 * F.mse_loss(fake, torch.ones_like(fake)))

    checks.check_lsgan_losses(with_mse)


def _ls(d_real=1.0, d_fake=0.0, g_target=1.0, half=0.5, reduce=torch.mean, squash=None,
        g_sign=1.0):
    def fn(real, fake):
        if squash is not None:
            real, fake = squash(real), squash(fake)
        d = half * reduce((real - d_real) ** 2) + half * reduce((fake - d_fake) ** 2)
        g = g_sign * half * reduce((fake - g_target) ** 2)
        return d, g
    return fn


@pytest.mark.parametrize("wrong, message", [
    (_ls(d_real=0.0, d_fake=1.0), "targets are swapped"),
    (_ls(half=1.0), "1/2 is missing"),
    (_ls(reduce=torch.sum), "do not sum"),
    (_ls(d_fake=-1.0), "coding a = -1"),
    (_ls(squash=torch.sigmoid), "do not apply a sigmoid"),
    (lambda r, f: reference.lsgan_losses(r, f)[::-1], "in this order"),
    (_ls(g_target=0.0), "target is c = 1"),
    (lambda r, f: (reference.lsgan_losses(r, f)[0], -0.5 * (f**2).mean()), "not the negated"),
    (lambda r, f: (0.5 * (r - 1) ** 2, 0.5 * (f - 1) ** 2), "shape"),
    (lambda r, f: reference.lsgan_losses(r, f)[0], "expected a tuple"),
])
def test_lsgan_losses_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_lsgan_losses(wrong)


def test_a_failure_message_names_the_function_the_input_and_the_values():
    with pytest.raises(AssertionError) as info:
        checks.check_lsgan_losses(_ls(half=1.0))
    message = str(info.value)
    assert message.startswith("lsgan_losses: ")
    assert "random scores (B=16)" in message and "expected" in message and "Hint:" in message


def test_lsgan_optimal_discriminator_accepts_the_reference_and_the_plain_formula():
    checks.check_lsgan_optimal_discriminator(reference.lsgan_optimal_discriminator)
    checks.check_lsgan_optimal_discriminator(lambda p, q, a, b: (b * p + a * q) / (p + q))


@pytest.mark.parametrize("wrong, message", [
    (lambda p, q, a, b: (a * p + b * q) / (p + q), "b is the target of the real"),
    (lambda p, q, a, b: b * p + a * q, "Divide by p_data \\+ p_g"),
    (lambda p, q, a, b: p / (p + q), "the GAN's D\\*"),
    (lambda p, q, a, b: ((b * p + a * q) / (p + q)).flatten(), "shape"),
    (lambda p, q, a, b: (b * p + a * q) / (p + q + 1e-3), "lsgan_optimal_discriminator: .*largest error"),
    (lambda p, q, a, b: torch.full_like(p, (a + b) / 2), "Minimise p_data"),
])
def test_lsgan_optimal_discriminator_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_lsgan_optimal_discriminator(wrong)


def test_the_lsgan_optimum_minimises_the_objective_on_discrete_distributions():
    """The reference D* is the minimiser: perturbing it raises the discriminator's objective."""
    g = torch.Generator().manual_seed(0)
    p, q = torch.rand(2, 8, generator=g, dtype=torch.float64)
    p, q = p / p.sum(), q / q.sum()
    for a, b in [(0.0, 1.0), (-1.0, 1.0)]:
        d = reference.lsgan_optimal_discriminator(p, q, a, b)

        def objective(y):
            return 0.5 * (p * (y - b) ** 2).sum() + 0.5 * (q * (y - a) ** 2).sum()

        for step in (1e-3, -1e-3):
            assert objective(d + step * torch.randn(8, generator=g, dtype=torch.float64)) > objective(d)
        if (a, b) == (-1.0, 1.0):  # with b - c = 1, b - a = 2 (c = 0): 2 C(G) is Pearson's chi^2
            c_of_g = 0.5 * (p * d**2).sum() + 0.5 * (q * d**2).sum()
            torch.testing.assert_close(2 * c_of_g, ((2 * q - (p + q)) ** 2 / (p + q)).sum())


# ------------------------------------------------------------------------- architecture


class _Generator(reference.DCGANGenerator):
    """The reference generator with its layers replaced (``layers(latent_dim) -> list``)."""

    layers = None
    drop_latent_dim = False

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        if self.layers is not None:
            self.net = nn.Sequential(*type(self).layers(latent_dim))
        if self.drop_latent_dim:
            del self.latent_dim


def _generator(**kwargs):
    return type("WrongGenerator", (_Generator,), kwargs)


def _g_layers(output=nn.Tanh, output_norm=False, track=True):
    def layers(d):
        return [nn.ConvTranspose2d(d, 64, 7, bias=False), nn.BatchNorm2d(64, track_running_stats=track),
                nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32),
                nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1)] + (
                    [nn.BatchNorm2d(1)] if output_norm else []) + ([output()] if output else [])
    return staticmethod(layers)


class _FlatGenerator(reference.DCGANGenerator):
    def forward(self, z):
        return super().forward(z).flatten(1)  # (B, 784)


class _UpsamplingGenerator(reference.DCGANGenerator):
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 64, 7), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.BatchNorm2d(32),
            nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(32, 1, 3, padding=1), nn.Tanh())


class _LinearGenerator(reference.DCGANGenerator):
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(latent_dim, 256), nn.BatchNorm1d(256),
                                 nn.ReLU(), nn.Linear(256, 784), nn.Tanh(),
                                 nn.Unflatten(1, (1, 28, 28)))


def test_generator_check_accepts_the_reference():
    checks.check_dcgan_generator(reference.DCGANGenerator)


@pytest.mark.parametrize("wrong, message", [
    (_generator(layers=_g_layers(output=nn.Sigmoid)), "not a sigmoid"),
    (_generator(layers=_g_layers(output=None)), "nn.Tanh"),
    (_generator(layers=_g_layers(output_norm=True)), "output layer"),
    (_generator(layers=_g_layers(track=False)), "own z only"),
    (_generator(drop_latent_dim=True), "self.latent_dim = latent_dim"),
    (_FlatGenerator, "shape \\(16, 784\\); expected \\(16, 1, 28, 28\\)"),
    (_UpsamplingGenerator, "transposed \\(fractionally strided\\)"),
    (_LinearGenerator, "0 nn.ConvTranspose2d"),
    (lambda latent_dim: lambda z: torch.zeros(len(z), 1, 28, 28), "not a torch.nn.Module"),
])
def test_generator_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dcgan_generator(wrong)


def _d_layers(input_norm=False, first_norm=False, pool=False, slope=0.2, relu=False,
              sigmoid=False, track=True):
    def act():
        return nn.ReLU() if relu else nn.LeakyReLU(slope)

    def layers():
        down1 = [nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2)] if pool else [nn.Conv2d(1, 32, 4, 2, 1)]
        down2 = ([nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.MaxPool2d(2)] if pool
                 else [nn.Conv2d(32, 64, 4, 2, 1, bias=False)])
        return (([nn.BatchNorm2d(1)] if input_norm else []) + down1
                + ([nn.BatchNorm2d(32)] if first_norm else []) + [act()] + down2
                + [nn.BatchNorm2d(64, track_running_stats=track), act(), nn.Conv2d(64, 1, 7)]
                + ([nn.Sigmoid()] if sigmoid else []))
    return layers


def _discriminator(layers=None, squash=None, keep_dim=False):
    class WrongDiscriminator(reference.DCGANDiscriminator):
        def __init__(self):
            super().__init__()
            if layers is not None:
                self.net = nn.Sequential(*layers())

        def forward(self, x):
            out = self.net(x).reshape(len(x))
            if squash is not None:
                out = squash(out)
            return out.unsqueeze(1) if keep_dim else out

    return WrongDiscriminator


def test_discriminator_check_accepts_the_reference():
    checks.check_dcgan_discriminator(reference.DCGANDiscriminator)


@pytest.mark.parametrize("wrong, message", [
    (_discriminator(_d_layers(input_norm=True)), "normalises its one-channel input"),
    (_discriminator(_d_layers(first_norm=True)), "BatchNorm2d|net.1 with 32 features, the output of its input layer net.0"),
    (_discriminator(_d_layers(sigmoid=True)), "nn.Sigmoid layer"),
    (_discriminator(squash=torch.sigmoid), "look like probabilities"),
    (_discriminator(_d_layers(pool=True)), "pooling layers: net.1 \\(MaxPool2d\\)"),
    (_discriminator(_d_layers(slope=0.01)), "slope 0.01; expected 0.2"),
    (_discriminator(_d_layers(relu=True)), "no plain ReLU"),
    (_discriminator(_d_layers(track=False)), "its own image only"),
    (_discriminator(keep_dim=True), "shape \\(16, 1\\); expected \\(16,\\)"),
])
def test_discriminator_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dcgan_discriminator(wrong)


def _wide_first_norm():
    """Batch norm after the input layer where its width does not tell (two 64-channel convs)."""
    return [nn.Conv2d(1, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 1, 7)]


def test_discriminator_check_finds_batch_norm_after_the_input_layer_by_its_effect():
    with pytest.raises(AssertionError, match="the same scores .* for a batch x and for 2x"):
        checks.check_dcgan_discriminator(_discriminator(_wide_first_norm))


def test_the_input_normalisation_test_has_a_wide_margin_on_the_reference():
    """Doubling the batch moves the reference's scores by a good share of their spread, even
    after dcgan_init_ (whose zero biases the check replaces)."""
    torch.manual_seed(checks.SEED)
    model = reference.DCGANDiscriminator()
    reference.dcgan_init_(model)
    with torch.no_grad():
        model.net[0].bias.copy_(0.5 * torch.randn(32, generator=torch.Generator().manual_seed(0)))
    x = checks._digits(16)
    with torch.no_grad():
        scores, doubled = model.train()(x), model(2 * x)
    assert (scores - doubled).abs().max() > 0.1 * scores.std()


# ----------------------------------------------------------------------- initialisation


def test_init_check_accepts_the_reference():
    checks.check_dcgan_init(reference.dcgan_init_, reference.DCGANGenerator,
                            reference.DCGANDiscriminator)


def _init(conv=(nn.Conv2d, nn.ConvTranspose2d), conv_std=0.02, norm_mean=1.0, norm_std=0.02,
          zero_bias=True, draw=nn.init.normal_):
    def init(module):
        for m in module.modules():
            if isinstance(m, conv):
                draw(m.weight, 0.0, conv_std)
                if zero_bias and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                if norm_std is not None:
                    nn.init.normal_(m.weight, norm_mean, norm_std)
                nn.init.zeros_(m.bias)
    return init


def _uniform(weight, mean, std):
    half = math.sqrt(3) * std
    nn.init.uniform_(weight, mean - half, mean + half)


@pytest.mark.parametrize("wrong, message", [
    (_init(conv=nn.Linear), "not only nn.Linear"),
    (_init(conv=nn.Conv2d), "ConvTranspose2d is not a subclass of nn.Conv2d"),
    (_init(norm_mean=0.0), "N\\(1, 0.02\\), not N\\(0, 0.02\\)"),
    (_init(norm_std=None), "(?s)left the weights of .*BatchNorm2d.*N\\(1, 0.02\\)"),
    (_init(conv_std=0.02**2), "not the variance"),
    (_init(conv_std=1.0), "not the default 1"),
    (_init(zero_bias=False), "biases up to"),
    (_init(draw=_uniform), "normal distribution"),
    (lambda module: None, "unchanged"),
])
def test_init_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dcgan_init(wrong, reference.DCGANGenerator, reference.DCGANDiscriminator)


# --------------------------------------------------------------------------- training


def _train(**changes):
    """The reference ``train_dcgan`` with one thing changed."""
    def train(generator, discriminator, images, steps, loss, generator_rng):
        if changes.get("ignore_loss"):
            loss = "nonsaturating"
        if changes.get("global_noise"):
            real_randn = torch.randn

            def randn(*args, generator=None, **kwargs):
                return real_randn(*args, **kwargs)  # ignores the generator passed in

            torch.randn = randn
            try:
                return reference.train_dcgan(generator, discriminator, images, steps, loss,
                                             generator_rng)
            finally:
                torch.randn = real_randn
        return reference.train_dcgan(generator, discriminator, images, steps, loss, generator_rng)
    return train


ARGS = (reference.DCGANGenerator, reference.DCGANDiscriminator, reference.dcgan_init_)


def test_contract_check_accepts_the_reference():
    checks.check_train_dcgan_contract(reference.train_dcgan, *ARGS)


def _frozen(generator, discriminator, images, steps, loss, generator_rng):
    torch.randn(3, generator=generator_rng)
    return {"discriminator": [1.0] * steps, "generator": [1.0] * steps}


@pytest.mark.parametrize("wrong, message", [
    (_train(ignore_loss=True), "identical loss histories"),
    (_train(global_noise=True), "after torch's global generator was reseeded"),
    (_frozen, "left the generator's weights unchanged"),
    (lambda g, d, images, steps, loss, rng: {"discriminator": [1.0] * steps,
                                             "generator": [1.0] * steps}, "never used"),
    (lambda *args: [0.0] * 3, "expected a dict"),
    (lambda g, d, images, steps, loss, rng: {"discriminator": [0.0], "generator": [0.0]},
     "length 1; expected a list of 3"),
    (lambda g, d, images, steps, loss, rng: {"discriminator": [math.nan] * steps,
                                             "generator": [0.0] * steps}, "non-finite"),
])
def test_contract_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_dcgan_contract(wrong, *ARGS)


def test_contract_check_reports_student_exceptions():
    def broken(*args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(AssertionError, match="train_dcgan: raised RuntimeError: mat1"):
        checks.check_train_dcgan_contract(broken, *ARGS)


@pytest.mark.parametrize("check", [checks.check_train_dcgan_nonsaturating,
                                   checks.check_train_dcgan_lsgan])
def test_training_checks_accept_the_reference_within_their_band(check):
    result = check(reference.train_dcgan, *ARGS)
    assert result["confident_share"] >= checks.MIN_CONFIDENT_SHARE
    assert min(result["digit_counts"]) >= checks.MIN_DIGIT_COUNT


def _lsgan_targets_swapped(generator, discriminator, images, steps, loss, generator_rng):
    original = reference.lsgan_losses

    def swapped(real, fake):
        return original(fake, real)[0], original(real, fake)[1]

    reference.lsgan_losses = swapped
    try:
        return reference.train_dcgan(generator, discriminator, images, steps, loss, generator_rng)
    finally:
        reference.lsgan_losses = original


def test_lsgan_training_check_rejects_swapped_targets():
    with pytest.raises(AssertionError, match=f"train_dcgan: after {checks.TRAINING_STEPS} steps "
                                             "with loss='lsgan', the course's digit classifier"):
        checks.check_train_dcgan_lsgan(_lsgan_targets_swapped, *ARGS)


def _digits_left_in_unit_range(generator, discriminator, images, steps, loss, generator_rng):
    """The reference loop fed digits in [0, 1] (it rescales them with 2x - 1: undo that)."""
    return reference.train_dcgan(generator, discriminator, (images + 1) / 2, steps, loss,
                                 generator_rng)


def test_training_check_rejects_digits_left_in_the_unit_range():
    """Trained on data in [0, 1], the 4x4 DCGAN can reach the share and digit bars (the
    band's seeding: ``gan_band.json``); then the samples' background, near 0 instead of -1,
    fails it. With the check's own seeding the run misses the digit bar first."""
    with pytest.raises(AssertionError, match=f"after {checks.TRAINING_STEPS} steps with "
                                             "loss='nonsaturating', (only .* pixels are below "
                                             "-0.5|the course's digit)"):
        checks.check_train_dcgan_nonsaturating(_digits_left_in_unit_range, *ARGS)


def test_the_background_bar_rejects_samples_in_the_unit_range(monkeypatch):
    """Samples that meet the share and digit bars but have a background near 0 fail."""
    monkeypatch.setattr(checks, "training_time_budget", lambda images, loss: 600.0)
    monkeypatch.setattr(checks, "sample_quality", lambda generator, seed: {
        "confident_share": 0.5, "digit_counts": [100] * 10, "confident_counts": [50] * 10,
        "min_value": 0.0, "background_share": 0.0})
    monkeypatch.setattr(checks, "TRAINING_STEPS", 2)
    with pytest.raises(AssertionError, match="(?s)only 0.0% of the samples' pixels are below "
                                             "-0.5.*2 \\* images - 1"):
        checks.check_train_dcgan_nonsaturating(reference.train_dcgan, *ARGS)


def test_training_check_rejects_too_few_steps(monkeypatch):
    """At a tenth of the steps the reference's samples are below the band."""
    monkeypatch.setattr(checks, "TRAINING_STEPS", 40)
    with pytest.raises(AssertionError, match="after 40 steps with loss='nonsaturating', the "
                                             "course's digit classifier labels"):
        checks.check_train_dcgan_nonsaturating(reference.train_dcgan, *ARGS)


class _HalfRangeGenerator(reference.DCGANGenerator):
    """Outputs in [0, 1]: what a generator learns from data left in [0, 1]."""

    def forward(self, z):
        return (super().forward(z) + 1) / 2


def test_training_check_hints_at_the_data_range(monkeypatch):
    monkeypatch.setattr(checks, "TRAINING_STEPS", 10)
    monkeypatch.setattr(checks, "training_time_budget", lambda images, loss: 600.0)
    with pytest.raises(AssertionError, match="2 \\* images - 1"):
        checks.check_train_dcgan_nonsaturating(reference.train_dcgan, _HalfRangeGenerator,
                                               reference.DCGANDiscriminator, reference.dcgan_init_)


def test_training_check_enforces_its_time_budget(monkeypatch):
    monkeypatch.setattr(checks, "training_time_budget", lambda images, loss: 0.0)

    def instant(generator, discriminator, images, steps, loss, generator_rng):
        return {"discriminator": [0.0] * steps, "generator": [0.0] * steps}

    with pytest.raises(AssertionError, match="budget on this machine is 0.0 s"):
        checks.check_train_dcgan_lsgan(instant, *ARGS)


def test_time_budget_grows_with_the_machines_load(monkeypatch):
    images = checks._train_images()
    assert checks.training_time_budget(images, "lsgan") >= checks.TRAINING_TIME_BUDGET_S
    # where a tenth of the steps takes 100 s, the budget is factor * 10 * 100 s
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(assertions, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(checks.reference, "train_dcgan", lambda *args, **kwargs: {})
    assert checks.training_time_budget(images, "lsgan") == checks.TRAINING_TIME_FACTOR * 10 * 100.0


def test_sample_quality_judges_real_digits_as_confident_and_noise_as_not():
    """The judge's figures on data: real test digits are mostly confident, blank images are not."""
    digits = checks._digits(1000)

    class Replay(nn.Module):
        latent_dim = 4

        def __init__(self, images):
            super().__init__()
            self.images, self.start = images, 0

        def forward(self, z):
            out = self.images[self.start : self.start + len(z)]
            self.start += len(z)
            return out

    real = checks.sample_quality(Replay(digits))
    blank = checks.sample_quality(Replay(-torch.ones(1000, 1, 28, 28)))
    assert real["confident_share"] > 0.8 and min(real["digit_counts"]) > 50
    assert blank["confident_share"] in (0.0, 1.0) and sum(c > 0 for c in blank["digit_counts"]) <= 1


# ------------------------------------------------------------- the references' own contract


def test_references_validate_their_arguments():
    with pytest.raises(TypeError, match="real_scores"):
        reference.lsgan_losses(None, torch.zeros(3))
    with pytest.raises(ValueError, match="fake_scores"):
        reference.lsgan_losses(torch.zeros(3), torch.zeros(0))
    with pytest.raises(ValueError, match="p_g"):
        reference.lsgan_optimal_discriminator(torch.ones(2), torch.tensor([0.5, -0.5]), 0.0, 1.0)
    with pytest.raises(TypeError, match="a must be a real number"):
        reference.lsgan_optimal_discriminator(torch.ones(2), torch.ones(2), "0", 1.0)
    with pytest.raises(ValueError, match="z must have shape"):
        reference.DCGANGenerator(8)(torch.zeros(2, 9))
    with pytest.raises(ValueError, match="x must have shape"):
        reference.DCGANDiscriminator()(torch.zeros(2, 1, 32, 32))
    with pytest.raises(TypeError, match="module"):
        reference.dcgan_init_("not a module")
    generator, discriminator = reference.DCGANGenerator(8), reference.DCGANDiscriminator()
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="loss must be one of"):
        reference.train_dcgan(generator, discriminator, images, 1, "wasserstein", torch.Generator())
    with pytest.raises(ValueError, match="images must have values in"):
        reference.train_dcgan(generator, discriminator, 2 * images - 1, 1, "lsgan", torch.Generator())
    with pytest.raises(TypeError, match="generator_rng"):
        reference.train_dcgan(generator, discriminator, images, 1, "lsgan", 0)


def test_lsgan_optimum_is_the_midpoint_where_both_probabilities_vanish():
    d = reference.lsgan_optimal_discriminator(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]),
                                              -1.0, 1.0)
    assert d.tolist() == [0.0, 1.0]
