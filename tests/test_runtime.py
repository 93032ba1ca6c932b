"""setup(): one thread, seeded generators, style; importing the package changes nothing."""
import subprocess
import sys

import pytest
import torch

import vae_course as vc


def test_import_has_no_side_effects():
    code = (
        "import torch, matplotlib as mpl; torch.set_num_threads(2); before = dict(mpl.rcParams);"
        "s = torch.random.get_rng_state(); import vae_course;"
        "assert torch.get_num_threads() == 2, 'threads changed';"
        "assert torch.equal(s, torch.random.get_rng_state()), 'torch seed changed';"
        "assert dict(mpl.rcParams) == before, 'matplotlib style changed'; print('clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_setup_sets_threads_seeds_and_reports():
    old = torch.get_num_threads()
    try:
        info = vc.setup(seed=3, threads=1)
        assert torch.get_num_threads() == 1
        a = torch.randn(3)
        vc.setup(seed=3)
        assert torch.equal(a, torch.randn(3))
        assert "seed=3" in str(info) and "threads=1" in str(info)
    finally:
        torch.set_num_threads(old)


def test_setup_threads_overridable():
    old = torch.get_num_threads()
    try:
        vc.setup(threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"threads": 0}, ValueError, "threads must be an integer >= 1"),
    ({"threads": True}, TypeError, "threads must be an integer"),
])
def test_setup_rejects_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        vc.setup(**kwargs)


def test_make_generator_is_reproducible_and_independent_of_global_state():
    g1, g2 = vc.make_generator(7), vc.make_generator(7)
    torch.manual_seed(123)
    a = torch.randn(4, generator=g1)
    torch.randn(10)  # moving the global generator must not matter
    assert torch.equal(a, torch.randn(4, generator=g2))


def test_glue_stores_plain_numbers_and_rejects_arrays(monkeypatch):
    recorded = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: recorded.update({name: value}))
    assert vc.glue("gap", torch.tensor(0.25)) is None  # nothing to echo at the end of a cell
    assert recorded == {"gap": 0.25} and type(recorded["gap"]) is float
    with pytest.raises(ValueError, match=r"0-d tensor.*\(3,\)"):
        vc.glue("bad", torch.ones(3))
    with pytest.raises(ValueError, match="name must be"):
        vc.glue("not a name", 1.0)


def test_glue_without_myst_nb_is_a_no_op(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # as on a plain Colab runtime
    assert vc.glue("gap", 1.5) is None


def test_tqdm_is_a_declared_and_installed_dependency():
    # Progress bars will use tqdm: it comes with the package (pyproject), so `pip install -r requirements.txt`
    # (which installs the package) brings it.
    import re
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*)\]$", pyproject, re.M)[1]
    assert re.search(r'"tqdm[><=]', deps), deps
    import tqdm

    assert callable(tqdm.tqdm)
