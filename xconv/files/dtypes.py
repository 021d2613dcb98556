"""One dtype table for every format: NumPy names (ml_dtypes for bfloat16 and float8), safetensors
codes and torch dtypes, and bit-exact moves between NumPy and torch.

Values are never cast on the way: bfloat16 and float8 tensors cross between torch and NumPy as
raw integers of the same width and are reinterpreted, so every bit (signalling-NaN payloads
included) survives. A dtype a format cannot hold is refused with the tensor's name.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import BadInputError

# name -> (safetensors code or None, torch dtype name or None)
TABLE: dict[str, tuple[str | None, str | None]] = {
    "bool": ("BOOL", "bool"),
    "uint8": ("U8", "uint8"),
    "int8": ("I8", "int8"),
    "uint16": ("U16", "uint16"),
    "int16": ("I16", "int16"),
    "uint32": ("U32", "uint32"),
    "int32": ("I32", "int32"),
    "uint64": ("U64", "uint64"),
    "int64": ("I64", "int64"),
    "float16": ("F16", "float16"),
    "bfloat16": ("BF16", "bfloat16"),
    "float32": ("F32", "float32"),
    "float64": ("F64", "float64"),
    "float8_e4m3fn": ("F8_E4M3", "float8_e4m3fn"),
    "float8_e5m2": ("F8_E5M2", "float8_e5m2"),
    "complex64": ("C64", "complex64"),
    "complex128": (None, "complex128"),
}
_EXTENDED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # not NumPy's own: from ml_dtypes
ST_TO_NAME = {st: name for name, (st, _) in TABLE.items() if st}


def np_dtype(name: str) -> np.dtype:
    """The NumPy dtype called ``name`` (bfloat16 and float8 from ml_dtypes)."""
    if name in _EXTENDED:
        try:
            import ml_dtypes
        except ImportError as exc:  # pragma: no cover - installed with xconv
            raise BadInputError(f"{name} tensors need the ml_dtypes package: pip install ml_dtypes") from exc
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


def name_of(dtype) -> str:
    """The table name of a NumPy dtype, or a clear refusal."""
    dtype = np.dtype(dtype)
    name = dtype.name
    if name not in TABLE or dtype.byteorder == ">":
        raise BadInputError(f"dtype {dtype} is not one xconv carries; known: {', '.join(TABLE)}.")
    return name


def st_code(dtype, what: str = "a tensor") -> str:
    """The safetensors code of ``dtype``; a dtype safetensors has no code for is refused."""
    name = name_of(dtype)
    code = TABLE[name][0]
    if code is None:
        raise BadInputError(f"{what} is {name}, which .safetensors cannot hold; write it to .pt instead.")
    return code


@functools.lru_cache(maxsize=64)  # called for every tensor of a file: thousands in a small-tensor checkpoint
def st_dtype(code: str) -> np.dtype:
    """The NumPy dtype of a safetensors dtype code (``"F32"``, ``"BF16"``); ValueError for an unknown code."""
    if code not in ST_TO_NAME:
        raise ValueError(f"unknown dtype {code!r}")
    return np_dtype(ST_TO_NAME[code])


def _torch_dtype(name: str):
    import torch

    return getattr(torch, TABLE[name][1])


def _raw_int(itemsize: int) -> str:
    return {1: "uint8", 2: "int16"}[itemsize]


def to_numpy(tensor, what: str = "a tensor") -> np.ndarray:
    """A torch tensor's values as a NumPy array of the same dtype and shape, bit for bit."""
    import torch

    if tensor.layout != torch.strided:
        raise BadInputError(f"{what} is a {str(tensor.layout).replace('torch.', '')} tensor; save it dense (tensor.to_dense()) first.")
    if tensor.is_quantized:
        raise BadInputError(f"{what} is a quantized tensor ({tensor.dtype}); xconv carries plain tensors only (dequantize it first).")
    name = str(tensor.dtype).replace("torch.", "")
    if name not in TABLE:
        raise BadInputError(f"{what} has dtype {name}, which xconv does not carry; known: {', '.join(TABLE)}.")
    tensor = tensor.detach().cpu()
    if name in _EXTENDED:
        raw = tensor.view(getattr(torch, _raw_int(tensor.element_size()))).numpy()
        return raw.view(np_dtype(name))
    return tensor.numpy()


def to_torch(array: np.ndarray, what: str = "a tensor"):
    """A NumPy array as a torch tensor of the same dtype and shape (0-dim stays 0-dim), bit for bit."""
    import torch

    array = np.asarray(array)
    name = name_of(array.dtype)
    if TABLE[name][1] is None:  # pragma: no cover - every table dtype has a torch twin
        raise BadInputError(f"{what} is {name}, which .pt cannot hold.")
    if not array.flags.c_contiguous or not array.flags.writeable:
        array = array.copy()  # (np.ascontiguousarray would turn a 0-dim array into shape (1,))
    if name in _EXTENDED:
        return torch.from_numpy(array.view(_raw_int(array.itemsize))).view(_torch_dtype(name))
    return torch.from_numpy(array)


def is_float(dtype) -> bool:
    """Whether ``dtype`` is a floating-point type: NumPy's own, or bfloat16 / float8 from ml_dtypes."""
    return np.dtype(dtype).kind == "f" or np.dtype(dtype).name in _EXTENDED
