"""ResNet-18 and ResNet-50.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016),
table 1: a 7x7 stride-2 stem and a 3x3 max pool, four stages of residual blocks
(64, 128, 256 and 512 base channels; stages 2-4 halve the resolution in their
first block), global average pooling and one dense layer. Shortcuts are identity
maps, or a 1x1 convolution with batch norm (option B) where the shape changes.
ResNet-18 stacks [2, 2, 2, 2] basic blocks (two 3x3 convolutions); ResNet-50
stacks [3, 4, 6, 3] bottleneck blocks (1x1 reduce, 3x3, 1x1 expand by 4) with
the stride on the 3x3 convolution, as in torchvision ("ResNet v1.5"). 224x224
input; 11,689,512 and 25,557,032 parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    """A bias-free 'same'-padded convolution and its batch norm."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels)]


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The projection shortcut (1x1 convolution + batch norm), or None for an identity one."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, width, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(width, width, 3)
        self.downsample = _shortcut(in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, same shape as x unless the block downsamples."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, added to the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, width * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, same shape as x unless the block downsamples."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Stem, four stages of residual blocks, global average pool and a dense classifier."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, int, int, int],
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(3, 64, 7, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages = []
        for index, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for position in range(depth):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(channels, width, stride))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a [batch, 3, 224, 224] image batch."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: [2, 2, 2, 2] basic blocks."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: [3, 4, 6, 3] bottleneck blocks."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
