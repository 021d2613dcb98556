"""PyTorch ``.pt`` / ``.pth`` state_dicts: read with ``weights_only=True`` (never a pickle of code)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import BadInputError
from .dtypes import to_numpy, to_torch


def read_torch(path: str) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInputError(
            f"{path!r} was refused: it holds pickled Python objects that are not tensors (a whole model or code), "
            f"which xconv never unpickles. Save the weights with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # truncated zip, bad magic ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInputError(f"Cannot read {path!r}: {first}. The file is truncated or corrupt.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise BadInputError(f"{path!r} holds a {type(state).__name__}, not a state_dict of named tensors.")
    return {k: to_numpy(v, f"{path!r}: tensor {k!r}") for k, v in state.items()}


def write_torch(tmp: str, tensors: Mapping[str, np.ndarray]) -> None:
    """A state_dict of ``tensors`` (dtype, shape and bits kept; 0-dim stays 0-dim)."""
    import torch

    state = {}
    for name in tensors:
        state[name] = to_torch(tensors[name], f"tensor {name!r}")
    with open(tmp, "wb") as fh:  # through Python's file: a failed write keeps its OSError
        torch.save(state, fh)
