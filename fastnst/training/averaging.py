"""A moving average of the network's weights whose width grows with the run (Karras et al. 2024, "Analyzing and
Improving the Training Dynamics of Diffusion Models": the power-function EMA).

After step t the average moves towards the weights by 1 − β_t with β_t = (1 − 1/t)^(γ+1). Its averaging profile
over the steps so far has a standard deviation of ``width`` × t, so the average means the same thing in a run of
200 steps and one of 8000 (a fixed-decay EMA would average over the same number of steps in both, and in a short
run would still carry its random initialisation). Step 1 copies the weights: no start-up bias to correct.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from fastnst.training.config import EMA_MAX_WIDTH


def relative_width(gamma: float) -> float:
    """The standard deviation of the power-function profile of exponent γ, as a fraction of the steps so far."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def exponent_for_width(width: float) -> float:
    """The γ ≥ 0 whose profile has this relative width (0 < width ≤ EMA_MAX_WIDTH), by bisection: the width falls
    monotonically in γ from γ = 0 on."""
    if not 0 < width <= EMA_MAX_WIDTH:
        raise ValueError(f"the averaging width must be in (0, {EMA_MAX_WIDTH}], got {width}")
    low, high = 0.0, 1e7
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if relative_width(middle) > width else (low, middle)
    return (low + high) / 2


class WeightAverage:
    """The average of a model's parameters (buffers are copied as they are); ``update`` after every optimizer
    step. ``torch.lerp`` leaves a weight that did not change bit-equal, so frozen rows stay frozen in the average."""

    def __init__(self, model: nn.Module, width: float) -> None:
        self.gamma = exponent_for_width(width)
        self.updates = 0
        self.state = {name: value.detach().clone().float() for name, value in model.state_dict().items()}
        self.averaged_names = frozenset(name for name, value in model.named_parameters() if value.is_floating_point())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - (1.0 - 1.0 / self.updates) ** (self.gamma + 1)
        for name, value in model.state_dict().items():
            if name in self.averaged_names:
                self.state[name].lerp_(value.float(), weight)
            else:
                self.state[name].copy_(value)

    def state_dict(self) -> dict[str, object]:
        return {"updates": self.updates, "weights": self.state}

    def load_state_dict(self, saved: dict) -> None:
        if set(saved["weights"]) != set(self.state):
            raise ValueError("the saved weight average belongs to another network")
        self.updates = int(saved["updates"])
        for name, value in saved["weights"].items():
            self.state[name].copy_(value)

    def averaged(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` holding the averaged weights (``model`` itself is left as it is)."""
        twin = copy.deepcopy(model)
        twin.load_state_dict(self.state)
        return twin
