"""Fashion-MNIST from Debian's IDX files: the strict IDX reader (on small files written
here), the loader's one-line errors, and one full load of the real package files."""
import gzip
import os
import struct

import numpy as np
import pytest

import normlab_datasets as nd
import normlab_idx as idx
from cli_helpers import run

DEBIAN_DIR = nd.FASHION_MNIST_DIRECTORY


def write_raw(path, data, compress=True):
    opener = gzip.open if compress else open
    with opener(str(path), "wb") as f:
        f.write(data)
    return str(path)


def header(dtype, dims):
    return struct.pack(">HBB", 0, dtype, len(dims)) + struct.pack(">%dI" % len(dims), *dims)


# ------------------------------------------------------------------------------------------
# IDX reader


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / "a.idx")
    idx.write_idx(path, a, compress=compress)
    got = idx.read_idx(path, ndim=3, dims=(2, 3, 4))
    assert got.dtype == np.uint8 and np.array_equal(got, a)
    # The header is the documented one: 0x00000803, then big-endian dimensions.
    raw = gzip.open(path).read() if compress else open(path, "rb").read()
    assert raw[:4] == b"\x00\x00\x08\x03" and struct.unpack(">3I", raw[4:16]) == (2, 3, 4)


@pytest.mark.parametrize("data, ndim, dims, message", [
    (header(0x08, (2, 2)) + bytes(4), 3, None, "2 dimensions in the header, expected 3"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", 1, None, "bad magic number 0x01000801"),
    (header(0x0D, (2,)) + bytes(8), 1, None, "bad magic number 0x00000d01"),
    (header(0x08, (3, 2)) + bytes(5), 2, None, "5 data bytes, the header shape 3x2 needs 6"),
    (header(0x08, (3, 2)) + bytes(7), 2, None, "7 data bytes, the header shape 3x2 needs 6"),
    (header(0x08, (3, 2, 2)) + bytes(12), 3, (3, 28, 28), "dimension 1 is 2, expected 28"),
    (header(0x08, (5,)) + bytes(5), 1, (6,), "dimension 0 is 5, expected 6"),
    (b"\x00\x00\x08", None, None, "too short for an IDX header"),
    (b"\x00\x00\x08\x03" + bytes(6), None, None, "truncated header"),
])
def test_idx_rejects_malformed_files(tmp_path, data, ndim, dims, message):
    path = write_raw(tmp_path / "bad.gz", data)
    with pytest.raises(idx.IdxError) as e:
        idx.read_idx(path, ndim=ndim, dims=dims)
    text = str(e.value)
    assert message in text and path in text and "\n" not in text


def test_idx_broken_gzip_and_missing_file(tmp_path):
    good = str(tmp_path / "good.gz")
    idx.write_idx(good, np.zeros((10, 10), np.uint8))
    raw = open(good, "rb").read()
    broken = write_raw(tmp_path / "broken.gz", raw[: len(raw) // 2], compress=False)
    with pytest.raises(idx.IdxError, match="cannot be read or decompressed"):
        idx.read_idx(broken)
    with pytest.raises(idx.IdxError, match="file not found"):
        idx.read_idx(str(tmp_path / "nope.gz"))


# ------------------------------------------------------------------------------------------
# The loader on a fake package folder


def fake_package(directory, damage=None):
    """Standard-shaped headers are required, so the fake folder holds valid labels but a small
    or broken image file; every error happens before the 60,000-image check would matter."""
    os.makedirs(str(directory), exist_ok=True)
    for split, count in nd.FASHION_MNIST_SPLITS.items():
        idx.write_idx(os.path.join(str(directory), "%s-labels-idx1-ubyte.gz" % split), np.arange(count) % 10)
        idx.write_idx(os.path.join(str(directory), "%s-images-idx3-ubyte.gz" % split), np.zeros((2, 28, 28), np.uint8))
    if damage:
        damage(str(directory))
    return str(directory)


def test_loader_names_the_file_and_the_package(monkeypatch, tmp_path):
    directory = fake_package(tmp_path / "fm")
    monkeypatch.setenv(nd.FASHION_MNIST_DIRECTORY_VARIABLE, directory)
    with pytest.raises(nd.DatasetError) as e:
        nd.load("fashion-mnist", use_cache=False)
    text = str(e.value)
    assert "train-images-idx3-ubyte.gz" in text and "dimension 0 is 2, expected 60000" in text
    assert "dataset-fashion-mnist" in text and "\n" not in text


def test_missing_file_is_reported_before_any_cache_lookup(monkeypatch, tmp_path):
    directory = fake_package(tmp_path / "fm", damage=lambda d: os.unlink(os.path.join(d, "t10k-labels-idx1-ubyte.gz")))
    monkeypatch.setenv(nd.FASHION_MNIST_DIRECTORY_VARIABLE, directory)
    with pytest.raises(nd.DatasetError) as e:
        nd.cache_file_name("fashion-mnist")
    assert "t10k-labels-idx1-ubyte.gz: file not found" in str(e.value) and "dataset-fashion-mnist" in str(e.value)


def test_cli_corrupt_file_is_one_line_and_writes_nothing(tmp_path):
    def corrupt(d):
        path = os.path.join(d, "train-labels-idx1-ubyte.gz")
        raw = bytearray(gzip.open(path).read())
        raw[2] = 0x09  # magic 0x00000901: signed bytes, not unsigned
        write_raw(path, bytes(raw))
    directory = fake_package(tmp_path / "fm", damage=corrupt)
    cache = tmp_path / "cache"
    out = tmp_path / "model.npz"
    env = dict(os.environ, NORMLAB_FASHION_MNIST_DIR=directory, NORMLAB_CACHE=str(cache))
    import subprocess
    from cli_helpers import normlab_binary
    p = subprocess.run([normlab_binary(), "train", "--dataset", "fashion-mnist", "--steps", "1", "--save", str(out)],
                       capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "train-labels-idx1-ubyte.gz" in lines[0] and "bad magic number 0x00000901" in lines[0]
    assert "dataset-fashion-mnist" in lines[0]
    assert not out.exists() and (not cache.exists() or not any(cache.iterdir()))


# ------------------------------------------------------------------------------------------
# The real files (one full load, no cache)


@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh)")
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.delenv(nd.FASHION_MNIST_DIRECTORY_VARIABLE, raising=False)
    d = nd.load("fashion-mnist", cache_dir=str(tmp_path))
    assert d["cache_status"] == "generated"
    assert d["x_train"].shape == (60000, 1, 28, 28) and d["x_test"].shape == (10000, 1, 28, 28)
    assert d["x_train"].dtype == np.float32 and d["classes"] == 10
    # Standardized with the training statistics: train mean 0 and std 1; the test split is close.
    assert abs(float(d["x_train"].mean(dtype=np.float64))) < 1e-5
    assert abs(float(d["x_train"].std(dtype=np.float64)) - 1) < 1e-5
    assert abs(float(d["x_test"].mean(dtype=np.float64))) < 0.02
    # Balanced classes, the published first labels of the training file.
    assert np.array_equal(np.bincount(d["y_train"]), [6000] * 10)
    assert np.array_equal(np.bincount(d["y_test"]), [1000] * 10)
    assert d["y_train"][:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    # The raw pixels come back exactly: x*std + mean, times 255, rounds to the file's bytes.
    raw = idx.read_idx(os.path.join(DEBIAN_DIR, "t10k-images-idx3-ubyte.gz"))
    train = idx.read_idx(os.path.join(DEBIAN_DIR, "train-images-idx3-ubyte.gz")).astype(np.float64) / 255
    back = (d["x_test"][:, 0].astype(np.float64) * train.std() + train.mean()) * 255
    assert np.array_equal(np.rint(back).astype(np.uint8), raw)
    # The cache file holds the same arrays and verifies.
    again = nd.load("fashion-mnist", cache_dir=str(tmp_path))
    assert again["cache_status"] == "hit" and again["content_hash"] == d["content_hash"]
