"""The plain reference training recipe: pytorch/examples ``fast_neural_style`` (BSD-3-Clause), condensed.

Kept deliberately as that project ships it — fp32, eager, NCHW, inputs on the 0..255 scale, content features
computed through relu4_3 for every batch — so benchmarks compare fastnst against what users would otherwise run.
Only used by benchmarks; never imported by the package.
"""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn
from torchvision.models import vgg16


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class ReferenceTransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(128) for _ in range(5)])
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3, 1, 2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3, 1, 2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


VggOutputs = namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])


class ReferenceVgg16(nn.Module):
    def __init__(self, features_state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        features = vgg16(weights=None).features
        features.load_state_dict(features_state)
        self.slice1, self.slice2 = nn.Sequential(*features[:4]), nn.Sequential(*features[4:9])
        self.slice3, self.slice4 = nn.Sequential(*features[9:16]), nn.Sequential(*features[16:23])
        for param in self.parameters():
            param.requires_grad = False

    def forward(self, x: torch.Tensor) -> VggOutputs:
        h1 = self.slice1(x)
        h2 = self.slice2(h1)
        h3 = self.slice3(h2)
        h4 = self.slice4(h3)
        return VggOutputs(h1, h2, h3, h4)


def gram_matrix(y: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    mean = batch.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
    std = batch.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
    return (batch.div(255.0) - mean) / std


class ReferenceTrainer:
    """One pytorch/examples training step per ``step(x)``; x is a batch on the 0..255 scale."""

    def __init__(self, features_state: dict[str, torch.Tensor], style: torch.Tensor, device: torch.device,
                 seed: int = 0) -> None:
        torch.manual_seed(seed)  # the network's initialisation; the data order is fixed (unshuffled)
        self.model = ReferenceTransformerNet().to(device)
        self.vgg = ReferenceVgg16(features_state).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), 1e-3)
        self.mse = nn.MSELoss()
        with torch.no_grad():
            self.gram_style = [gram_matrix(y) for y in self.vgg(normalize_batch(style.to(device) * 255))]

    def step(self, x: torch.Tensor) -> float:
        n = len(x)
        self.optimizer.zero_grad()
        y = self.model(x)
        y, x = normalize_batch(y), normalize_batch(x)
        features_y, features_x = self.vgg(y), self.vgg(x)
        content_loss = 1e5 * self.mse(features_y.relu2_2, features_x.relu2_2)
        style_loss = 0.0
        for ft_y, gm_s in zip(features_y, self.gram_style, strict=False):
            style_loss = style_loss + self.mse(gram_matrix(ft_y), gm_s.expand(n, -1, -1))
        total = content_loss + 1e10 * style_loss
        total.backward()
        self.optimizer.step()
        return total.item()
