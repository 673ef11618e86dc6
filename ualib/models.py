"""Network architectures used throughout the compendium.

Every model maps inputs to class logits ``[B, K]`` (or a regression output ``[B, 1]``). Stochastic
behaviour lives in ordinary ``nn.Dropout`` modules (used by MC dropout) or in the Flipout layers of
:mod:`ualib.layers`; the posteriors in :mod:`ualib.posteriors` decide how those are sampled.

An *evidential* model is an ordinary classifier whose logits are turned into Dirichlet parameters by
:func:`ualib.evidential.dirichlet_from_logits`; no special head is needed beyond choosing the evidence
function, so every architecture here can serve as one (see :class:`ualib.posteriors.Evidential`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ualib._checks import check_choice, check_positive_int

__all__ = ["LeNet", "SmallCNN", "ResNet18", "MLP", "build_model", "MODEL_NAMES"]

MODEL_NAMES = ("lenet", "small_cnn", "resnet18", "mlp")


def _flipout_options(flipout: bool | dict) -> dict:
    """``flipout`` is ``False``, ``True`` (default Flipout layers) or a dict of Flipout layer options
    (e.g. ``{"rho_init": (-6.0, 0.1)}``, see :mod:`ualib.layers.flipout`)."""
    return dict(flipout) if isinstance(flipout, dict) else {}


def _conv(cin: int, cout: int, k: int, flipout: bool | dict, **kw) -> nn.Module:
    if flipout:
        from ualib.layers.flipout import FlipoutConv2d

        return FlipoutConv2d(cin, cout, k, **_flipout_options(flipout), **kw)
    return nn.Conv2d(cin, cout, k, **kw)


def _linear(fin: int, fout: int, flipout: bool | dict) -> nn.Module:
    if flipout:
        from ualib.layers.flipout import FlipoutLinear

        return FlipoutLinear(fin, fout, **_flipout_options(flipout))
    return nn.Linear(fin, fout)


class LeNet(nn.Module):
    """A LeNet-style CNN for small grayscale images (MNIST 28x28, digits 8x8 or 16x16).

    ``conv(5x5, c1) - ReLU - maxpool - conv(5x5, c2) - ReLU - maxpool - dropout - fc(hidden) - ReLU -
    dropout - fc(K)``, with ``padding=2`` so any input size divisible by 4 works.

    Parameters
    ----------
    in_channels, in_size
        Input shape ``[B, in_channels, in_size, in_size]``; ``in_size`` must be divisible by 4.
    num_classes
        Number of output logits K.
    dropout
        Dropout probability before each fully connected layer (0 disables dropout).
    batchnorm
        Insert ``BatchNorm2d`` after each convolution (and ``BatchNorm1d`` after the hidden layer).
    flipout
        Use mean-field Gaussian Flipout layers (Bayes-by-backprop) instead of deterministic ones; a
        dict passes its options to every Flipout layer (e.g. ``{"rho_init": (-6.0, 0.1)}``).
    widths
        Channels of the two convolutions and the hidden layer width.

    References
    ----------
    Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document
    recognition. Proc. IEEE 86(11), 1998.
    """

    def __init__(
        self,
        in_channels: int = 1,
        in_size: int = 28,
        num_classes: int = 10,
        *,
        dropout: float = 0.3,
        batchnorm: bool = False,
        flipout: bool | dict = False,
        widths: tuple[int, int, int] = (16, 32, 128),
    ) -> None:
        super().__init__()
        check_positive_int(in_size, "in_size")
        if in_size % 4:
            raise ValueError(f"in_size must be divisible by 4 (two 2x2 poolings), got {in_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        c1, c2, h = widths
        feat: list[nn.Module] = [_conv(in_channels, c1, 5, flipout, padding=2)]
        if batchnorm:
            feat.append(nn.BatchNorm2d(c1))
        feat += [nn.ReLU(), nn.MaxPool2d(2), _conv(c1, c2, 5, flipout, padding=2)]
        if batchnorm:
            feat.append(nn.BatchNorm2d(c2))
        feat += [nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*feat)
        flat = c2 * (in_size // 4) ** 2
        head: list[nn.Module] = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(_linear(flat, h, flipout))
        if batchnorm:
            head.append(nn.BatchNorm1d(h))
        head.append(nn.ReLU())
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(_linear(h, num_classes, flipout))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W] -> logits [B, K]``."""
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A small VGG-style CNN for 32x32 colour images (CIFAR-10).

    Three blocks of ``conv3x3 - [BN] - ReLU - conv3x3 - [BN] - ReLU - maxpool`` with widths
    ``(w, 2w, 4w)``, then ``dropout - fc(4w*4*4 -> 128) - ReLU - dropout - fc(K)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        in_size: int = 32,
        num_classes: int = 10,
        *,
        width: int = 32,
        dropout: float = 0.3,
        batchnorm: bool = True,
        flipout: bool | dict = False,
    ) -> None:
        super().__init__()
        if in_size % 8:
            raise ValueError(f"in_size must be divisible by 8 (three 2x2 poolings), got {in_size}")
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in (width, 2 * width, 4 * width):
            for _ in range(2):
                layers.append(_conv(cin, cout, 3, flipout, padding=1))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(cout))
                layers.append(nn.ReLU())
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head += [_linear(cin * (in_size // 8) ** 2, 128, flipout), nn.ReLU()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(_linear(128, num_classes, flipout))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W] -> logits [B, K]``."""
        return self.classifier(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, batchnorm: bool) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not batchnorm)
        self.bn1 = norm(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batchnorm)
        self.bn2 = norm(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=not batchnorm), norm(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 adapted to 32x32 inputs (3x3 stem, no max-pool), with dropout before the classifier.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun. Deep residual learning for image recognition. CVPR 2016.
    """

    def __init__(
        self,
        in_channels: int = 3,
        in_size: int = 32,
        num_classes: int = 10,
        *,
        width: int = 64,
        dropout: float = 0.2,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        del in_size  # global average pooling makes the network size-agnostic
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=not batchnorm),
            nn.BatchNorm2d(width) if batchnorm else nn.Identity(),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        cin = width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            for j in range(2):
                blocks.append(_BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, batchnorm))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W] -> logits [B, K]``."""
        return self.fc(self.dropout(self.pool(self.blocks(self.stem(x)))))


class MLP(nn.Module):
    """A multilayer perceptron for tables: ``[Linear - [BN] - ReLU - dropout] x L - Linear``.

    ``in_features -> hidden... -> out_features`` (``out_features=1`` for regression).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden: tuple[int, ...] = (64, 64),
        dropout: float = 0.2,
        batchnorm: bool = False,
        flipout: bool | dict = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fin = in_features
        for h in hidden:
            layers.append(_linear(fin, h, flipout))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
            fin = h
        layers.append(_linear(fin, out_features, flipout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, F] -> [B, out_features]``."""
        return self.net(x)


def build_model(
    name: Literal["lenet", "small_cnn", "resnet18", "mlp"],
    *,
    in_channels: int = 1,
    in_size: int = 28,
    num_classes: int = 10,
    **kwargs: object,
) -> nn.Module:
    """Construct a model by name; ``kwargs`` go to the class (``dropout``, ``batchnorm``, ``flipout``...).

    For ``"mlp"``, ``in_channels`` is the number of input features and ``in_size`` is ignored.
    """
    check_choice(name, "name", MODEL_NAMES)
    if name == "lenet":
        return LeNet(in_channels, in_size, num_classes, **kwargs)  # type: ignore[arg-type]
    if name == "small_cnn":
        return SmallCNN(in_channels, in_size, num_classes, **kwargs)  # type: ignore[arg-type]
    if name == "resnet18":
        return ResNet18(in_channels, in_size, num_classes, **kwargs)  # type: ignore[arg-type]
    return MLP(in_channels, num_classes, **kwargs)  # type: ignore[arg-type]
