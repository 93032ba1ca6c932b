"""Data that comes with the install: a 5,000-image MNIST subset, and optionally full MNIST.

Taught in: chapter 1 (the digits, binarization). `load_mnist()` never touches the network;
full MNIST is read from IDX files you already have, or downloaded once when you ask for it
(`download=True`) and cached. Checksums: the bundled file's SHA-256 is checked the first time
it is read in a process (the arrays are then kept in memory, so later loads in the same process
do not read or check the file again); IDX files' MD5 sums are checked on every `load_mnist` call
with `verify=True`.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges (CC BY-SA 3.0); see
`vae_course/core/datafiles/README.md` for the subset's provenance.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .validation import check_generator, check_real, check_tensor

__all__ = ["load_mnist", "binarize", "read_idx", "DataFileError"]

SPLITS = ("train", "test")
_BUNDLED = Path(__file__).with_name("datafiles") / "mnist_5k.npz"
_BUNDLED_SHA256 = "970702d994c498f4ed47376383483ffa572089f72cd489dad1f40f362dbc14bf"
_TRAIN_PER_DIGIT = 400  # of the 500 images of each digit; the other 100 are the test split

# The standard IDX files and their MD5 sums (the same files torchvision and others verify).
IDX_FILES = {
    "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
}
IDX_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")


class DataFileError(RuntimeError):
    """A data file is missing, corrupt, or not what the course expects."""


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _bundled_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The bundled arrays, read and SHA-256-checked once per process (cached afterwards)."""
    if not _BUNDLED.is_file():
        raise DataFileError(
            f"the bundled MNIST subset is missing ({_BUNDLED}). Reinstall the package "
            "(pip install -e . from the course repository) to restore it."
        )
    if _digest(_BUNDLED, "sha256") != _BUNDLED_SHA256:
        raise DataFileError(
            f"the bundled MNIST subset {_BUNDLED} fails its SHA-256 check (corrupt or edited). "
            "Restore it with `git checkout -- vae_course/core/datafiles/mnist_5k.npz` or reinstall the package."
        )
    with np.load(_BUNDLED) as f:
        images, labels = f["images"], f["labels"]
    if images.shape != (5000, 784) or labels.shape != (5000,):
        raise DataFileError(f"unexpected array shapes in {_BUNDLED}: {images.shape}, {labels.shape}")
    return images, labels


def _bundled_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _bundled_arrays()
    rank = np.empty(len(labels), dtype=np.int64)  # position of each image among those of its digit
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        rank[idx] = np.arange(len(idx))
    keep = rank < _TRAIN_PER_DIGIT if split == "train" else rank >= _TRAIN_PER_DIGIT
    return images[keep], labels[keep]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) of unsigned bytes into a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataFileError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise DataFileError(f"{path} has a truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataFileError(f"{path}: header says shape {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def _idx_split(split: str, root: Path, download: bool, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, md5 in IDX_FILES[split]:
        path = root / name
        if not path.is_file():
            if not download:
                raise DataFileError(
                    f"{path} not found. Put the standard MNIST IDX files in {root}, or call "
                    "load_mnist(source='idx', download=True) once with internet access."
                )
            _download(name, path)
        if verify and _digest(path, "md5") != md5:
            raise DataFileError(
                f"{path} fails its MD5 check (expected {md5}); delete it and download it again."
            )
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise DataFileError(f"IDX images {images.shape} and labels {labels.shape} do not match")
    return images.reshape(len(images), -1), labels


def _download(name: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in IDX_MIRRORS:
        tmp = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=60) as r, open(tmp, "wb") as f:
                f.write(r.read())
            tmp.replace(path)
            return
        except OSError as e:  # URLError is an OSError
            errors.append(f"{mirror}: {e}")
            tmp.unlink(missing_ok=True)
    raise DataFileError(f"could not download {name}: " + "; ".join(errors))


def default_cache() -> Path:
    """Where full MNIST is cached: $VAE_COURSE_DATA, else ~/.cache/vae_course/mnist."""
    env = os.environ.get("VAE_COURSE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "vae_course" / "mnist"


def load_mnist(split: str = "train", source: str = "bundled", root=None, download: bool = False,
               verify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits as `(x, y)`: `x` float32 (N, 784) intensities in [0, 1], `y` int64 labels.

    Parameters
    ----------
    split:
        "train" or "test". With the default source these are 4,000 (400 per digit) and
        1,000 (100 per digit) images of the bundled subset: fixed, disjoint, identical on every call.
    source:
        "bundled" (default; ships with the package, no network) or "idx" (full MNIST,
        60,000 train and 10,000 test images, from the standard IDX files).
    root:
        Folder of the IDX files (source="idx" only); default `default_cache()`.
    download:
        Fetch missing IDX files once (source="idx" only). Nothing is ever downloaded otherwise.
    verify:
        Check the IDX files' MD5 sums on this call (source="idx" only). The bundled file's SHA-256
        is always checked, once per process: on its first load (the arrays are cached in memory).
    """
    split = _check_split(split)
    if source == "bundled":
        if root is not None or download:
            raise ValueError("root and download only apply to source='idx'")
        images, labels = _bundled_split(split)
    elif source == "idx":
        images, labels = _idx_split(split, Path(root) if root is not None else default_cache(), download, verify)
    else:
        raise ValueError(f"source must be 'bundled' or 'idx', got {source!r}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def binarize(x: torch.Tensor, threshold: float | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary pixels (0.0 or 1.0, in the dtype and on the device of `x`) from intensities in [0, 1].

    Two modes, chosen by which argument is given (never both):

    - fixed threshold (the default, `threshold=0.5`): pixel = 1 where intensity > threshold;
    - stochastic (`generator=` a `torch.Generator`): each pixel is drawn as Bernoulli(intensity),
      as in much of the literature; the threshold plays no part, so passing one too is an error.

    `x` must be a floating-point tensor of finite values in [0, 1] (NaN is rejected).
    """
    x = check_tensor("x", x, what="of intensities in [0, 1]")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"x must hold intensities in [0, 1], got values in "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    check_generator(generator)
    if generator is not None:
        if threshold is not None:
            raise ValueError(f"threshold must be None when a generator is given: threshold={threshold!r} asks for "
                             "a fixed threshold and generator= for stochastic binarization (Bernoulli(intensity)); "
                             "pass one of them")
        return torch.bernoulli(x, generator=generator)
    threshold = 0.5 if threshold is None else check_real("threshold", threshold, low=0.0, high=1.0, high_open=True)
    return (x > threshold).to(x.dtype)
