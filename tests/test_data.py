"""The bundled MNIST subset and the optional IDX reader (all offline)."""
import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

import vae_course as vc
from vae_course.core import data as data_mod


def test_train_split_shape_range_and_balance():
    x, y = vc.load_mnist("train")
    assert x.shape == (4000, 784) and x.dtype == torch.float32
    assert y.shape == (4000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 400))


def test_test_split_is_balanced_and_disjoint_from_train():
    x_tr, _ = vc.load_mnist("train")
    x_te, y_te = vc.load_mnist("test")
    assert x_te.shape == (1000, 784)
    assert torch.equal(torch.bincount(y_te, minlength=10), torch.full((10,), 100))
    train_rows = {row.numpy().tobytes() for row in (x_tr * 255).round().to(torch.uint8)}
    overlap = sum(row.numpy().tobytes() in train_rows for row in (x_te * 255).round().to(torch.uint8))
    assert overlap == 0


def test_splits_are_identical_on_every_call_and_cover_the_file():
    a, ya = vc.load_mnist("train")
    b, yb = vc.load_mnist("train")
    assert torch.equal(a, b) and torch.equal(ya, yb)
    images, labels = data_mod._bundled_arrays()
    x_te, _ = vc.load_mnist("test")
    together = torch.cat([a, x_te]).mul(255).round().to(torch.uint8).numpy()
    assert sorted(map(bytes, together)) == sorted(map(bytes, images))
    # within each digit, the first 400 images of the file are the training split
    first_zeros = images[labels == 0][:400]
    assert np.array_equal((a[ya == 0] * 255).round().to(torch.uint8).numpy(), first_zeros)


def test_images_look_like_digits():
    x, y = vc.load_mnist("train")
    ink = (x > 0.5).float().mean(1)
    assert 0.05 < float(ink.mean()) < 0.25  # a digit covers roughly a tenth of the 28x28 frame
    ones, zeros = x[y == 1].mean(0), x[y == 0].mean(0)
    centre = 14 * 28 + 14
    assert ones[centre] > 0.5 > zeros[centre]  # a '1' crosses the centre, a '0' leaves it empty


@pytest.mark.parametrize("split", ["validation", "TRAIN", None, 0])
def test_bad_split_names_the_valid_ones(split):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        vc.load_mnist(split)


def test_bad_source_and_misplaced_options():
    with pytest.raises(ValueError, match="source must be"):
        vc.load_mnist(source="internet")
    with pytest.raises(ValueError, match="only apply to source='idx'"):
        vc.load_mnist(download=True)


def test_corrupt_or_missing_bundle_gives_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "mnist_5k.npz"
    shutil.copy(data_mod._BUNDLED, bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(data_mod, "_BUNDLED", bad)
    data_mod._bundled_arrays.cache_clear()
    try:
        with pytest.raises(vc.DataFileError, match="SHA-256.*git checkout"):
            vc.load_mnist()
        monkeypatch.setattr(data_mod, "_BUNDLED", tmp_path / "absent.npz")
        data_mod._bundled_arrays.cache_clear()
        with pytest.raises(vc.DataFileError, match="missing.*[Rr]einstall"):
            vc.load_mnist()
    finally:
        data_mod._bundled_arrays.cache_clear()


def _write_idx(path, array, compress=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.fixture
def idx_root(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 6), ("test", 3)):
        (img_name, _), (lab_name, _) = data_mod.IDX_FILES[split]
        imgs = rng.integers(0, 256, size=(n, 28, 28))
        labs = rng.integers(0, 10, size=n)
        _write_idx(tmp_path / img_name, imgs)
        _write_idx(tmp_path / lab_name, labs)
        files[split] = (imgs, labs)
    # the real files' MD5s are fixed; point the table at these small stand-ins' sums
    table = {s: tuple((name, hashlib.md5((tmp_path / name).read_bytes()).hexdigest())
                      for name, _ in data_mod.IDX_FILES[s]) for s in data_mod.IDX_FILES}
    monkeypatch.setattr(data_mod, "IDX_FILES", table)
    return tmp_path, files


def test_idx_source_reads_standard_files(idx_root):
    root, files = idx_root
    x, y = vc.load_mnist("test", source="idx", root=root)
    imgs, labs = files["test"]
    assert x.shape == (3, 784) and x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(imgs.reshape(3, -1) / 255.0).float())
    assert torch.equal(y, torch.from_numpy(labs).long())


def test_idx_checksum_mismatch_is_reported(idx_root, monkeypatch):
    root, _ = idx_root
    name = data_mod.IDX_FILES["train"][0][0]
    _write_idx(root / name, np.zeros((6, 28, 28)))  # same shape, different bytes
    with pytest.raises(vc.DataFileError, match="MD5"):
        vc.load_mnist("train", source="idx", root=root)


def test_idx_missing_file_says_what_to_do_and_never_downloads(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("load_mnist tried to download without download=True")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)
    with pytest.raises(vc.DataFileError, match="download=True"):
        vc.load_mnist("train", source="idx", root=tmp_path)


def test_idx_download_is_cached_and_verified(idx_root, tmp_path_factory, monkeypatch):
    src, _ = idx_root
    dest = tmp_path_factory.mktemp("cache")
    calls = []

    class Response:
        def __init__(self, data):
            self.data = data

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(url, timeout):
        calls.append(url)
        return Response((src / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", fake_urlopen)
    x1, _ = vc.load_mnist("train", source="idx", root=dest, download=True)
    x2, _ = vc.load_mnist("train", source="idx", root=dest, download=True)
    assert len(calls) == 2  # images and labels, fetched once; the second call reads the cache
    assert torch.equal(x1, x2)


def test_read_idx_rejects_other_files(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(vc.DataFileError, match="magic"):
        vc.read_idx(p)
    q = tmp_path / "short.idx"
    _write_idx(q, np.zeros((2, 3)), compress=False)
    q.write_bytes(q.read_bytes()[:-1])
    with pytest.raises(vc.DataFileError, match="shape"):
        vc.read_idx(q)


def test_binarize_threshold_and_stochastic():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.51, 1.0]])
    assert torch.equal(vc.binarize(x), torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]))
    big = torch.full((20000,), 0.3)
    draws = vc.binarize(big, generator=vc.make_generator(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(draws.mean()) - 0.3) < 0.015
    again = vc.binarize(big, generator=vc.make_generator(0))
    assert torch.equal(draws, again)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vc.binarize(torch.tensor([1.5]))
    with pytest.raises(TypeError, match="floating-point"):
        vc.binarize(torch.tensor([1]))


def test_binarize_threshold_is_used_and_matches_a_plain_comparison():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(50, 784, generator=g, dtype=torch.float64)
    for threshold in (0.0, 0.1, 0.5, 0.9):
        out = vc.binarize(x, threshold=threshold)
        expected = torch.tensor([[1.0 if v > threshold else 0.0 for v in row] for row in x.tolist()], dtype=torch.float64)
        assert out.dtype == torch.float64 and torch.equal(out, expected)
    assert torch.equal(vc.binarize(x), vc.binarize(x, threshold=0.5))  # the default is 0.5


def test_binarize_modes_are_exclusive_and_bad_values_are_named():
    x = torch.full((10,), 0.3)
    g = vc.make_generator(0)
    with pytest.raises(ValueError, match=r"threshold must be None when a generator is given: threshold=0\.5"):
        vc.binarize(x, threshold=0.5, generator=g)  # even the default value: the two modes are different
    with pytest.raises(ValueError, match=r"threshold must be None when a generator is given: threshold=0\.2"):
        vc.binarize(x, 0.2, g)
    with pytest.raises(ValueError, match="x must be finite, but it contains NaN"):
        vc.binarize(torch.tensor([0.2, float("nan")]))
    with pytest.raises(ValueError, match="x must be finite, but it contains NaN"):
        vc.binarize(torch.tensor([0.2, float("nan")]), generator=g)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1"):
        vc.binarize(x, threshold=1.0)
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        vc.binarize(x, threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold must be a real number, got str"):
        vc.binarize(x, threshold="0.5")
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int 0"):
        vc.binarize(x, generator=0)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor of intensities in \[0, 1\], got list"):
        vc.binarize([0.1, 0.2])
