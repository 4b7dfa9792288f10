"""Tests of robustkit.data: IDX parsing, file resolution, checksummed downloads, CIFAR batches,
stratified subsets and loaders. Everything runs offline on files written into ``tmp_path``;
the real MNIST / Fashion-MNIST checks run only when the offline copies are available."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import robustkit.data as D

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return (bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            + np.ascontiguousarray(arr.astype(be)).tobytes())


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def tiny_mnist(n: int, marker: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 28x28 images whose pixel [0, 0] is ``marker`` (to tell copies apart)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = marker
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_mnist(folder: Path, marker: int, n_train: int = 12, n_test: int = 6,
                compress: bool = True) -> dict[str, bytes]:
    """Write the four MNIST files into ``folder``; returns the bytes written per file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = tiny_mnist(n, marker, seed=n + marker)
        img_name, lab_name = D.DATASETS["mnist"].files[split]
        for name, arr in ((img_name, images), (lab_name, labels)):
            raw = idx_bytes(arr, 0x08)
            data = gz(raw) if compress else raw
            (folder / (name if compress else name[:-3])).write_bytes(data)
            written[name] = data
    return written


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, headers: dict | None = None, on_read=None, fail_after=None):
        super().__init__(data)
        self.headers = headers or {}
        self.on_read = on_read
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.on_read is not None:
            self.on_read()
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise http.client.IncompleteRead(b"")
        if self.fail_after is not None:
            size = min(size if size > 0 else 1 << 30, self.fail_after - self.tell())
        return super().read(size)


class FakeWeb:
    """A fake ``_urlopen``: serves bytes (or raises) per URL and records the calls."""

    def __init__(self, pages: dict):
        self.pages, self.calls = pages, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        page = self.pages.get(url)
        if page is None:
            raise urllib.error.URLError(f"fake: no route to {url}")
        if isinstance(page, BaseException):
            raise page
        return page() if callable(page) else FakeResponse(page)


@pytest.fixture(autouse=True)
def no_network_and_fresh_cache(monkeypatch):
    def refuse(url, timeout=None):
        raise AssertionError(f"test tried to reach the network: {url}")
    monkeypatch.setattr(D, "_urlopen", refuse)
    D.clear_cache()
    yield
    D.clear_cache()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Isolated data places: root, env, system and cache folders under tmp_path."""
    p = {k: tmp_path / k for k in ("root", "env", "system", "cachebase")}
    p["cache"] = p["cachebase"] / "data"
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.setenv(D.CACHE_ENV, str(p["cachebase"]))
    monkeypatch.setattr(D, "SYSTEM_DIRS", [p["system"]])
    # tiny registry entries so the structural count checks match the written files
    monkeypatch.setitem(D.DATASETS, "mnist", dataclasses.replace(D.DATASETS["mnist"], n_train=12, n_test=6))
    return p


# --------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("code,dtype,shape", [
    (0x08, np.uint8, (5, 4, 3)), (0x09, np.int8, (7,)), (0x0B, np.int16, (3, 2)),
    (0x0C, np.int32, (2, 3, 2, 2)), (0x0D, np.float32, (4, 5)), (0x0E, np.float64, (6,)),
])
def test_read_idx_roundtrip(tmp_path, compress, code, dtype, shape):
    rng = np.random.default_rng(code)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    arr = (rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype) if info
           else rng.standard_normal(shape).astype(dtype))
    raw = idx_bytes(arr, code)
    path = tmp_path / "x.idx"
    path.write_bytes(gz(raw) if compress else raw)
    out = D.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw.gz").write_bytes(idx_bytes(arr, 0x08))
    (tmp_path / "zipped.bin").write_bytes(gz(idx_bytes(arr, 0x08)))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "raw.gz"), arr)
    np.testing.assert_array_equal(D.read_idx(str(tmp_path / "zipped.bin")), arr)


def test_read_idx_matches_official_mnist_header_layout(tmp_path):
    # the first 16 bytes of train-images-idx3-ubyte: magic 2051, 60000, 28, 28 (big-endian)
    header = struct.pack(">IIII", 2051, 2, 28, 28)
    body = bytes(range(256)) * 6 + bytes(range(32))          # 2 * 784 bytes
    (tmp_path / "imgs").write_bytes(header + body)
    out = D.read_idx(tmp_path / "imgs")
    assert out.shape == (2, 28, 28)
    np.testing.assert_array_equal(out.reshape(-1), np.frombuffer(body, dtype=np.uint8))


@pytest.mark.parametrize("compress", [True, False])
def test_truncated_idx_raises_naming_file(tmp_path, compress):
    raw = idx_bytes(np.ones((10, 28, 28), dtype=np.uint8), 0x08)
    for cut in (2, 10, len(raw) - 1):         # inside magic, inside dims, inside data
        path = tmp_path / f"cut{cut}.idx"
        data = raw[:cut]
        path.write_bytes(gz(data) if compress else data)
        with pytest.raises(D.CorruptFileError, match="truncated") as err:
            D.read_idx(path)
        assert str(path) in str(err.value)


def test_truncated_gzip_stream_raises(tmp_path):
    data = gz(idx_bytes(np.arange(5000, dtype=np.uint8).reshape(5, 1000) * 7, 0x08))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.CorruptFileError) as err:
        D.read_idx(path)
    assert str(path) in str(err.value)


def test_trailing_bytes_raise(tmp_path):
    raw = idx_bytes(np.zeros((3, 4), dtype=np.uint8), 0x08) + b"\x00"
    for compress in (True, False):
        path = tmp_path / f"long{compress}"
        path.write_bytes(gz(raw) if compress else raw)
        with pytest.raises(D.CorruptFileError, match="longer"):
            D.read_idx(path)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01",
                                   b"\x00\x00\x0a\x01", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_wrong_magic_raises(tmp_path, magic):
    path = tmp_path / "bad.idx"
    path.write_bytes(magic + struct.pack(">I", 3) + b"abc")
    with pytest.raises(D.CorruptFileError, match="not an IDX file") as err:
        D.read_idx(path)
    assert str(path) in str(err.value)


def test_absurd_header_rejected_before_allocating(tmp_path):
    path = tmp_path / "huge.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**31, 2**31) + b"x" * 100)
    with pytest.raises(D.CorruptFileError, match="truncated"):
        D.read_idx(path)
    path.write_bytes(gz(path.read_bytes()))
    with pytest.raises(D.CorruptFileError, match="truncated"):
        D.read_idx(path)


def test_corrupt_gzip_flipped_bytes_raise(tmp_path):
    rng = np.random.default_rng(0)
    raw = idx_bytes(rng.integers(0, 4, size=(50, 28, 28), dtype=np.uint8), 0x08)
    good = gz(raw)
    np.testing.assert_array_equal(D.read_idx(_write(tmp_path / "good.gz", good)).reshape(-1),
                                  np.frombuffer(raw[16:], np.uint8))
    positions = {"header": 1, "middle": len(good) // 2, "crc trailer": len(good) - 6,
                 "length trailer": len(good) - 2}
    for where, pos in positions.items():
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        path = _write(tmp_path / f"bad_{pos}.gz", bytes(bad))
        with pytest.raises(D.CorruptFileError) as err:
            D.read_idx(path)
        assert str(path) in str(err.value), where


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_corrupt_error_is_a_data_error_and_value_error():
    assert issubclass(D.CorruptFileError, D.DataError) and issubclass(D.CorruptFileError, ValueError)
    assert issubclass(D.DatasetNotFoundError, RuntimeError)
    assert issubclass(D.DownloadError, RuntimeError)


# --------------------------------------------------------------------------------------
# structural validation of local datasets
# --------------------------------------------------------------------------------------
def test_load_tiny_mnist_values_and_types(places):
    write_mnist(places["root"] / "mnist", marker=7)
    images, labels, classes = D.load_mnist("train", root=places["root"], download=False)
    ref_images, ref_labels = tiny_mnist(12, 7, seed=12 + 7)
    assert images.dtype == torch.float32 and images.shape == (12, 1, 28, 28)
    assert labels.dtype == torch.int64 and labels.shape == (12,)
    assert torch.equal(images, torch.from_numpy(ref_images).float().unsqueeze(1) / 255)
    assert torch.equal(labels, torch.from_numpy(ref_labels).long())
    assert classes == [str(i) for i in range(10)]
    test = D.load_mnist("test", root=places["root"], download=False)
    assert test.images.shape == (6, 1, 28, 28) and float(test.images.max()) <= 1.0


def test_uncompressed_files_are_accepted(places):
    write_mnist(places["root"] / "mnist", marker=9, compress=False)
    images, labels, _ = D.load_mnist("train", root=places["root"], download=False)
    assert images.shape == (12, 1, 28, 28) and round(float(images[0, 0, 0, 0]) * 255) == 9


def test_wrong_count_or_labels_out_of_range_raise(places, monkeypatch):
    folder = places["root"] / "mnist"
    write_mnist(folder, marker=1)
    monkeypatch.setitem(D.DATASETS, "mnist", dataclasses.replace(D.DATASETS["mnist"], n_train=13))
    with pytest.raises(D.CorruptFileError, match="expected 13"):
        D.load_mnist("train", root=places["root"], download=False)
    monkeypatch.setitem(D.DATASETS, "mnist", dataclasses.replace(D.DATASETS["mnist"], n_train=12))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gz(idx_bytes(np.full(12, 10, np.uint8), 0x08)))
    with pytest.raises(D.CorruptFileError, match="outside 0..9") as err:
        D.load_mnist("train", root=places["root"], download=False)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gz(idx_bytes(np.zeros((12, 27, 28), np.uint8), 0x08)))
    with pytest.raises(D.CorruptFileError, match="shape"):
        D.load_mnist("train", root=places["root"], download=False)


def test_cache_returns_fresh_tensors(places):
    write_mnist(places["root"] / "mnist", marker=3)
    a = D.load_mnist(root=places["root"], download=False)
    a.images.fill_(0.5)
    a.labels.fill_(3)
    b = D.load_mnist(root=places["root"], download=False)
    assert round(float(b.images[0, 0, 0, 0]) * 255) == 3 and not torch.all(b.labels == 3)
    assert D._decode_idx.cache_info().hits >= 1     # the second load did not re-read the files


def test_cache_sees_a_rewritten_file(places):
    folder = places["root"] / "mnist"
    write_mnist(folder, marker=3)
    assert round(float(D.load_mnist(root=places["root"], download=False).images[0, 0, 0, 0]) * 255) == 3
    write_mnist(folder, marker=4)
    os.utime(folder / "train-images-idx3-ubyte.gz", ns=(0, 123456789))
    assert round(float(D.load_mnist(root=places["root"], download=False).images[0, 0, 0, 0]) * 255) == 4


# --------------------------------------------------------------------------------------
# resolution order
# --------------------------------------------------------------------------------------
def _marker(data: D.ImageData) -> int:
    return round(float(data.images[0, 0, 0, 0]) * 255)


def test_resolution_order_root_env_system_cache(places, monkeypatch):
    for marker, key in enumerate(("root", "env", "system", "cache"), start=1):
        write_mnist(places[key] / "mnist", marker=marker)
    monkeypatch.setenv(D.DATA_ENV, str(places["env"]))
    assert [f for _, f in D.search_dirs(places["root"])] == [
        places["root"], places["env"], places["system"], places["cache"]]
    assert _marker(D.load_mnist(root=places["root"], download=False)) == 1
    assert _marker(D.load_mnist(download=False)) == 2
    monkeypatch.delenv(D.DATA_ENV)
    assert _marker(D.load_mnist(download=False)) == 3
    monkeypatch.setattr(D, "SYSTEM_DIRS", [])
    assert _marker(D.load_mnist(download=False)) == 4
    # an explicit root without the files falls through to the other places
    assert _marker(D.load_mnist(root=places["root"] / "empty", download=False)) == 4


def test_env_may_list_several_folders(places, monkeypatch):
    write_mnist(places["system"] / "mnist", marker=5)
    monkeypatch.setenv(D.DATA_ENV, os.pathsep.join([str(places["env"]), str(places["system"])]))
    assert _marker(D.load_mnist(download=False)) == 5


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(D.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert D.cache_dir() == tmp_path / ".cache" / "robustkit" / "data"
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "c"))
    assert D.cache_dir() == tmp_path / "c" / "data"


def test_missing_dataset_error_lists_every_place(places, monkeypatch):
    monkeypatch.setenv(D.DATA_ENV, str(places["env"]))
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.load_mnist("test", root=places["root"], download=False)
    msg = str(err.value)
    for key in ("root", "env", "system", "cache"):
        assert str(places[key] / "mnist") in msg
    for hint in ("ROBUSTKIT_DATA", "root=", "download=True", "t10k-images-idx3-ubyte.gz"):
        assert hint in msg
    assert not places["cache"].exists()      # nothing was created


# --------------------------------------------------------------------------------------
# downloads (fake network)
# --------------------------------------------------------------------------------------
def _fake_mnist_site(places, monkeypatch, marker=8):
    """Bytes of a tiny MNIST, served per file name, with the registry md5 sums set to match."""
    served = write_mnist(places["system"].parent / "site", marker=marker)
    info = D.DATASETS["mnist"]
    monkeypatch.setitem(D.DATASETS, "mnist", dataclasses.replace(
        info, md5={name: md5(data) for name, data in served.items()}))
    return served


def test_download_verified_and_atomic(places, monkeypatch):
    served = _fake_mnist_site(places, monkeypatch)
    info = D.DATASETS["mnist"]
    target = places["cache"] / "mnist"
    seen_partial = []

    def page(name):
        def opener():
            def check():     # while streaming: final file absent, a temp file in the same folder
                assert not (target / name).exists()
                seen_partial.append([p.name for p in target.iterdir() if p.name.endswith(".part")])
            return FakeResponse(served[name], headers={"Content-Length": str(len(served[name]))},
                                on_read=check)
        return opener

    web = FakeWeb({info.mirrors[0] + n: page(n) for n in served})
    monkeypatch.setattr(D, "_urlopen", web)
    images, labels, _ = D.load_mnist("train", download=True, progress=False)
    assert images.shape == (12, 1, 28, 28) and _marker(D.ImageData(images, labels, [])) == 8
    assert files_under(target) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (target / "train-images-idx3-ubyte.gz").read_bytes() == served["train-images-idx3-ubyte.gz"]
    assert web.calls == [info.mirrors[0] + n for n in info.files["train"]]
    assert seen_partial and all(len(p) == 1 for p in seen_partial)
    # now found locally: no further network use
    D.clear_cache()
    D.load_mnist("train", download=True)
    assert len(web.calls) == 2


def test_download_into_root_when_given(places, monkeypatch):
    served = _fake_mnist_site(places, monkeypatch)
    info = D.DATASETS["mnist"]
    monkeypatch.setattr(D, "_urlopen", FakeWeb({info.mirrors[0] + n: d for n, d in served.items()}))
    D.load_mnist("test", root=places["root"], progress=False)
    assert files_under(places["root"]) == ["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"]
    assert not places["cache"].exists()


def test_download_wrong_checksum_leaves_nothing(places, monkeypatch):
    served = _fake_mnist_site(places, monkeypatch)
    info = D.DATASETS["mnist"]
    tampered = {info.mirrors[0] + n: d[:-1] + bytes([d[-1] ^ 1]) for n, d in served.items()}
    monkeypatch.setattr(D, "_urlopen", FakeWeb(tampered))
    with pytest.raises(D.DownloadError, match="checksum mismatch") as err:
        D.load_mnist("train", progress=False)
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    assert files_under(places["cache"]) == []


def test_first_mirror_fails_next_mirror_works(places, monkeypatch):
    served = _fake_mnist_site(places, monkeypatch)
    info = D.DATASETS["mnist"]
    assert len(info.mirrors) == 2
    pages = {info.mirrors[1] + n: d for n, d in served.items()}
    pages[info.mirrors[0] + "train-images-idx3-ubyte.gz"] = urllib.error.HTTPError(
        "u", 503, "unavailable", {}, None)
    pages[info.mirrors[0] + "train-labels-idx1-ubyte.gz"] = b"not the file"   # checksum mismatch
    web = FakeWeb(pages)
    monkeypatch.setattr(D, "_urlopen", web)
    images, labels, _ = D.load_mnist("train", progress=False)
    assert images.shape == (12, 1, 28, 28)
    m0, m1 = info.mirrors
    assert web.calls == [m0 + "train-images-idx3-ubyte.gz", m1 + "train-images-idx3-ubyte.gz",
                         m0 + "train-labels-idx1-ubyte.gz", m1 + "train-labels-idx1-ubyte.gz"]
    assert files_under(places["cache"]) == ["mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"]


def test_all_mirrors_fail_lists_each_failure(places, monkeypatch):
    _fake_mnist_site(places, monkeypatch)
    monkeypatch.setattr(D, "_urlopen", FakeWeb({}))
    with pytest.raises(D.DownloadError) as err:
        D.load_mnist("train", progress=False)
    msg = str(err.value)
    for mirror in D.DATASETS["mnist"].mirrors:
        assert mirror + "train-images-idx3-ubyte.gz" in msg
    assert str(places["cache"] / "mnist") in msg and "ROBUSTKIT_DATA" in msg
    assert files_under(places["cache"]) == []


def test_download_file_short_or_broken_transfer(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 100
    dest = tmp_path / "d" / "file.bin"
    # the server announces more bytes than it sends
    monkeypatch.setattr(D, "_urlopen", FakeWeb({"http://a/f": lambda: FakeResponse(
        payload[:1000], headers={"Content-Length": str(len(payload))})}))
    with pytest.raises(D.DownloadError, match="incomplete"):
        D.download_file("http://a/f", dest, progress=False)
    assert files_under(tmp_path) == []
    # the connection breaks mid-stream, then a second mirror works
    web = FakeWeb({"http://a/f": lambda: FakeResponse(payload, fail_after=3000),
                   "http://b/f": payload})
    monkeypatch.setattr(D, "_urlopen", web)
    assert D.download_file(["http://a/f", "http://b/f"], dest, md5=md5(payload), progress=False) == dest
    assert dest.read_bytes() == payload and files_under(tmp_path) == ["d/file.bin"]


def test_download_keeps_existing_file_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    monkeypatch.setattr(D, "_urlopen", FakeWeb({"http://a/f": b"new"}))
    with pytest.raises(D.DownloadError):
        D.download_file("http://a/f", dest, md5=md5(b"other"), progress=False)
    assert dest.read_bytes() == b"old" and files_under(tmp_path) == ["file.bin"]


# --------------------------------------------------------------------------------------
# CIFAR-10 (small fake archive in the official format)
# --------------------------------------------------------------------------------------
CIFAR_TRAIN_PER_BATCH, CIFAR_TEST = 4, 6


def cifar_batches(seed=0):
    rng = np.random.default_rng(seed)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = CIFAR_TEST if name == "test_batch" else CIFAR_TRAIN_PER_BATCH
        batches[name] = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
                         b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                         b"filenames": [f"img{i}_{j}.png".encode() for j in range(n)]}
    return batches


def cifar_tar(batches, extra_members=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, (name, batch) in enumerate(batches.items()):
            blob = batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2 if i % 2 else 5)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        for name, blob in extra_members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@pytest.fixture
def cifar(places, monkeypatch):
    batches = cifar_batches()
    archive = cifar_tar(batches)
    monkeypatch.setitem(D.DATASETS, "cifar10", dataclasses.replace(
        D.DATASETS["cifar10"], n_train=5 * CIFAR_TRAIN_PER_BATCH, n_test=CIFAR_TEST,
        md5={"cifar-10-python.tar.gz": md5(archive)}))
    return batches, archive


def _check_cifar(data, batches, split):
    names = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    raw = np.concatenate([batches[n][b"data"] for n in names])
    labels = np.concatenate([batches[n][b"labels"] for n in names])
    images, got_labels, classes = data
    assert images.shape == (raw.shape[0], 3, 32, 32) and images.dtype == torch.float32
    # channel c of image i = raw[i, 1024 c : 1024 (c + 1)] in row-major 32x32 order
    for i in (0, raw.shape[0] - 1):
        for c in range(3):
            expect = raw[i, 1024 * c: 1024 * (c + 1)].reshape(32, 32).astype(np.float32) / 255
            np.testing.assert_array_equal(images[i, c].numpy(), expect)
    assert torch.equal(images, torch.from_numpy(raw.reshape(-1, 3, 32, 32)).float() / 255)
    assert got_labels.tolist() == labels.tolist() and got_labels.dtype == torch.int64
    assert classes[0] == "airplane" and len(classes) == 10


def test_cifar_local_archive_is_extracted_and_loaded(places, cifar):
    batches, archive = cifar
    (places["root"]).mkdir()
    (places["root"] / "cifar-10-python.tar.gz").write_bytes(archive)
    _check_cifar(D.load_cifar10("train", root=places["root"], download=False), batches, "train")
    _check_cifar(D.load_cifar10("test", root=places["root"], download=False), batches, "test")
    assert sorted(p.name for p in places["root"].iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    # the extracted folder alone is enough afterwards
    (places["root"] / "cifar-10-python.tar.gz").unlink()
    D.clear_cache()
    _check_cifar(D.load_cifar10("test", root=places["root"], download=False), batches, "test")


def test_cifar_read_only_archive_folder_extracts_into_cache(places, cifar, monkeypatch):
    batches, archive = cifar
    places["system"].mkdir()
    (places["system"] / "cifar-10-python.tar.gz").write_bytes(archive)
    monkeypatch.setattr(D, "_writable", lambda folder: folder != places["system"])
    _check_cifar(D.load_cifar10("test", download=False), batches, "test")
    assert (places["cache"] / "cifar-10-batches-py" / "test_batch").is_file()
    assert not (places["system"] / "cifar-10-batches-py").exists()


def test_cifar_download(places, cifar, monkeypatch):
    batches, archive = cifar
    url = D.DATASETS["cifar10"].mirrors[0] + "cifar-10-python.tar.gz"
    assert url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    web = FakeWeb({url: archive})
    monkeypatch.setattr(D, "_urlopen", web)
    _check_cifar(D.load_cifar10("train", progress=False), batches, "train")
    assert web.calls == [url]
    assert sorted(p.name for p in places["cache"].iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    _check_cifar(D.load_cifar10("test", progress=False), batches, "test")
    assert web.calls == [url]


def test_cifar_download_wrong_checksum_leaves_nothing(places, cifar, monkeypatch):
    batches, archive = cifar
    url = D.DATASETS["cifar10"].mirrors[0] + "cifar-10-python.tar.gz"
    monkeypatch.setattr(D, "_urlopen", FakeWeb({url: archive[:-10]}))
    with pytest.raises(D.DownloadError, match="checksum"):
        D.load_cifar10("train", progress=False)
    assert files_under(places["cache"]) == []


def test_cifar_corrupt_archive_leaves_no_partial_folder(places, cifar):
    batches, archive = cifar
    places["root"].mkdir()
    (places["root"] / "cifar-10-python.tar.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(D.CorruptFileError, match="cifar-10-python.tar.gz"):
        D.load_cifar10("train", root=places["root"], download=False)
    assert [p.name for p in places["root"].iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar_archive_with_unsafe_member_is_refused(places, cifar):
    batches, _ = cifar
    places["root"].mkdir()
    (places["root"] / "cifar-10-python.tar.gz").write_bytes(cifar_tar(batches, [("../evil.txt", b"x")]))
    with pytest.raises(D.CorruptFileError, match="unsafe"):
        D.load_cifar10("train", root=places["root"], download=False)
    assert not (places["root"].parent / "evil.txt").exists()


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_cifar_unpickler_refuses_code(places, cifar, tmp_path):
    batches, _ = cifar
    folder = places["root"] / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch))
    marker = tmp_path / "pwned"
    evil = dict(batches["test_batch"])
    evil[b"filenames"] = [_Payload(str(marker))]
    (folder / "test_batch").write_bytes(pickle.dumps(evil))
    with pytest.raises(D.CorruptFileError, match="refusing"):
        D.load_cifar10("test", root=places["root"], download=False)
    assert not marker.exists()
    _check_cifar(D.load_cifar10("train", root=places["root"], download=False), batches, "train")


def test_cifar_bad_batch_content(places, cifar):
    batches, _ = cifar
    folder = places["root"] / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    bad = dict(batches["test_batch"])
    bad[b"data"] = bad[b"data"][:, :3000]
    (folder / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(D.CorruptFileError, match="3072"):
        D.load_cifar10("test", root=places["root"], download=False)


# --------------------------------------------------------------------------------------
# stratified subsets
# --------------------------------------------------------------------------------------
def hamilton(counts: dict, n: int) -> dict:
    """Brute-force largest-remainder apportionment (oracle)."""
    total = sum(counts.values())
    quota = {c: n * k / total for c, k in counts.items()}
    take = {c: int(q // 1) for c, q in quota.items()}
    for c in sorted(counts, key=lambda c: (-(quota[c] - take[c]), c))[: n - sum(take.values())]:
        take[c] += 1
    return take


@pytest.mark.parametrize("n", [1, 7, 50, 99, 123, 299, 300])
def test_stratified_subset_counts_match_brute_force(n):
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 3, 4, 9], size=300, p=[0.55, 0.25, 0.15, 0.05])
    idx = D.stratified_subset(torch.from_numpy(labels), n, seed=3)
    assert idx.dtype == torch.int64 and idx.shape == (n,)
    values = idx.tolist()
    assert values == sorted(set(values)) and 0 <= values[0] and values[-1] < 300
    counts = Counter(labels.tolist())
    got = Counter(labels[values].tolist())
    assert sum(got.values()) == n
    for c, k in counts.items():
        assert abs(got.get(c, 0) - n * k / 300) < 1
    assert {c: got.get(c, 0) for c in counts} == hamilton(counts, n)


def test_stratified_subset_deterministic_and_uniform_within_class():
    labels = np.array([0] * 20 + [1] * 10)
    a = D.stratified_subset(labels, 9, seed=5)
    assert torch.equal(a, D.stratified_subset(labels.tolist(), 9, seed=5))
    assert not torch.equal(a, D.stratified_subset(labels, 9, seed=6))
    # Monte Carlo: each class-0 element is kept with prob 6/20, each class-1 one with 3/10
    hits = np.zeros(30)
    trials = 2000
    for seed in range(trials):
        hits[D.stratified_subset(labels, 9, seed=seed).numpy()] += 1
    freq = hits / trials
    assert np.all(np.abs(freq - 0.3) < 0.06)        # 6 sigma = 6 * sqrt(.3 * .7 / 2000) ~ 0.06


def test_stratified_subset_all_and_bad_inputs():
    labels = torch.tensor([2, 2, 5, 5, 5])
    assert D.stratified_subset(labels, 5).tolist() == [0, 1, 2, 3, 4]
    for n in (0, -1, 6):
        with pytest.raises(ValueError):
            D.stratified_subset(labels, n)
    with pytest.raises(TypeError):
        D.stratified_subset(labels, 2.0)
    with pytest.raises(TypeError):
        D.stratified_subset(torch.tensor([0.5, 1.5]), 1)
    with pytest.raises(ValueError):
        D.stratified_subset(torch.zeros(2, 2, dtype=torch.long), 1)
    with pytest.raises(ValueError):
        D.stratified_subset(labels, 2, seed=-1)


def test_load_dataset_subset(places):
    write_mnist(places["root"] / "mnist", marker=2)
    full = D.load_mnist(root=places["root"], download=False)
    sub = D.load_dataset("MNIST", "train", root=places["root"], download=False, n=5, seed=1)
    idx = D.stratified_subset(full.labels, 5, seed=1)
    assert torch.equal(sub.images, full.images[idx]) and torch.equal(sub.labels, full.labels[idx])
    with pytest.raises(ValueError, match="n must be"):
        D.load_dataset("mnist", root=places["root"], download=False, n=13)


# --------------------------------------------------------------------------------------
# digits, registry, stats
# --------------------------------------------------------------------------------------
def test_digits_split():
    from sklearn.datasets import load_digits as sk_digits
    sk = sk_digits()
    train, test = D.load_digits("train"), D.load_digits("test")
    assert train.images.shape[1:] == (1, 8, 8) and test.images.shape[0] == round(0.25 * 1797)
    assert train.images.shape[0] + test.images.shape[0] == 1797
    both = torch.cat([train.images, test.images]).reshape(1797, 64).numpy() * 16
    assert float(both.min()) == 0.0 and float(both.max()) == 16.0
    assert np.array_equal(both, np.round(both))
    # the two splits are a partition of sklearn's data: compare sorted rows (with labels)
    ours = np.column_stack([both, torch.cat([train.labels, test.labels]).numpy()])
    ref = np.column_stack([sk.data, sk.target])
    sort = lambda a: a[np.lexsort(a.T[::-1])]
    np.testing.assert_array_equal(sort(ours), sort(ref))
    # stratified: each class within one example of its share
    full = Counter(sk.target.tolist())
    got = Counter(test.labels.tolist())
    assert all(abs(got[c] - 449 * full[c] / 1797) < 1 for c in full)
    assert torch.equal(D.load_digits("test").images, test.images)
    assert not torch.equal(D.load_digits("test", seed=1).labels, test.labels)
    assert D.load_digits("test", test_fraction=0.5).images.shape[0] == round(0.5 * 1797)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError):
            D.load_digits("train", test_fraction=bad)


def test_digits_stats_match_data():
    from sklearn.datasets import load_digits as sk_digits
    x = sk_digits().data / 16
    mean, std = D.dataset_stats("digits")
    assert abs(mean[0] - x.mean()) < 1e-4 and abs(std[0] - x.std()) < 1e-4


def test_registry_and_bad_names():
    assert set(D.list_datasets()) == {"mnist", "fashion-mnist", "digits", "cifar10"}
    for name, folder in (("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("cifar10", "cifar-10-batches-py")):
        assert D.DATASETS[name].folder == folder
    assert D.dataset_stats("mnist") == ((0.1307,), (0.3081,))
    assert D.dataset_stats("fashion_mnist").std == (0.3530,)
    assert len(D.dataset_stats("CIFAR-10").mean) == 3
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("digits", "validation")
    with pytest.raises(TypeError):
        D.dataset_stats(3)


# --------------------------------------------------------------------------------------
# make_loader
# --------------------------------------------------------------------------------------
def _epochs(loader, k=2):
    return [[(x.clone(), y.clone()) for x, y in loader] for _ in range(k)]


def test_make_loader_deterministic_and_complete():
    x = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    y = torch.arange(50)
    a, b = _epochs(D.make_loader(x, y, batch_size=8, seed=3)), _epochs(D.make_loader(x, y, batch_size=8, seed=3))
    for ea, eb in zip(a, b):
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(ea, eb))
    for epoch in a:
        assert [len(ya) for _, ya in epoch] == [8] * 6 + [2]
        order = torch.cat([ya for _, ya in epoch])
        assert sorted(order.tolist()) == list(range(50))            # a permutation
        assert torch.equal(torch.cat([xa for xa, _ in epoch]).reshape(-1).long(), order)  # pairs kept
    assert not torch.equal(torch.cat([ya for _, ya in a[0]]), torch.cat([ya for _, ya in a[1]]))
    other = _epochs(D.make_loader(x, y, batch_size=8, seed=4), 1)[0]
    assert not torch.equal(torch.cat([ya for _, ya in other]), torch.cat([ya for _, ya in a[0]]))


def test_make_loader_sequential_drop_last_and_defaults():
    x, y = torch.rand(10, 1, 2, 2), torch.arange(10)
    loader = D.make_loader(x, y, batch_size=4, shuffle=False, drop_last=True, device="cpu")
    assert [yb.tolist() for _, yb in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(loader) == 2 and loader.num_workers == 0 and not loader.pin_memory


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=2.5), dict(num_workers=-1)])
def test_make_loader_bad_input(kwargs):
    x, y = torch.rand(4, 1, 2, 2), torch.arange(4)
    with pytest.raises(ValueError):
        D.make_loader(x, y, **kwargs)


def test_make_loader_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        D.make_loader(torch.rand(4, 1, 2, 2), torch.arange(3))
    with pytest.raises(ValueError, match="empty"):
        D.make_loader(torch.rand(0, 1, 2, 2), torch.arange(0))
    with pytest.raises(TypeError):
        D.make_loader(np.zeros((2, 1, 2, 2)), torch.arange(2))


# --------------------------------------------------------------------------------------
# the real data (offline copies), when present
# --------------------------------------------------------------------------------------
def _real_root() -> Path | None:
    candidates = [p for p in os.environ.get(D.DATA_ENV, "").split(os.pathsep) if p.strip()]
    candidates.append(str(REPO.parent / "shared" / "data"))
    for c in candidates:
        if (Path(c) / "mnist" / "train-labels-idx1-ubyte.gz").is_file():
            return Path(c)
    return None


REAL = _real_root()
needs_real = pytest.mark.skipif(REAL is None, reason="offline MNIST copies not available "
                                                    "(set ROBUSTKIT_DATA)")
# label counts of the official MNIST release (train / t10k)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real
def test_real_mnist():
    images, labels, classes = D.load_mnist("train", root=REAL, download=False)
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert abs(float(images.mean()) - 0.1307) < 1e-3 and abs(float(images.std()) - 0.3081) < 1e-3
    counts = torch.bincount(labels, minlength=10)
    assert int(counts.sum()) == 60_000 and counts.tolist() == MNIST_TRAIN_COUNTS
    test = D.load_mnist("test", root=REAL, download=False)
    assert test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test.labels, minlength=10).tolist() == MNIST_TEST_COUNTS


@needs_real
def test_real_fashion_mnist():
    if not (REAL / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("no fashion-mnist copy")
    images, labels, classes = D.load_fashion_mnist("train", root=REAL, download=False)
    assert images.shape == (60_000, 1, 28, 28) and classes[0] == "T-shirt/top"
    assert abs(float(images.mean()) - 0.2860) < 1e-3 and abs(float(images.std()) - 0.3530) < 1e-3
    assert torch.bincount(labels, minlength=10).tolist() == [6000] * 10
    sub = D.load_dataset("fashion-mnist", "test", root=REAL, download=False, n=1000, seed=0)
    assert torch.bincount(sub.labels, minlength=10).tolist() == [100] * 10
