"""VGG-16 (configuration D).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (ICLR 2015), table 1 column D: thirteen 3x3 convolutions (stride 1,
padding 1) in five stages of 64, 128, 256, 512 and 512 channels, each stage
closed by a 2x2 max pool, then three dense layers. No batch normalisation; as in
torchvision an adaptive 7x7 average pool precedes the classifier. 224x224 input,
138,357,544 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

# Output channels of each 3x3 convolution; "M" is a 2x2 max pool.
CONFIG_D: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                   512, 512, 512, "M", 512, 512, 512, "M")


def _features(config: tuple[int | str, ...]) -> nn.Sequential:
    """The convolutional stages described by config."""
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            width = int(item)
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A plain VGG network: convolutional stages, a 7x7 pool and three dense layers."""

    def __init__(self, config: tuple[int | str, ...] = CONFIG_D, num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = _features(config)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a [batch, 3, 224, 224] image batch."""
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
