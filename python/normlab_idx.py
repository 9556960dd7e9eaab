"""Strict reader of the IDX format (LeCun's MNIST files), gzip-compressed or plain.

An IDX file is a 4-byte magic number -- two zero bytes, a type code (0x08 = unsigned byte,
the only type MNIST-style data sets use) and the number of dimensions -- then one big-endian
uint32 per dimension, then the values in C order. :func:`read_idx` checks every part and
raises :class:`IdxError` (a one-line message naming the file) for a missing file, a broken
gzip stream, a bad magic number, unexpected dimensions, or a payload that is shorter or
longer than the dimensions say.
"""
import gzip
import os
import struct
import zlib

import numpy as np

UNSIGNED_BYTE = 0x08


class IdxError(Exception):
    """An IDX file is missing or malformed; the message is one line naming the file."""


def _read_bytes(path):
    if not os.path.exists(path):
        raise IdxError("%s: file not found" % path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError("%s: cannot be read or decompressed (%s: %s)" % (path, type(e).__name__, " ".join(str(e).split())))


def parse_idx(data, name="<bytes>", ndim=None, dims=None):
    """The array in IDX bytes ``data`` (uint8). ``ndim``: required number of dimensions;
    ``dims``: required sizes, ``None`` entries meaning any."""
    if len(data) < 4:
        raise IdxError("%s: %d bytes, too short for an IDX header" % (name, len(data)))
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != UNSIGNED_BYTE:
        raise IdxError("%s: bad magic number 0x%08x (expected 0x%08x: unsigned bytes, %s dimensions)"
                       % (name, struct.unpack(">I", data[:4])[0], (UNSIGNED_BYTE << 8) | (ndim or rank),
                          ndim if ndim is not None else "N"))
    if ndim is not None and rank != ndim:
        raise IdxError("%s: %d dimensions in the header, expected %d" % (name, rank, ndim))
    if rank == 0 or len(data) < 4 + 4 * rank:
        raise IdxError("%s: truncated header (%d dimensions, %d bytes)" % (name, rank, len(data)))
    shape = struct.unpack(">%dI" % rank, data[4:4 + 4 * rank])
    if dims is not None:
        for axis, (got, want) in enumerate(zip(shape, dims)):
            if want is not None and got != want:
                raise IdxError("%s: dimension %d is %d, expected %d (header shape %s)"
                               % (name, axis, got, want, "x".join(map(str, shape))))
    count = 1
    for d in shape:
        count *= d
    payload = len(data) - 4 - 4 * rank
    if payload != count:
        raise IdxError("%s: %d data bytes, the header shape %s needs %d"
                       % (name, payload, "x".join(map(str, shape)), count))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def read_idx(path, ndim=None, dims=None):
    """The uint8 array in the IDX file ``path`` (gzip or plain), validated (see module docs)."""
    return parse_idx(_read_bytes(path), name=path, ndim=ndim, dims=dims)


def write_idx(path, array, compress=True):
    """Writes a uint8 array as an IDX file (gzip when ``compress``): for tests and tools."""
    a = np.ascontiguousarray(np.asarray(array, dtype=np.uint8))
    data = struct.pack(">HBB", 0, UNSIGNED_BYTE, a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape) + a.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(data)
