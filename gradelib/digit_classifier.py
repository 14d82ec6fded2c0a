"""A small convolutional digit classifier, the judge of generated MNIST digits.

The GAN chapter asks whether a conditional generator draws the digit it was asked for. A
classifier trained on real embedded MNIST answers that question automatically, in the
spirit of the Inception score (Salimans et al., 2016), which judges generated images with a
pretrained classifier: the share of samples of class ``y`` that it labels ``y`` is the
conditional GAN's *class accuracy*.

The network is LeNet-like (LeCun et al., 1998): two 3x3 convolutions with max pooling and
a small fully connected head. Trained for a few epochs on the 4,000 embedded training
digits it classifies about 95% of the 1,000 test digits correctly (asserted by
``tests/test_gan.py``), in about 10 seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from gradelib.data import load_mnist
from gradelib.device import make_generator
from gradelib.validation import require_generator, require_positive_int, require_shape, require_tensor

__all__ = [
    "DigitClassifier",
    "DigitClassifierConfig",
    "train_digit_classifier",
    "classify_digits",
    "reference_digit_classifier",
]


class DigitClassifier(nn.Module):
    """``(B, 1, 28, 28)`` images in [0, 1] to ``(B, 10)`` class logits.

    conv 3x3 (16 ch) - ReLU - maxpool 2 (14x14) - conv 3x3 (32 ch) - ReLU - maxpool 2 (7x7)
    - linear 64 - ReLU - linear 10.
    """

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
            nn.Flatten(),  # (B, 32*7*7)
            nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
            nn.Linear(64, 10),  # (B, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 28, 28)`` to ``(B, 10)`` logits."""
        require_tensor("x", x, ndim=4, floating=True)
        require_shape("x", x, (None, 1, 28, 28))
        return self.net(x)


@dataclass(frozen=True)
class DigitClassifierConfig:
    """Hyperparameters of :func:`train_digit_classifier`.

    Attributes:
        epochs: 6 passes over the 4,000 embedded digits reach about 95% test accuracy;
            more adds little on so few images.
        batch_size: 64 images per Adam step (~63 steps per epoch).
        learning_rate: Adam's default 1e-3 (Kingma & Ba, 2015).
    """

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 1e-3


def train_digit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    config: DigitClassifierConfig = DigitClassifierConfig(),
) -> DigitClassifier:
    """Train a fresh :class:`DigitClassifier` with cross-entropy and Adam.

    Weight initialisation uses torch's global generator (seed it for reproducibility);
    the shuffling uses ``generator``.

    Args:
        images: ``(N, 1, 28, 28)`` float32 in [0, 1].
        labels: ``(N,)`` int64 in 0..9.
        generator: a CPU ``torch.Generator`` for the shuffling.
        config: epochs, batch size, learning rate.

    Returns:
        The trained model in eval mode, on the CPU.

    Raises:
        TypeError / ValueError: bad shapes or dtypes.
    """
    require_tensor("images", images, ndim=4, floating=True)
    require_shape("images", images, (None, 1, 28, 28))
    require_tensor("labels", labels, ndim=1, floating=False)
    require_shape("labels", labels, (images.shape[0],))
    require_positive_int("config.epochs", config.epochs)
    require_generator("generator", generator)
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def classify_digits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Predicted digit of each image: ``(N, 1, 28, 28)`` to ``(N,)`` int64, without gradients.

    Raises:
        TypeError / ValueError: ``images`` is not a floating tensor of shape ``(N, 1, 28, 28)``.
    """
    require_tensor("images", images, ndim=4, floating=True)
    require_shape("images", images, (None, 1, 28, 28))
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i : i + batch_size].to(device)).argmax(dim=1).cpu()
                          for i in range(0, len(images), batch_size)])


@lru_cache(maxsize=1)
def reference_digit_classifier(seed: int = 0) -> tuple[DigitClassifier, float]:
    """The course's judge: a :class:`DigitClassifier` trained on embedded MNIST (train split).

    Trained once per process (cached) with ``seed`` for both the initialisation and the
    shuffling; torch's global generator state is saved and restored around it.

    Returns:
        ``(model, test_accuracy)``: the model in eval mode on the CPU and its accuracy on
        the 1,000 embedded test digits, a float in [0, 1].
    """
    images, labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = train_digit_classifier(images, labels, make_generator(seed))
    finally:
        torch.random.set_rng_state(state)
    accuracy = float((classify_digits(model, test_images) == test_labels).float().mean())
    return model, accuracy
