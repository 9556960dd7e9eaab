"""Your own data set as one ``.npz`` file: ``normlab train --dataset path/to/data.npz`` (and
``dataset: path/to/data.npz`` in an ablation spec).

The file holds four arrays, plus optionally ``classes``:

- ``x_train``, ``x_test``: inputs with the channel axis at 1 -- rank 3 ``(N, C, L)`` for 1-D
  signals or rank 4 ``(N, C, H, W)`` for images; dtype float32, float64 or uint8; the same
  per-sample shape in both.
- ``y_train``, ``y_test``: rank 1 integer labels ``0..K-1``, one per input.
- ``classes`` (optional): the class names (a rank-1 string array, K = its length) or the
  class count K (an integer scalar). Without it K = 1 + the largest label.

Inputs: uint8 arrays are taken as raw pixels -- divided by 255 and standardized per channel
with the training set's mean and (population) standard deviation, as ``fashion-mnist``;
float arrays are used as given (cast to float32; normalize them yourself). Every check fails
with a one-line :class:`normlab_datasets.DatasetError` naming the file: unreadable or not an
``.npz``, a missing array, an object/pickled array, a wrong rank or dtype, mismatched
lengths or sample shapes, non-finite inputs, labels outside ``0..K-1``, fewer than 2
classes, an empty split. Nothing is cached; the file's SHA-256 is returned for provenance.
"""
import hashlib
import os
import zipfile

import numpy as np

from normlab_datasets import DatasetError, content_hash

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
INPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))


def file_sha256(path):
    """Hex SHA-256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fail(path, message):
    return DatasetError("%s: %s" % (path, message))


def _read(path):
    if not os.path.exists(path):
        raise _fail(path, "file not found")
    if os.path.isdir(path):
        raise _fail(path, "is a folder, not an .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise _fail(path, "is a single .npy array, not an .npz archive with x_train, y_train, x_test, y_test")
        with loaded as f:
            names = set(f.files)
            missing = [k for k in REQUIRED if k not in names]
            if missing:
                raise _fail(path, "missing array%s %s (an .npz data set needs x_train, y_train, x_test, y_test; has %s)"
                            % ("s" if len(missing) > 1 else "", ", ".join(missing), ", ".join(sorted(names)) or "none"))
            arrays = {}
            for key in REQUIRED + (("classes",) if "classes" in names else ()):
                try:
                    arrays[key] = f[key]
                except ValueError as e:  # object arrays need pickle
                    raise _fail(path, "array '%s' cannot be read without pickle (%s); store numbers, not objects"
                                % (key, " ".join(str(e).split())))
            return arrays
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise _fail(path, "not a readable .npz file (%s: %s)" % (type(e).__name__, " ".join(str(e).split())))


def _check_inputs(path, key, x):
    if x.ndim not in (3, 4):
        raise _fail(path, "%s has shape %s: need rank 3 (N, C, L) or rank 4 (N, C, H, W), channel axis 1"
                    % (key, tuple(x.shape)))
    if x.dtype not in INPUT_DTYPES:
        raise _fail(path, "%s has dtype %s: need float32, float64 or uint8" % (key, x.dtype))
    if x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise _fail(path, "%s has shape %s: no data" % (key, tuple(x.shape)))
    if x.dtype != np.uint8:
        finite = np.isfinite(x)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            value = x[tuple(bad)]
            raise _fail(path, "%s contains %s (first at index %s)"
                        % (key, "NaN" if np.isnan(value) else "infinity", tuple(int(i) for i in bad)))


def _check_labels(path, key, y, n):
    if y.ndim != 1:
        raise _fail(path, "%s has shape %s: labels must be rank 1" % (key, tuple(y.shape)))
    if y.dtype.kind not in "iu":
        raise _fail(path, "%s has dtype %s: labels must be integers 0..K-1" % (key, y.dtype))
    if len(y) != n:
        raise _fail(path, "%s has %d labels but x_%s has %d samples" % (key, len(y), key[2:], n))
    if len(y) and y.min() < 0:
        raise _fail(path, "%s has label %d: labels must be in 0..K-1" % (key, int(y.min())))


def _class_count(path, arrays):
    """(K, names or None)."""
    top = max(int(arrays["y_train"].max()), int(arrays["y_test"].max()))
    if "classes" not in arrays:
        return top + 1, None
    c = arrays["classes"]
    if c.ndim == 0 and c.dtype.kind in "iu":
        k, names = int(c), None
    elif c.ndim == 1 and c.dtype.kind in "US":
        names = [str(v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for v in c.tolist()]
        k = len(names)
    else:
        raise _fail(path, "classes has dtype %s and shape %s: give the class names (rank-1 strings) or the count "
                          "(an integer scalar)" % (c.dtype, tuple(c.shape)))
    if top >= k:
        split = "y_train" if int(arrays["y_train"].max()) == top else "y_test"
        raise _fail(path, "%s has label %d but classes gives %d classes (labels must be in 0..%d)" % (split, top, k, k - 1))
    return k, names


def _standardize_uint8(train, test):
    """Raw pixels -> x/255 standardized per channel with the training mean/std (float64 math)."""
    axes = (0,) + tuple(range(2, train.ndim))
    t = train.astype(np.float64) / 255.0
    mean = t.mean(axis=axes, keepdims=True)
    std = t.std(axis=axes, keepdims=True)
    std[std == 0] = 1.0
    def apply(x):
        return np.ascontiguousarray(((x.astype(np.float64) / 255.0 - mean) / std).astype(np.float32))
    return apply(train), apply(test), mean.ravel().tolist(), std.ravel().tolist()


def load_npz(path):
    """The validated data set in ``path``: a dict with ``x_train``, ``y_train``, ``x_test``,
    ``y_test`` (float32 / int64, C order), ``classes`` (K), ``class_names`` (list or None),
    ``file_sha256``, ``content_hash`` (``normlab-dataset-v1``) and ``preprocessing``."""
    path = os.fspath(path)
    arrays = _read(path)
    xt, xv = arrays["x_train"], arrays["x_test"]
    _check_inputs(path, "x_train", xt)
    _check_inputs(path, "x_test", xv)
    if xt.shape[1:] != xv.shape[1:]:
        raise _fail(path, "x_train samples have shape %s but x_test samples %s" % (tuple(xt.shape[1:]), tuple(xv.shape[1:])))
    if (xt.dtype == np.uint8) != (xv.dtype == np.uint8):
        raise _fail(path, "x_train has dtype %s but x_test %s: give both as uint8 pixels or both as floats" % (xt.dtype, xv.dtype))
    _check_labels(path, "y_train", arrays["y_train"], xt.shape[0])
    _check_labels(path, "y_test", arrays["y_test"], xv.shape[0])
    k, names = _class_count(path, arrays)
    if k < 2:
        raise _fail(path, "%d class%s: need at least 2" % (k, "" if k == 1 else "es"))
    if xt.dtype == np.uint8:
        x_train, x_test, mean, std = _standardize_uint8(xt, xv)
        preprocessing = "uint8: x/255, standardized per channel with the training mean %s and std %s" % (
            [round(m, 6) for m in mean], [round(s, 6) for s in std])
    else:
        x_train = np.ascontiguousarray(xt.astype(np.float32))
        x_test = np.ascontiguousarray(xv.astype(np.float32))
        if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
            raise _fail(path, "inputs overflow float32 (values beyond 3.4e38)")
        preprocessing = "%s: used as given (cast to float32)" % xt.dtype
    out = {
        "x_train": x_train,
        "y_train": np.ascontiguousarray(arrays["y_train"].astype(np.int64)),
        "x_test": x_test,
        "y_test": np.ascontiguousarray(arrays["y_test"].astype(np.int64)),
        "classes": k,
        "class_names": names,
        "preprocessing": preprocessing,
    }
    out["file_sha256"] = file_sha256(path)
    out["content_hash"] = content_hash(out)
    return out


def load_npz_for_swift(path):
    """:func:`load_npz` with labels as Python lists (fast to decode in Swift)."""
    out = load_npz(path)
    out["y_train"] = out["y_train"].tolist()
    out["y_test"] = out["y_test"].tolist()
    return out
