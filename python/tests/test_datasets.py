"""normlab_datasets: digits and mnist1d generation, the .npz cache, the content hash."""
import os
import random
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import normlab_datasets as nd

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DIGITS_SEED0_HASH = "8705b35a4bc33d48f14f432e7f3be36e5ba2f999071d919a0f0cca3934c0e0f8"
MNIST1D_HASH = "321a890c55f2ba20daedd97ff4a8afc743d754e58979251f4785463178c440a0"


@pytest.fixture(scope="module")
def mnist1d_arrays():
    return nd.make_mnist1d()


def _same(a, b):
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert np.array_equal(a[key], b[key]), key
    assert a["classes"] == b["classes"]


# --- digits ----------------------------------------------------------------------------------


def test_digits_shapes_range_and_labels():
    d = nd.make_digits(0)
    assert d["x_train"].shape == (1437, 1, 8, 8) and d["x_test"].shape == (360, 1, 8, 8)
    assert d["x_train"].dtype == np.float32 and d["y_train"].dtype == np.int64
    assert d["x_train"].flags.c_contiguous and d["x_test"].flags.c_contiguous
    x = np.concatenate([d["x_train"], d["x_test"]])
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(x * 16, np.round(x * 16))
    counts = np.bincount(np.concatenate([d["y_train"], d["y_test"]]), minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert (np.bincount(d["y_test"], minlength=10) > 0).all()
    assert nd.content_hash(d) == DIGITS_SEED0_HASH


def test_digits_split_is_a_function_of_the_seed():
    from sklearn.datasets import load_digits
    a, b, c = nd.make_digits(0), nd.make_digits(0), nd.make_digits(1)
    _same(a, b)
    assert not np.array_equal(a["y_test"], c["y_test"]) or not np.array_equal(a["x_test"], c["x_test"])
    assert nd.content_hash(a) != nd.content_hash(c)
    # The split is exactly default_rng(seed).permutation, each side in the original order.
    full = load_digits()
    order = np.random.default_rng(1).permutation(1797)
    test_idx = np.sort(order[1437:])
    assert np.array_equal(c["y_test"], full.target[test_idx])
    assert np.array_equal(c["x_test"][:, 0], (full.images[test_idx] / 16).astype(np.float32))
    # Seeds beyond int64 work (Swift passes UInt64 as text).
    assert nd.make_digits(str(2**64 - 1))["x_test"].shape == (360, 1, 8, 8)
    with pytest.raises(nd.DatasetError, match="non-negative"):
        nd.make_digits(-1)


# --- mnist1d ---------------------------------------------------------------------------------


def test_mnist1d_equals_a_fresh_make_dataset(mnist1d_arrays):
    nd.add_pydeps_to_path()
    from mnist1d.data import make_dataset, get_dataset_args
    d = mnist1d_arrays
    assert d["x_train"].shape == (4000, 1, 40) and d["x_test"].shape == (1000, 1, 40)
    assert d["x_train"].dtype == np.float32 and d["classes"] == 10
    ref = make_dataset(get_dataset_args())
    assert np.array_equal(d["x_train"][:, 0], ref["x"].astype(np.float32))
    assert np.array_equal(d["x_test"][:, 0], ref["x_test"].astype(np.float32))
    assert np.array_equal(d["y_train"], ref["y"]) and np.array_equal(d["y_test"], ref["y_test"])
    assert nd.content_hash(d) == MNIST1D_HASH


def test_mnist1d_defaults_are_the_pinned_ones():
    nd.add_pydeps_to_path()
    from mnist1d.data import get_dataset_args
    args = get_dataset_args(as_dict=True)
    args.pop("url")
    assert args == nd.MNIST1D_DEFAULT_ARGS


def test_mnist1d_never_touches_the_network_nor_global_random_state(monkeypatch, mnist1d_arrays):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import requests
    monkeypatch.setattr(requests, "get", refuse)
    nd.add_pydeps_to_path()
    import mnist1d.data
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    _same(nd.make_mnist1d(), mnist1d_arrays)
    # make_dataset reseeds numpy's and Python's global generators; make_mnist1d restores them.
    assert np.random.rand() == expected_np and random.random() == expected_py


def test_missing_mnist1d_is_a_one_line_error(tmp_path):
    # A copy of the module outside the repository: no <repo>/.deps/python next to it.
    shutil.copy(os.path.join(PYTHON_DIR, "normlab_datasets.py"), tmp_path / "normlab_datasets.py")
    env = dict(os.environ, NORMLAB_PYDEPS=str(tmp_path / "empty"), NORMLAB_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    code = ("import normlab_datasets as nd\n"
            "try:\n    nd.load('mnist1d')\nexcept nd.DatasetError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "mnist1d==0.0.2.post1 is not installed" in lines[0]
    assert "make test" in lines[0] and "scripts/setup.sh" in lines[0]
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_pydeps_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NORMLAB_PYDEPS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    dirs = nd.pydeps_directories()
    assert dirs[:2] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert dirs[-1] == os.path.join(os.path.dirname(PYTHON_DIR), ".deps", "python")


# --- cache -----------------------------------------------------------------------------------


def test_cache_location_and_name(monkeypatch, tmp_path):
    monkeypatch.delenv("NORMLAB_CACHE", raising=False)
    assert nd.default_cache_directory() == os.path.join(os.path.dirname(PYTHON_DIR), ".cache", "datasets")
    monkeypatch.setenv("NORMLAB_CACHE", str(tmp_path))
    assert nd.default_cache_directory() == str(tmp_path)
    name = nd.cache_file_name("digits", 3)
    assert name.startswith("digits-seed3-") and name.endswith(".npz")
    assert name != nd.cache_file_name("digits", 4)
    assert nd.cache_file_name("mnist1d", 0) == nd.cache_file_name("mnist1d", 9)
    assert nd.cache_file_name("mnist1d", 0).startswith("mnist1d-seed42-")
    assert nd.cache_path("digits", 3) == os.path.join(str(tmp_path), name)


def test_cache_hit_is_identical(tmp_path):
    first = nd.load("digits", 5, str(tmp_path))
    assert first["cache_status"] == "generated"
    assert os.listdir(tmp_path) == [os.path.basename(first["cache_path"])]  # no temporary left behind
    second = nd.load("digits", 5, str(tmp_path))
    assert second["cache_status"] == "hit" and second["cache_path"] == first["cache_path"]
    _same(first, second)
    assert first["content_hash"] == second["content_hash"] == nd.content_hash(nd.make_digits(5))
    with np.load(first["cache_path"], allow_pickle=False) as f:  # readable by plain numpy
        assert str(f["content_hash"]) == first["content_hash"]
        assert str(f["hash_format"]) == nd.HASH_FORMAT


def test_mnist1d_cache_round_trip(tmp_path, mnist1d_arrays):
    first = nd.load("mnist1d", 0, str(tmp_path))
    _same(first, mnist1d_arrays)
    second = nd.load("mnist1d", 1, str(tmp_path))
    assert second["cache_status"] == "hit"
    _same(first, second)
    assert second["content_hash"] == MNIST1D_HASH


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "tamper", "other-args"])
def test_corrupt_cache_is_regenerated(tmp_path, damage):
    good = nd.load("digits", 1, str(tmp_path))
    path = good["cache_path"]
    if damage == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 3])
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "garbage":
        open(path, "wb").write(b"not an npz" * 100)
    else:
        with np.load(path) as f:
            entries = {k: f[k] for k in f.files}
        if damage == "tamper":
            entries["y_test"] = (entries["y_test"] + 1) % 10
        else:
            entries["arguments"] = np.asarray('{"dataset":"digits","seed":99}')
        with open(path, "wb") as out:
            np.savez(out, **entries)
    again = nd.load("digits", 1, str(tmp_path))
    assert again["cache_status"] == "regenerated" and again["cache_note"]
    if damage == "tamper":
        assert "content hash mismatch" in again["cache_note"]
    _same(again, good)
    assert again["content_hash"] == good["content_hash"]
    assert nd.load("digits", 1, str(tmp_path))["cache_status"] == "hit"


def test_unwritable_cache_still_loads(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    d = nd.load("digits", 0, str(blocker))
    assert d["cache_status"] == "unwritable" and d["cache_note"]
    assert d["content_hash"] == DIGITS_SEED0_HASH


def test_no_cache(tmp_path):
    d = nd.load("digits", 0, str(tmp_path), use_cache=False)
    assert d["cache_status"] == "disabled" and d["cache_path"] is None
    assert os.listdir(tmp_path) == []


# --- content hash ----------------------------------------------------------------------------


def test_content_hash_definition():
    import hashlib
    d = {"x_train": np.arange(6, dtype=np.float32).reshape(2, 1, 3), "y_train": np.array([0, 1]),
         "x_test": np.ones((1, 1, 3), np.float32), "y_test": np.array([1]), "classes": 2}
    h = hashlib.sha256()
    h.update(b"normlab-dataset-v1 classes=2\n")
    h.update(b"x_train float32 2,1,3\n" + d["x_train"].astype("<f4").tobytes())
    h.update(b"y_train int64 2\n" + np.array([0, 1], "<i8").tobytes())
    h.update(b"x_test float32 1,1,3\n" + d["x_test"].astype("<f4").tobytes())
    h.update(b"y_test int64 1\n" + np.array([1], "<i8").tobytes())
    assert nd.content_hash(d) == h.hexdigest()
    # Deterministic, and sensitive to values, labels, shapes and the class count.
    assert nd.content_hash(d) == nd.content_hash(dict(d))
    for change in (
        {"x_train": d["x_train"] + np.float32(1e-6)},
        {"y_test": np.array([0])},
        {"x_train": d["x_train"].reshape(2, 3, 1)},
        {"classes": 3},
    ):
        assert nd.content_hash(dict(d, **change)) != nd.content_hash(d)


def test_unknown_name():
    with pytest.raises(nd.DatasetError, match="unknown data set 'cifar10'"):
        nd.load("cifar10")


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(PYTHON_DIR, "normlab_datasets.py"), "digits", "0",
                          str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert DIGITS_SEED0_HASH in out and "generated" in out
