"""Your own data as an .npz file: every validation error end to end through `normlab train`
(one line on stderr, non-zero exit, nothing written), the uint8 standardization, and a run
whose report records the file's SHA-256."""
import hashlib
import json
import os

import numpy as np
import pytest

import normlab_userdata as ud
import normlab_datasets as nd
from cli_helpers import run


def arrays(n_train=24, n_test=8, shape=(1, 6, 6), dtype=np.float32, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    def x(n):
        if dtype == np.uint8:
            return rng.integers(0, 256, size=(n,) + shape).astype(np.uint8)
        return rng.normal(size=(n,) + shape).astype(dtype)
    return {"x_train": x(n_train), "y_train": np.arange(n_train) % classes,
            "x_test": x(n_test), "y_test": np.arange(n_test) % classes}


def write(tmp_path, name="data.npz", **a):
    path = str(tmp_path / name)
    np.savez(path, **a)
    return path


def with_(base, **changes):
    out = dict(base)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


GOOD = arrays()
NAN_X = GOOD["x_train"].copy()
NAN_X[5, 0, 2, 3] = np.nan
INF_X = GOOD["x_test"].copy()
INF_X[1, 0, 0, 0] = np.inf

CASES = {
    "missing-array": (with_(GOOD, x_test=None), "missing array x_test"),
    "missing-arrays": (with_(GOOD, y_train=None, y_test=None), "missing arrays y_train, y_test"),
    "rank-2": (with_(GOOD, x_train=GOOD["x_train"].reshape(24, 36), x_test=GOOD["x_test"].reshape(8, 36)),
               "x_train has shape (24, 36): need rank 3 (N, C, L) or rank 4 (N, C, H, W)"),
    "rank-5": (with_(GOOD, x_train=GOOD["x_train"][:, None]), "x_train has shape (24, 1, 1, 6, 6): need rank 3"),
    "length-mismatch": (with_(GOOD, y_train=GOOD["y_train"][:20]), "y_train has 20 labels but x_train has 24 samples"),
    "test-length-mismatch": (with_(GOOD, y_test=np.zeros(9, np.int64)), "y_test has 9 labels but x_test has 8 samples"),
    "label-too-large": (with_(GOOD, y_test=np.array([0, 1, 2, 7, 0, 1, 2, 0]), classes=np.int64(3)),
                        "y_test has label 7 but classes gives 3 classes (labels must be in 0..2)"),
    "label-beyond-names": (with_(GOOD, classes=np.array(["a", "b"])), "y_train has label 2 but classes gives 2 classes"),
    "negative-label": (with_(GOOD, y_train=GOOD["y_train"] - 1), "y_train has label -1: labels must be in 0..K-1"),
    "float-labels": (with_(GOOD, y_train=GOOD["y_train"].astype(np.float32)), "y_train has dtype float32: labels must be integers"),
    "labels-rank-2": (with_(GOOD, y_test=GOOD["y_test"].reshape(8, 1)), "y_test has shape (8, 1): labels must be rank 1"),
    "nan": (with_(GOOD, x_train=NAN_X), "x_train contains NaN (first at index (5, 0, 2, 3))"),
    "inf": (with_(GOOD, x_test=INF_X), "x_test contains infinity (first at index (1, 0, 0, 0))"),
    "int-inputs": (with_(GOOD, x_train=GOOD["x_train"].astype(np.int32)), "x_train has dtype int32: need float32, float64 or uint8"),
    "sample-shapes": (with_(GOOD, x_test=np.zeros((8, 1, 5, 6), np.float32)), "x_train samples have shape (1, 6, 6) but x_test samples (1, 5, 6)"),
    "one-class": (with_(GOOD, y_train=np.zeros(24, np.int64), y_test=np.zeros(8, np.int64)), "1 class: need at least 2"),
    "empty-test": (with_(GOOD, x_test=np.zeros((0, 1, 6, 6), np.float32), y_test=np.zeros(0, np.int64)), "x_test has shape (0, 1, 6, 6): no data"),
    "bad-classes": (with_(GOOD, classes=np.zeros((2, 2))), "classes has dtype float64 and shape (2, 2)"),
    "mixed-dtypes": (with_(GOOD, x_test=np.zeros((8, 1, 6, 6), np.uint8)), "give both as uint8 pixels or both as floats"),
    "object-array": (with_(GOOD, classes=np.array(["a", 1, None], dtype=object)), "array 'classes' cannot be read without pickle"),
}


def check_refused(tmp_path, path, message):
    out = tmp_path / "model.npz"
    p = run(["train", "--dataset", path, "--steps", "1", "--json", "--save", out])
    assert p.returncode != 0, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert message in lines[0] and path in lines[0], lines[0]
    assert p.stdout == ""
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_refuses_bad_npz(tmp_path, case):
    data, message = CASES[case]
    path = write(tmp_path, **data)
    if case == "object-array":
        np.savez(path, allow_pickle=True, **data)
    check_refused(tmp_path, path, message)


def test_cli_refuses_missing_and_non_npz_files(tmp_path):
    check_refused(tmp_path, str(tmp_path / "absent.npz"), "file not found")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    check_refused(tmp_path, str(junk), "not a readable .npz file")
    single = str(tmp_path / "one.npz")
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    check_refused(tmp_path, single, "is a single .npy array")
    os.mkdir(tmp_path / "folder.npz")
    check_refused(tmp_path, str(tmp_path / "folder.npz"), "is a folder")


def test_cli_unknown_name_lists_the_choices(tmp_path):
    p = run(["train", "--dataset", "fashion_mnist", "--steps", "1"])
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert "fashion-mnist" in p.stderr and ".npz" in p.stderr


def test_cli_trains_on_an_npz_and_records_its_hash(tmp_path):
    data = arrays(shape=(1, 6, 6), classes=3)
    path = write(tmp_path, **data, classes=np.array(["cat", "dog", "emu"]))
    p = run(["train", "--dataset", path, "--steps", "3", "--batch-size", "8", "--json", "--quiet", "--width", "4"])
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["dataset"] == path
    assert report["dataset_file_sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert report["dataset_hash"] == ud.load_npz(path)["content_hash"]
    # Same file, same seed: the same report but for the timing.
    again = json.loads(run(["train", "--dataset", path, "--steps", "3", "--batch-size", "8", "--json", "--quiet",
                            "--width", "4"]).stdout)
    report.pop("seconds"); again.pop("seconds")
    assert report == again


def test_one_dimensional_npz(tmp_path):
    data = arrays(shape=(2, 16), dtype=np.float64, classes=2)
    d = ud.load_npz(write(tmp_path, **data))
    assert d["x_train"].shape == (24, 2, 16) and d["x_train"].dtype == np.float32 and d["classes"] == 2
    assert np.array_equal(d["x_train"], data["x_train"].astype(np.float32))
    assert d["class_names"] is None


def test_uint8_inputs_are_standardized_per_channel(tmp_path):
    data = arrays(shape=(3, 4, 4), dtype=np.uint8, classes=4)
    d = ud.load_npz(write(tmp_path, **data, classes=np.int64(5)))
    assert d["classes"] == 5
    x = d["x_train"].astype(np.float64)
    assert np.allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-6) and np.allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-5)
    raw = data["x_test"].astype(np.float64) / 255
    train = data["x_train"].astype(np.float64) / 255
    mean, std = train.mean(axis=(0, 2, 3), keepdims=True), train.std(axis=(0, 2, 3), keepdims=True)
    assert np.allclose(d["x_test"], (raw - mean) / std, atol=1e-6)
    assert d["content_hash"] == nd.content_hash(d)
    assert d["file_sha256"] == hashlib.sha256(open(str(tmp_path / "data.npz"), "rb").read()).hexdigest()


def test_compressed_npz_is_read(tmp_path):
    path = str(tmp_path / "c.npz")
    np.savez_compressed(path, **GOOD)
    assert ud.load_npz(path)["classes"] == 3
