"""safetensors, read and written by xconv itself, one tensor at a time.

The header is validated as the safetensors library validates it, before anything is
allocated: a size that fits the file, a JSON object of entries with known dtypes and
non-negative shapes, no duplicate names, offsets that tile the data section exactly (no gaps,
no overlaps, nothing past the end) and byte counts that match shape x dtype.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from ..errors import BadInputError
from . import _json
from .dtypes import st_code, st_dtype

MAX_HEADER = 100_000_000  # the library's own limit


def _pairs_without_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the name {key!r} appears twice")
        out[key] = value
    return out


def _bad(path: str, why: str) -> BadInputError:
    return BadInputError(f"Cannot read {path!r}: {why}. The file is truncated, corrupt or not a safetensors file.")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def safetensors_header(path: str) -> tuple[dict, int]:
    """The validated JSON header of a safetensors file and where its data starts (nothing else is read)."""
    path = os.fspath(path)
    try:
        size_of_file = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _bad(path, f"{size_of_file} bytes is too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise _bad(path, f"the header claims {n} bytes (the limit is {MAX_HEADER})")
            if 8 + n > size_of_file:
                raise _bad(path, f"the header claims {n} bytes but the file has {size_of_file}")
            raw = fh.read(n)
    except OSError as exc:
        raise BadInputError(f"Cannot read {path!r}: {exc.strerror or exc}.") from exc
    if not raw.startswith(b"{"):
        raise _bad(path, "the header is not a JSON object")
    try:
        if _json.depth(raw) > 3:
            raise ValueError("the header nests deeper than a safetensors header does")
        header = json.loads(raw, object_pairs_hook=_pairs_without_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(path, f"bad header JSON ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    data_size = size_of_file - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _bad(path, "__metadata__ must map names to strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _bad(path, f"entry {name!r} must have exactly dtype, shape and data_offsets")
        shape, offsets = info["shape"], info["data_offsets"]
        try:
            dtype = st_dtype(info["dtype"]) if isinstance(info["dtype"], str) else None
        except ValueError:
            dtype = None
        if dtype is None:
            raise _bad(path, f"tensor {name!r} has unknown dtype {info['dtype']!r}")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise _bad(path, f"tensor {name!r} has a bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise _bad(path, f"tensor {name!r} has bad data_offsets {offsets!r}")
        count = 1
        for s in shape:
            count *= s
        if count * dtype.itemsize != offsets[1] - offsets[0]:
            raise _bad(path, f"tensor {name!r} of shape {tuple(shape)} {info['dtype']} needs {count * dtype.itemsize} bytes, its offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    cursor = 0
    for lo, hi, name in spans:
        if lo != cursor:
            what = "overlaps the one before it" if lo < cursor else f"leaves a gap of {lo - cursor} bytes before it"
            raise _bad(path, f"tensor {name!r} {what}")
        cursor = hi
    if cursor != data_size:
        if cursor > data_size:
            raise _bad(path, f"the tensors need {cursor} bytes of data, the file has {data_size} (truncated)")
        raise _bad(path, f"{data_size - cursor} bytes after the last tensor belong to none")
    return header, 8 + n


def tensor_names(header: dict) -> list[str]:
    """The tensor names of a safetensors header, in header order (the ``__metadata__`` entry left out)."""
    return [k for k in header if k != "__metadata__"]


def read_one(fh, path: str, start: int, name: str, info: dict, out: np.ndarray | None = None) -> np.ndarray:
    """Read one (validated) tensor into ``out`` (a uint8 buffer at least its size) or a new array."""
    dtype = st_dtype(info["dtype"])
    lo, hi = info["data_offsets"]
    nbytes = hi - lo
    buf = np.empty(nbytes, np.uint8) if out is None else out[:nbytes]
    fh.seek(start + lo)
    got = fh.readinto(memoryview(buf)) if nbytes else 0
    if got != nbytes:
        raise BadInputError(f"Cannot read {path!r}: tensor {name!r} is cut short (the file shrank while being read?).")
    return buf.view(dtype).reshape(info["shape"])


class SafetensorsView(Mapping):
    """A safetensors file's tensors, each read when asked for (memory: one tensor)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.header, self.start = safetensors_header(self.path)
        self._names = tensor_names(self.header)

    @property
    def metadata(self) -> dict:
        """The header's ``__metadata__`` (string keys and values), ``{}`` when it has none."""
        return self.header.get("__metadata__", {})

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of the tensor ``name``, from the header alone (no data read)."""
        entry = self.header[name]
        return tuple(entry["shape"]), st_dtype(entry["dtype"])

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        with open(self.path, "rb") as fh:
            return read_one(fh, self.path, self.start, name, self.header[name])

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def iter_safetensors(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each tensor read into its own buffer and released after use: memory stays at one tensor.

    (A memory map would count every page of the file as resident while it is mapped.)
    """
    path = os.fspath(path)
    header, start = safetensors_header(path)
    with open(path, "rb") as fh:
        for name in tensor_names(header):
            yield name, read_one(fh, path, start, name, header[name])


def header_bytes(shapes: Mapping[str, tuple[tuple, object]], metadata: dict | None = None) -> tuple[bytes, dict]:
    """The encoded header (padded to 8 bytes) for tensors of these (shape, dtype), in this order."""
    header, offset = {}, 0
    for name, (shape, dtype) in shapes.items():
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": st_code(dtype, f"tensor {name!r}"), "shape": [int(s) for s in shape], "data_offsets": [offset, offset + size]}
        offset += size
    # "format": "pt" is what transformers' loaders ask of a safetensors file before they read it
    metadata = {"format": "pt", **(metadata or {})}
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}, **header}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes
    return struct.pack("<Q", len(blob)) + blob, header


def as_bytes(array: np.ndarray) -> memoryview:
    """The C-order bytes of an array, without a copy when it is contiguous."""
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy()
    return memoryview(array.reshape(-1).view(np.uint8))


def write_safetensors_stream(path: str, items: Iterator[tuple[str, np.ndarray]], shapes: Mapping[str, tuple[tuple, str]], metadata: dict | None = None) -> None:
    """Write a safetensors file one tensor at a time (the library's writer wants them all in memory).

    ``shapes`` gives every tensor's (shape, dtype) up front, so the header is written first.
    """
    blob, header = header_bytes(shapes, metadata)
    written = set()
    with open(path, "wb") as fh:
        fh.write(blob)
        for name, array in items:
            want = header[name]
            array = np.asarray(array)
            if list(array.shape) != want["shape"] or st_code(array.dtype, f"tensor {name!r}") != want["dtype"]:
                raise BadInputError(f"tensor {name!r} is {array.dtype} {array.shape}, announced {want['dtype']} {tuple(want['shape'])}")
            fh.write(as_bytes(array))
            written.add(name)
    if written != set(shapes):
        raise BadInputError(f"tensors {sorted(set(shapes) - written)[:5]} were announced but not written")


MAX_INDEX = 64 * 2**20  # an index of a few hundred thousand tensor names is a few MB


class ShardedView(Mapping):
    """A Hugging Face sharded checkpoint (``model.safetensors.index.json`` or
    ``pytorch_model.bin.index.json``) read through its index: every shard, each tensor when asked for.

    The index is checked before any shard is read: a JSON object with a ``weight_map`` of tensor
    name -> shard file, every shard a plain name inside the index's own folder (no absolute path,
    no ``..``, no symlink out of it), present, and holding exactly the names the map gives it.
    """

    def __init__(self, path: str):
        self.path = path = os.fspath(path)
        index = self._index(path)
        self.folder = os.path.dirname(os.path.abspath(path))
        real_folder = os.path.realpath(self.folder)
        weight_map = index["weight_map"]
        by_shard: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(name)
        want = ".safetensors" if path.lower().endswith(".safetensors.index.json") else ".bin"
        self._shards: dict[str, str] = {}  # shard name in the index -> its path
        for shard in by_shard:
            if os.path.isabs(shard) or shard.startswith(("/", "\\")) or (len(shard) > 1 and shard[1] == ":"):
                raise self._bad(f"shard {shard!r} is an absolute path; shards must lie in the index's folder")
            if ".." in shard.replace("\\", "/").split("/"):
                raise self._bad(f"shard {shard!r} leaves the index's folder (..); shards must lie in it")
            full = os.path.join(self.folder, shard)
            if os.path.commonpath([real_folder, os.path.realpath(full)]) != real_folder:
                raise self._bad(f"shard {shard!r} is a link out of the index's folder; shards must lie in it")
            if not shard.lower().endswith(want):
                raise self._bad(f"shard {shard!r} is not a {want} file")
            if not os.path.isfile(full):
                raise self._bad(f"shard {shard!r} (for {by_shard[shard][0]!r}) is missing from {self.folder!r}")
            self._shards[shard] = full
        self._where = dict(weight_map)
        self._headers: dict[str, tuple[dict, int]] = {}
        self._loaded: tuple[str, dict] | None = None  # the last .bin shard read
        layouts = set()
        for shard, full in self._shards.items():
            names = self._names_in(full)
            listed = set(by_shard[shard])
            extra = [n for n in names if n not in listed]
            absent = [n for n in by_shard[shard] if n not in set(names)]
            if absent:
                raise self._bad(f"the weight_map puts {absent[:5]} in {shard!r}, which does not hold {'it' if len(absent) == 1 else 'them'}")
            if extra:
                elsewhere = [n for n in extra if n in self._where]
                why = f"the weight_map puts {'it' if len(extra) == 1 else 'them'} in another shard" if elsewhere else "the weight_map does not list it"
                raise self._bad(f"shard {shard!r} holds {extra[:5]}, but {why}")
            if full in self._headers:
                layouts.add(self._headers[full][0].get("__metadata__", {}).get("layout", "torch"))
        self.layout = layouts.pop() if len(layouts) == 1 else "torch"
        self._check_total_size(index)

    def _check_total_size(self, index: dict) -> None:
        """A note where ``metadata.total_size`` (what save_pretrained wrote) is not the bytes the
        safetensors shards hold: a shard replaced since the index was written (another dtype or
        shape under the same names). Only a note: transformers itself does not read the figure.
        ``.bin`` shards are not counted (tied weights share one storage there)."""
        meta = index.get("metadata")
        claimed = meta.get("total_size") if isinstance(meta, dict) else None
        if not _is_int(claimed) or len(self._headers) != len(self._shards):
            return
        held = sum(h[k]["data_offsets"][1] - h[k]["data_offsets"][0] for h, _ in self._headers.values() for k in tensor_names(h))
        from .torch_pt import _note, _noted

        seen = (os.path.realpath(self.path), "total_size")  # once per index and run, as checkpoint notes are
        if held != claimed and seen not in _noted:
            _noted.add(seen)
            _note(
                f"{self.path!r}: the index's metadata.total_size is {claimed} bytes but its shards hold {held}: "
                f"a shard may have been replaced since the index was written (the tensors' names still match)."
            )

    def _bad(self, why: str) -> BadInputError:
        return BadInputError(f"Cannot read {self.path!r}: {why}.")

    def _index(self, path: str) -> dict:
        try:
            size = os.path.getsize(path)
            if size > MAX_INDEX:
                raise self._bad(f"the index is {size} bytes (the limit is {MAX_INDEX})")
            with open(path, "rb") as fh:
                raw = fh.read(MAX_INDEX + 1)
        except OSError as exc:
            raise BadInputError(f"Cannot read {path!r}: {exc.strerror or exc}.") from exc
        try:
            if _json.depth(raw) > 8:
                raise ValueError("it nests deeper than a shard index does")
            index = json.loads(raw, object_pairs_hook=_pairs_without_duplicates)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise self._bad(f"bad index JSON ({str(exc).splitlines()[0][:120]})") from exc
        if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
            raise self._bad('the index has no "weight_map" object (tensor name -> shard file), as save_pretrained writes it')
        if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in index["weight_map"].items()):
            raise self._bad('the "weight_map" must map tensor names to shard file names')
        return index

    def _names_in(self, full: str) -> list[str]:
        if full.lower().endswith(".safetensors"):
            self._headers[full] = safetensors_header(full)
            return tensor_names(self._headers[full][0])
        return list(self._bin(full))

    def _bin(self, full: str) -> dict:
        if self._loaded is None or self._loaded[0] != full:
            from .torch_pt import read_torch

            self._loaded = None
            self._loaded = (full, read_torch(full))  # read whole, not mapped: a shard cut meanwhile must be an error, not a SIGBUS
        return self._loaded[1]

    @property
    def shard_paths(self) -> list[str]:
        """Every shard file the index names (inputs of a run, like the index itself)."""
        return list(self._shards.values())

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of the tensor ``name``, from its shard's header where it has one."""
        full = self._shards[self._where[name]]
        if full in self._headers:
            entry = self._headers[full][0][name]
            return tuple(entry["shape"]), st_dtype(entry["dtype"])
        value = self._bin(full)[name]
        return tuple(value.shape), value.dtype

    def __getitem__(self, name):
        if name not in self._where:
            raise KeyError(name)
        full = self._shards[self._where[name]]
        if full in self._headers:
            header, start = self._headers[full]
            with open(full, "rb") as fh:
                return read_one(fh, full, start, name, header[name])
        return self._bin(full)[name]

    def __iter__(self):
        return iter(self._where)

    def __len__(self):
        return len(self._where)
