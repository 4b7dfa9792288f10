"""Datasets of the course: MNIST, Fashion-MNIST, the 8x8 digits and CIFAR-10, offline first.

Every chapter gets its images through this module::

    images, labels, classes = rk.load_dataset("mnist", "train", n=budget.subset(60_000))

Images come back as ``float32`` tensors in ``[0, 1]`` of shape ``(N, C, H, W)``, labels as
``int64`` tensors of shape ``(N,)``; normalization lives inside the models, which read
:func:`dataset_stats`.

Where the files come from
-------------------------
For each dataset the files are looked for, in this order, in the dataset's folder
(``mnist/``, ``fashion-mnist/``, ``cifar-10-batches-py/``) under

1. the ``root=`` argument, when given;
2. ``$ROBUSTKIT_DATA`` (one folder, or several separated by ``os.pathsep``);
3. the system folders (:data:`SYSTEM_DIRS`, ``/usr/share/datasets``: Debian's
   ``dataset-fashion-mnist`` package installs ``/usr/share/datasets/fashion-mnist/``);
4. the user cache (:func:`cache_dir`: ``$ROBUSTKIT_CACHE/data``, else ``~/.cache/robustkit/data``);
5. a download (``download=True``) from the dataset's mirrors, tried in order, into ``root``
   when given, else into the user cache.

Downloads are streamed into a temporary file in the destination folder, checked against the
official md5 sum and only then moved into place with :func:`os.replace` (atomic on POSIX and
Windows); a failed or corrupt download is deleted. The CIFAR-10 archive is extracted into a
temporary folder, validated, then renamed into place.

Files found locally are *not* checked against the md5 sums: the offline copies the course ships
(``../shared/data``) are re-gzipped, so their ``.gz`` bytes differ from the official downloads
although the decompressed content is identical. Local files are validated structurally instead
(IDX magic number and dtype, exact byte length versus the header, gzip CRC, number of examples,
image shape, labels in range); any failure raises :class:`CorruptFileError` naming the file,
never partial data. Uncompressed IDX files (the name without ``.gz``) are accepted as well.

CIFAR-10 batches are Python pickles. They are read with a restricted unpickler that only
rebuilds numpy arrays, lists, dicts and bytes (anything else is refused), and only from the
trusted places above or from a download whose checksum was verified.

Decoded arrays are cached in memory per process, keyed by the resolved file path, its size and
modification time, so a chapter that loads MNIST twice reads the files once. The cache holds
read-only ``uint8`` arrays; every loader returns *fresh* tensors, so a caller may modify what it
gets without corrupting the cache (:func:`clear_cache` frees the memory).

Used by: every chapter that trains or attacks a classifier (first in chapter 0, *Getting started*).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageData",
    "Stats",
    "DataError",
    "DatasetNotFoundError",
    "DownloadError",
    "CorruptFileError",
    "DATA_ENV",
    "CACHE_ENV",
    "SYSTEM_DIRS",
    "read_idx",
    "search_dirs",
    "cache_dir",
    "locate",
    "download_file",
    "load_mnist",
    "load_fashion_mnist",
    "load_digits",
    "load_cifar10",
    "load_dataset",
    "list_datasets",
    "dataset_stats",
    "stratified_subset",
    "make_loader",
    "clear_cache",
]

DATA_ENV = "ROBUSTKIT_DATA"
CACHE_ENV = "ROBUSTKIT_CACHE"
#: System-wide dataset folders (searched after ``$ROBUSTKIT_DATA``, before the user cache).
SYSTEM_DIRS: list[Path] = [Path("/usr/share/datasets")]
_SPLITS = ("train", "test")


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
class DataError(RuntimeError):
    """Base class of the errors raised by :mod:`robustkit.data`."""


class DatasetNotFoundError(DataError):
    """The dataset files are in none of the searched folders and no download was allowed."""


class DownloadError(DataError):
    """Every mirror failed (network error or checksum mismatch); nothing was left on disk."""


class CorruptFileError(DataError, ValueError):
    """A data file is truncated, has a bad header or fails its gzip CRC / structural checks."""


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInfo:
    """What the loader knows about one dataset.

    ``files[split]`` lists the files of a split, named as downloaded; for IDX datasets they live
    in ``folder`` under a data root. For CIFAR-10 they are the pickled batches inside ``folder``
    (the archive's top folder) and ``archive`` is the downloaded ``.tar.gz``. ``md5`` maps each
    downloaded file name to its official md5 sum. ``mean`` and ``std`` are per channel, on
    pixels scaled to ``[0, 1]``, over the training split.
    """

    name: str
    kind: str                              # "idx", "cifar" or "sklearn"
    folder: str
    files: dict
    mirrors: tuple
    md5: dict
    classes: tuple
    mean: tuple
    std: tuple
    n_train: int
    n_test: int
    shape: tuple                           # (C, H, W)
    archive: str | None = None
    description: str = ""

    def n_examples(self, split: str) -> int:
        return self.n_train if _check_split(split) == "train" else self.n_test


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist", kind="idx", folder="mnist", files=_IDX_FILES,
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        classes=tuple(str(i) for i in range(10)),
        mean=(0.1307,), std=(0.3081,), n_train=60_000, n_test=10_000, shape=(1, 28, 28),
        description="handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0)"),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist", kind="idx", folder="fashion-mnist", files=_IDX_FILES,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        mean=(0.2860,), std=(0.3530,), n_train=60_000, n_test=10_000, shape=(1, 28, 28),
        description="Zalando article images (Xiao, Rasul, Vollgraf 2017; MIT license)"),
    "digits": DatasetInfo(
        name="digits", kind="sklearn", folder="", files={}, mirrors=(), md5={},
        classes=tuple(str(i) for i in range(10)),
        # over all 1,797 images (the split depends on test_fraction and seed)
        mean=(0.3053,), std=(0.3760,), n_train=1_797, n_test=1_797, shape=(1, 8, 8),
        description="scikit-learn's 8x8 handwritten digits (UCI), bundled, no download"),
    "cifar10": DatasetInfo(
        name="cifar10", kind="cifar", folder="cifar-10-batches-py",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        classes=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        n_train=50_000, n_test=10_000, shape=(3, 32, 32), archive="cifar-10-python.tar.gz",
        description="32x32 colour images in 10 classes (Krizhevsky 2009)"),
}

_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "digits": "digits", "sklearn-digits": "digits",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
}


def _info(name: str) -> DatasetInfo:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = _ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (aliases such as ``"fashion_mnist"`` work too)."""
    return list(DATASETS)


class Stats(NamedTuple):
    """Per-channel pixel mean and standard deviation (pixels in ``[0, 1]``)."""

    mean: tuple
    std: tuple


def dataset_stats(name: str) -> Stats:
    """Per-channel ``(mean, std)`` of a dataset's training pixels, for normalization in models.

    A model computes ``(x - mean) / std`` in its first layer so that attacks and defenses work
    on raw ``[0, 1]`` images. MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530, CIFAR-10
    (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435, 0.2616). Used by: ``robustkit.models``.
    """
    info = _info(name)
    return Stats(tuple(info.mean), tuple(info.std))


# --------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------
# IDX type codes (http://yann.lecun.com/exdb/mnist/): data stored big-endian.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032          # deflate cannot expand more than ~1032:1


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise CorruptFileError(f"{path}: truncated IDX file: expected {n} bytes of {what}, "
                               f"got {len(data)}. Delete the file and download it again.")
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a numpy array of native byte order.

    Format (LeCun et al., the MNIST distribution format): a magic number ``00 00 TT DD``
    with type code ``TT`` (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64) and ``DD`` dimensions, then ``DD`` big-endian uint32 sizes, then the data,
    big-endian, row-major. Gzip is detected from the content (magic ``1f 8b``), not the name.

    The file must hold exactly the bytes its header declares: a bad magic number, a truncated
    or over-long file, and a gzip stream with a bad CRC, length or premature end all raise
    :class:`CorruptFileError` naming the file; partial data is never returned.
    Used by: :func:`load_mnist`, :func:`load_fashion_mnist` (chapter 0 onwards).
    """
    path = Path(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    size_on_disk = path.stat().st_size
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            magic = _read_exact(f, 4, path, "magic number")
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or magic[3] == 0:
                raise CorruptFileError(
                    f"{path}: not an IDX file (magic number {magic.hex(' ')}; expected "
                    f"00 00 <type code in 08/09/0b/0c/0d/0e> <number of dimensions >= 1>)")
            dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
            dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "dimensions"))
            header = 4 + 4 * ndim
            n_bytes = math.prod(dims) * dtype.itemsize
            limit = size_on_disk * _MAX_DEFLATE_RATIO if gzipped else size_on_disk - header
            if n_bytes > limit:    # detect truncation before allocating a huge array
                raise CorruptFileError(
                    f"{path}: truncated or corrupt IDX file: the header declares shape {dims} "
                    f"({n_bytes} bytes of {dtype.name}) but the file is only {size_on_disk} "
                    f"bytes{' (gzipped)' if gzipped else ''}. Delete it and download it again.")
            out = np.empty(dims, dtype=dtype)
            buf = memoryview(out.reshape(-1).view(np.uint8))
            got = 0
            while got < n_bytes:
                k = f.readinto(buf[got:])
                if not k:
                    break
                got += k
            if got != n_bytes:
                raise CorruptFileError(
                    f"{path}: truncated IDX file: the header declares shape {dims} "
                    f"({n_bytes} bytes) but only {got} bytes of data are present. "
                    f"Delete the file and download it again.")
            if f.read(1):          # reaching the end also makes gzip check its CRC and length
                raise CorruptFileError(f"{path}: IDX file longer than its header declares "
                                       f"(shape {dims}): trailing bytes after the data")
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise CorruptFileError(f"{path}: corrupt gzip stream ({type(err).__name__}: {err}). "
                               f"Delete the file and download it again.") from err
    except OSError as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise CorruptFileError(f"{path}: unreadable IDX file ({err}). "
                               f"Delete the file and download it again.") from err
    return out if dtype.itemsize == 1 else out.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------------------
# where the files are
# --------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The user data cache: ``$ROBUSTKIT_CACHE/data`` if set, else ``~/.cache/robustkit/data``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "robustkit"
    return base / "data"


def search_dirs(root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The data roots searched, in order, as ``(where, folder)`` pairs.

    ``root=`` argument, then ``$ROBUSTKIT_DATA`` (``os.pathsep``-separated), then
    :data:`SYSTEM_DIRS`, then :func:`cache_dir`. Duplicates are dropped.
    """
    found: list[tuple[str, Path]] = []
    if root is not None:
        found.append(("root= argument", Path(root).expanduser()))
    for part in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if part.strip():
            found.append((f"${DATA_ENV}", Path(part.strip()).expanduser()))
    found += [("system folder", Path(d)) for d in SYSTEM_DIRS]
    found.append(("user cache", cache_dir()))
    seen, unique = set(), []
    for where, folder in found:
        key = os.path.abspath(folder)
        if key not in seen:
            seen.add(key)
            unique.append((where, folder))
    return unique


def _idx_local(folder: Path, name: str) -> Path | None:
    """``name`` (gzipped) or its uncompressed twin inside ``folder``, if present."""
    for candidate in (folder / name, folder / name[:-3] if name.endswith(".gz") else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _split_files_in(info: DatasetInfo, split: str, base: Path) -> list[Path] | None:
    folder = base / info.folder
    if info.kind == "idx":
        paths = [_idx_local(folder, name) for name in info.files[split]]
    else:
        paths = [folder / name if (folder / name).is_file() else None for name in info.files[split]]
    return None if any(p is None for p in paths) else paths


def _writable(folder: Path) -> bool:
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return os.access(probe, os.W_OK)


def locate(name: str, split: str = "train", root: str | os.PathLike | None = None,
           download: bool = True, progress: bool = True) -> list[Path]:
    """Resolve (and if needed download) the files of one split; returns their paths.

    Search order: ``root``, ``$ROBUSTKIT_DATA``, :data:`SYSTEM_DIRS`, :func:`cache_dir`
    (see the module docstring); then, if ``download``, the mirrors in order into ``root`` (if
    given) or the cache. For CIFAR-10 a ``cifar-10-python.tar.gz`` lying in a searched folder is
    extracted next to it (or into the cache when that folder is read-only).
    Raises :class:`DatasetNotFoundError` listing every place looked when nothing is found and
    ``download`` is false, :class:`DownloadError` when every mirror fails.
    """
    info = _info(name)
    _check_split(split)
    if info.kind == "sklearn":
        raise ValueError(f"{info.name!r} is bundled with scikit-learn and has no files to locate")
    places = search_dirs(root)
    for _, base in places:
        paths = _split_files_in(info, split, base)
        if paths is not None:
            return paths
    if info.kind == "cifar":
        for _, base in places:
            archive = base / info.archive
            if archive.is_file():
                dest = base if _writable(base) else (Path(root) if root is not None else cache_dir())
                _extract_cifar(archive, dest, info)
                return _split_files_in(info, split, dest)
    looked = "\n".join(f"  - {base / info.folder}   ({where})" for where, base in places)
    if info.kind == "idx":
        wanted = ", ".join(info.files[split]) + " (or the same names without .gz)"
    else:
        wanted = f"{', '.join(info.files[split])} (or {info.archive} next to the folder)"
    fix = (f"How to fix: set ${DATA_ENV} to a folder that holds {info.folder}/ "
           f"(e.g. export {DATA_ENV}=/path/to/data), pass root=..., or allow download=True "
           f"(mirrors: {', '.join(info.mirrors)}).")
    if not download:
        raise DatasetNotFoundError(
            f"dataset {info.name!r} ({split} split) not found and download=False.\n"
            f"Looked for {wanted} in:\n{looked}\n{fix}")
    target = Path(root).expanduser() if root is not None else cache_dir()
    try:
        if info.kind == "idx":
            folder = target / info.folder
            for fname in info.files[split]:
                if _idx_local(folder, fname) is None:
                    download_file([m + fname for m in info.mirrors], folder / fname,
                                  md5=info.md5.get(fname), progress=progress)
        else:
            archive = target / info.archive
            download_file([m + info.archive for m in info.mirrors], archive,
                          md5=info.md5.get(info.archive), progress=progress)
            _extract_cifar(archive, target, info)
    except DownloadError as err:
        raise DownloadError(f"{err}\nThe dataset {info.name!r} was not found locally either; "
                            f"looked for {wanted} in:\n{looked}\n{fix}") from err
    paths = _split_files_in(info, split, target)
    if paths is None:    # pragma: no cover - defensive
        raise DataError(f"downloaded {info.name!r} but its files are missing in {target}")
    return paths


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------
def _urlopen(url: str, timeout: float):
    """Open ``url`` (the one network entry point; tests replace it with a fake)."""
    request = urllib.request.Request(url, headers={"User-Agent": "robustkit (python urllib)"})
    return urllib.request.urlopen(request, timeout=timeout)


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_file(urls: str | Sequence[str], path: str | os.PathLike, md5: str | None = None,
                  progress: bool = True, timeout: float = 60.0) -> Path:
    """Download the first working URL to ``path`` atomically, verifying its md5 sum.

    Algorithm: for each mirror in order, stream into a temporary file in ``path``'s folder
    while hashing, compare the md5 with ``md5`` (when given) and only then ``os.replace`` the
    temporary file onto ``path``. A mirror that fails (network error, short read, checksum
    mismatch) is skipped and its temporary file deleted; if all fail, :class:`DownloadError`
    lists each failure and nothing is left on disk. A tqdm bar shows progress.
    Used by: the loaders of this module.
    """
    from tqdm.auto import tqdm

    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError("no URL to download from")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        tmp, done = Path(tmp_name), False
        try:
            h = hashlib.md5()
            size = 0
            with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=timeout) as response:
                headers = getattr(response, "headers", None)
                total = headers.get("Content-Length") if headers is not None else None
                total = int(total) if total and str(total).isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=path.name, disable=not progress, leave=False) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        h.update(block)
                        size += len(block)
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
            if total is not None and size != total:
                raise DownloadError(f"incomplete download: {size} of {total} bytes")
            if md5 is not None and h.hexdigest() != md5.lower():
                raise DownloadError(f"checksum mismatch: md5 {h.hexdigest()}, expected {md5}")
            os.replace(tmp, path)
            done = True
            return path
        except (DownloadError, OSError, http.client.HTTPException, ValueError) as err:
            failures.append(f"  - {url}: {type(err).__name__}: {err}")
        finally:
            if not done:
                tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {path.name} from any mirror "
                        f"(nothing was written to {path.parent}):\n" + "\n".join(failures))


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------
def _numpy_attr(modules: Sequence[str], attr: str):
    import importlib
    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
    return None


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (plus the builtins pickle needs natively)."""

    _ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }
    for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        _ALLOWED[(_mod, "_reconstruct")] = lambda: _numpy_attr(
            ("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
    for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
        _ALLOWED[(_mod, "_frombuffer")] = lambda: _numpy_attr(
            ("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
    del _mod

    def find_class(self, module, name):
        maker = self._ALLOWED.get((module, name))
        obj = maker() if maker is not None else None
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: "
                                         f"only numpy arrays are allowed in a CIFAR batch")
        return obj


def _read_cifar_batch(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle batch -> (uint8 (n, 3, 32, 32), int64 (n,)), validated."""
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error) as err:
        raise CorruptFileError(f"{path}: not a valid CIFAR batch ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise CorruptFileError(f"{path}: a CIFAR batch is a dict with b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):
        raise CorruptFileError(f"{path}: b'data' must be a uint8 array of shape (n, 3072), got "
                               f"{getattr(data, 'dtype', type(data))} {getattr(data, 'shape', '')}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise CorruptFileError(f"{path}: b'labels' must hold {data.shape[0]} integers")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise CorruptFileError(f"{path}: labels outside 0..{n_classes - 1}")
    # rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _extract_cifar(archive: Path, dest: Path, info: DatasetInfo) -> Path:
    """Extract ``archive`` into ``dest/<folder>`` atomically (temp folder, validate, rename)."""
    final = dest / info.folder
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{info.folder}."))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = []
                for m in tar.getmembers():
                    parts = Path(m.name).parts
                    if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                        raise CorruptFileError(f"{archive}: unsafe member {m.name!r} in archive")
                    if parts and parts[0] == info.folder:
                        members.append(m)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise CorruptFileError(f"{archive}: corrupt archive ({type(err).__name__}: {err}). "
                                   f"Delete it and download it again.") from err
        extracted = tmp / info.folder
        for split in _SPLITS:
            missing = [n for n in info.files[split] if not (extracted / n).is_file()]
            if missing:
                raise CorruptFileError(f"{archive}: archive lacks {info.folder}/{missing[0]}")
            n = sum(_read_cifar_batch(extracted / f, len(info.classes))[1].shape[0]
                    for f in info.files[split])
            if n != info.n_examples(split):
                raise CorruptFileError(f"{archive}: {split} split has {n} examples, "
                                       f"expected {info.n_examples(split)}")
        try:
            os.rename(extracted, final)
        except OSError:
            if _split_files_in(info, "train", dest) is None or _split_files_in(info, "test", dest) is None:
                raise    # the destination exists but is incomplete: let the user look
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------
# decoding with a per-process cache
# --------------------------------------------------------------------------------------
def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _decode_idx(images_key: tuple, labels_key: tuple, n_expected: int, shape: tuple,
                n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    img_path, lab_path = Path(images_key[0]), Path(labels_key[0])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != tuple(shape[1:]):
        raise CorruptFileError(f"{img_path}: expected uint8 images of shape (N, {shape[1]}, "
                               f"{shape[2]}), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise CorruptFileError(f"{lab_path}: expected a 1-D uint8 label file, got "
                               f"{labels.dtype} {labels.shape}")
    if images.shape[0] != n_expected or labels.shape[0] != n_expected:
        raise CorruptFileError(f"{img_path} / {lab_path}: {images.shape[0]} images and "
                               f"{labels.shape[0]} labels, expected {n_expected} of each")
    if labels.size and labels.max() >= n_classes:
        raise CorruptFileError(f"{lab_path}: label {labels.max()} outside 0..{n_classes - 1}")
    images = images.reshape(-1, *shape)
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=4)
def _decode_cifar(keys: tuple, n_expected: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_cifar_batch(Path(k[0]), n_classes) for k in keys]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if images.shape[0] != n_expected:
        raise CorruptFileError(f"{Path(keys[0][0]).parent}: {images.shape[0]} CIFAR examples, "
                               f"expected {n_expected}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sk_load_digits
    bunch = _sk_load_digits()
    images = bunch.data.astype(np.uint8).reshape(-1, 1, 8, 8)     # integer values 0..16
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def clear_cache() -> None:
    """Forget the decoded arrays kept in memory (they are re-read on the next load)."""
    _decode_idx.cache_clear()
    _decode_cifar.cache_clear()
    _sklearn_digits.cache_clear()
    _digits_split.cache_clear()


# --------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------
class ImageData(NamedTuple):
    """A dataset split: ``images`` float32 ``(N, C, H, W)`` in ``[0, 1]``, ``labels`` int64
    ``(N,)``, ``classes`` the class names. Unpacks as ``images, labels, classes = data``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list


def _to_image_data(images_u8: np.ndarray, labels: np.ndarray, scale: float,
                   classes: Sequence[str], index: np.ndarray | None = None) -> ImageData:
    if index is not None:
        images_u8, labels = images_u8[index], labels[index]
    # astype always copies (the cache is never shared); float32 division, as x.float() / scale
    images = torch.from_numpy(images_u8.astype(np.float32)).div_(scale)
    return ImageData(images, torch.from_numpy(np.array(labels, dtype=np.int64)), list(classes))


def _load_raw(name: str, split: str, root, download: bool, progress: bool,
              test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(uint8 images (N,C,H,W) read-only, int64 labels read-only, scale to [0, 1])."""
    info = _info(name)
    _check_split(split)
    if info.kind == "sklearn":
        images, labels = _sklearn_digits()
        idx = _digits_split(float(test_fraction), int(seed))[0 if split == "train" else 1]
        return images[idx], labels[idx], 16.0
    paths = locate(info.name, split, root=root, download=download, progress=progress)
    if info.kind == "idx":
        images, labels = _decode_idx(_file_key(paths[0]), _file_key(paths[1]),
                                     info.n_examples(split), tuple(info.shape), len(info.classes))
    else:
        images, labels = _decode_cifar(tuple(_file_key(p) for p in paths),
                                       info.n_examples(split), len(info.classes))
    return images, labels, 255.0


def load_mnist(split: str = "train", root: str | os.PathLike | None = None,
               download: bool = True, *, progress: bool = True) -> ImageData:
    """MNIST (LeCun et al. 1998): 60,000 train / 10,000 test 28x28 digits, ``(N, 1, 28, 28)``.

    Files resolved as in the module docstring; pixels / 255. Used by: most chapters
    (seeds 000, 001, 002). See :func:`load_dataset` for subsets.
    """
    return load_dataset("mnist", split, root=root, download=download, progress=progress)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       download: bool = True, *, progress: bool = True) -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 / 10,000 28x28 articles, ``(N, 1, 28, 28)``.

    Used by: the generative-classifier chapter (seed 004) and as a harder MNIST drop-in.
    """
    return load_dataset("fashion-mnist", split, root=root, download=download, progress=progress)


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True, *, progress: bool = True) -> ImageData:
    """CIFAR-10 (Krizhevsky 2009): 50,000 / 10,000 colour images, ``(N, 3, 32, 32)``.

    Reads the official python batches (``data_batch_1..5``, ``test_batch``) in order, with a
    restricted unpickler; rows are 1024 R, 1024 G, 1024 B values. Used by: the randomized
    defenses chapters (seed 003 ch. 2, RSE / Adv-BNN / Neural SDE) on the GPU budget.
    """
    return load_dataset("cifar10", split, root=root, download=download, progress=progress)


@functools.lru_cache(maxsize=8)
def _digits_split(test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    _, labels = _sklearn_digits()
    n_test = int(round(test_fraction * labels.shape[0]))
    if not 0 < n_test < labels.shape[0]:
        raise ValueError(f"test_fraction={test_fraction} leaves an empty train or test split")
    test = stratified_subset(labels, n_test, seed=seed).numpy()
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def load_digits(split: str = "train", test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16 scaled by 1/16), ``(N, 1, 8, 8)``.

    Split: a stratified test set of ``round(test_fraction * 1797)`` images drawn with
    :func:`stratified_subset` (seed ``seed``), the rest is the training set; both keep the
    original order. Tiny and bundled: used for fast tests and the nearest-neighbor chapter.
    """
    if not isinstance(test_fraction, (float, int)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    return load_dataset("digits", split, test_fraction=test_fraction, seed=seed)


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True, n: int | None = None, seed: int = 0, *,
                 progress: bool = True, test_fraction: float = 0.25) -> ImageData:
    """Load a split of ``name`` (see :func:`list_datasets`), optionally a stratified subset.

    ``n``: number of examples, drawn with :func:`stratified_subset` (class proportions kept,
    original order kept, deterministic in ``seed``); ``None`` keeps all. For ``"digits"``,
    ``seed`` and ``test_fraction`` also define the train/test split and ``root``/``download``
    are ignored. Returns fresh tensors (modifying them does not touch the in-memory cache).
    Used by: every chapter, e.g. ``load_dataset("mnist", "train", n=budget.subset(60_000))``.
    """
    info = _info(name)
    _check_split(split)
    images, labels, scale = _load_raw(info.name, split, root, download, progress,
                                      test_fraction=test_fraction, seed=seed)
    index = None if n is None else stratified_subset(labels, n, seed=seed).numpy()
    return _to_image_data(images, labels, scale, info.classes, index)


# --------------------------------------------------------------------------------------
# subsets and loaders
# --------------------------------------------------------------------------------------
def stratified_subset(labels, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a stratified random subset of size exactly ``n``, sorted increasingly.

    Per-class counts follow Hamilton's largest-remainder apportionment of ``n`` over the class
    frequencies: each class gets ``floor(n * N_c / N)``, and the leftover units go to the
    largest fractional parts (ties to the smaller class label), so ``|k_c - n N_c / N| < 1``
    and ``sum k_c = n``. Within a class the examples are a uniform draw from a
    ``numpy.random.default_rng(seed)`` permutation. Deterministic given ``seed``.
    Used by: :func:`load_dataset` (budget subsets) and :func:`load_digits`.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {n!r}")
    total = labels.shape[0]
    if n <= 0 or n > total:
        raise ValueError(f"n must be in 1..{total} (the number of labels), got {n}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (int(n) / total)
    take = np.floor(quota).astype(np.int64)
    rest = int(n) - int(take.sum())
    if rest:
        order = np.lexsort((np.arange(counts.size), -(quota - take)))   # largest remainder first
        take[order[:rest]] += 1
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(total)
    perm = perm[np.argsort(inverse[perm], kind="stable")]          # grouped by class, shuffled
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    cls = inverse[perm]
    rank = np.arange(total) - starts[cls]
    chosen = np.sort(perm[rank < take[cls]])
    return torch.from_numpy(chosen.astype(np.int64))


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128,
                shuffle: bool = True, seed: int = 0, num_workers: int | None = None,
                device: str | torch.device | None = None, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` over in-memory tensors, with a seeded shuffle.

    Batches are gathered by tensor indexing (a ``BatchSampler`` feeds whole index lists to a
    ``TensorDataset``, so ``loader.batch_size`` is ``None``) instead of a per-sample Python loop.
    ``num_workers`` defaults to 0: for tensors already in memory, worker processes only add
    start-up and inter-process copying overhead. Memory is pinned when the batches will go to a
    CUDA ``device`` (default: CUDA if available) and the tensors are on the CPU; move batches
    with ``.to(device, non_blocking=True)``. Shuffling uses ``torch.Generator().manual_seed(seed)``:
    two loaders with the same seed yield the same batches, epoch after epoch.
    Used by: ``robustkit.train`` and every chapter that trains a model.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("images and labels must be torch tensors")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels differ in length: {images.shape[0]} vs {labels.shape[0]}")
    if images.shape[0] == 0:
        raise ValueError("cannot make a loader over an empty dataset")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_workers is None:
        num_workers = 0
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    if images.device != labels.device:
        raise ValueError(f"images and labels are on different devices: {images.device} vs {labels.device}")
    target = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    on_cpu = images.device.type == "cpu"
    pin = target.type == "cuda" and on_cpu and torch.cuda.is_available()
    if not on_cpu and num_workers:
        raise ValueError("num_workers must be 0 for tensors that live on an accelerator")
    dataset = TensorDataset(images, labels)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(int(seed)))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(sampler, int(batch_size), drop_last),
                      batch_size=None, num_workers=num_workers, pin_memory=pin)
