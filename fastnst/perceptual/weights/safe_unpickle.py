"""A restricted unpickler for third-party weight files that are plain pickles of numpy arrays.

``pickle.load`` runs whatever callables a file names, so loading a downloaded ``.ckpt`` with it would let that
file execute code. :class:`NumpyOnlyUnpickler` resolves only the few globals numpy needs to rebuild arrays
(``_reconstruct``, ``_frombuffer``, ``ndarray``, ``dtype``, ``scalar``), ``collections.OrderedDict`` and a
latin-1-only ``_codecs.encode`` (how protocol 2 stores bytes); anything else makes the load fail with a
:class:`~fastnst.utils.errors.WeightsError` before it is called.
"""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fastnst.utils.errors import WeightsError, first_line

try:  # numpy >= 2 (and 1.26's forward-compatibility shim)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to carry ``bytes``; latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the object handed back. Pickles written by numpy 1.x name
# ``numpy.core.*``, numpy 2.x writes ``numpy._core.*``; both map to the same functions without importing the
# deprecated ``numpy.core`` alias. ``_frombuffer`` is how numpy pickles arrays with protocol 5.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays, dicts, lists and scalars, and nothing executable."""

    def __init__(self, file: BinaryIO, *, source: str = "<stream>") -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return only allow-listed numpy globals; refuse every other import the pickle asks for."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to unpickle {module}.{name} from {self._source}: only numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (used by torch's legacy format, never by plain numpy pickles)."""
        raise WeightsError(
            f"refusing to unpickle a persistent object from {self._source}: only numpy arrays are allowed"
        )


def safe_load_numpy_pickle(path: str | os.PathLike[str]) -> Any:
    """Load a pickle that may contain only numpy arrays/scalars inside dicts, lists and tuples.

    Raises WeightsError (one line) if the file names anything else, or is missing, truncated or not a pickle.
    """
    source = Path(path)
    try:
        with open(source, "rb") as handle:
            return NumpyOnlyUnpickler(handle, source=str(source)).load()
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {source}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OSError,
    ) as exc:
        raise WeightsError(f"cannot read {source}: not a valid numpy pickle ({first_line(exc)})") from None
