"""Teaching aids: default_device, apply_style, image_grid, show_images, slider_explorer, setup."""
import numpy as np
import pytest
import torch

import vae_course as vc


@pytest.fixture
def agg():
    """matplotlib with the Agg backend for this test only; the previous backend and style come back after."""
    import matplotlib
    import matplotlib.pyplot as plt

    old = matplotlib.get_backend()
    with matplotlib.rc_context():
        matplotlib.use("Agg")
        yield plt
        plt.close("all")
    matplotlib.use(old)


# --- default_device ----------------------------------------------------------------------------

@pytest.mark.parametrize("available, expected", [(True, "cuda"), (False, "cpu")])
def test_default_device_is_cuda_iff_cuda_is_available(monkeypatch, available, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert vc.default_device() == expected


# --- apply_style and setup -------------------------------------------------------------------------

def test_apply_style_changes_rcparams():
    import matplotlib as mpl

    with mpl.rc_context({"axes.grid": False, "axes.spines.top": True, "font.size": 7.0}):
        vc.apply_style()
        assert mpl.rcParams["axes.grid"] is True
        assert mpl.rcParams["axes.spines.top"] is False and mpl.rcParams["axes.spines.right"] is False
        assert mpl.rcParams["font.size"] == 11.0
        assert mpl.rcParams["figure.facecolor"] == "white"
        colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
        assert colors[:2] == ["#1f77b4", "#d62728"] and len(colors) == 7


def test_setup_sets_threads_and_returns_them():
    import matplotlib as mpl

    old = torch.get_num_threads()
    try:
        with mpl.rc_context({"font.size": 7.0}):
            info = vc.setup(seed=5, threads=2, style=False)
            assert info.threads == 2 and torch.get_num_threads() == 2
            assert info.seed == 5 and info.device == vc.default_device()
            assert mpl.rcParams["font.size"] == 7.0  # style=False leaves the style alone
            info = vc.setup(threads=1)
            assert info.threads == 1 and torch.get_num_threads() == 1
            assert mpl.rcParams["font.size"] == 11.0  # style=True applies the course's style
    finally:
        torch.set_num_threads(old)


def test_setup_style_must_be_a_bool():
    with pytest.raises(TypeError, match="style must be True or False, got int 1"):
        vc.setup(style=1)


# --- image_grid ------------------------------------------------------------------------------------

def test_image_grid_places_image_i_in_its_tile():
    n, side, pad, nrow = 7, 4, 1, 3
    images = np.stack([np.full((side, side), (i + 1) / 10) for i in range(n)]).reshape(n, side * side)
    grid = vc.image_grid(torch.tensor(images, dtype=torch.float32), nrow=nrow, side=side, pad=pad)
    rows = 3  # ceil(7 / 3)
    assert grid.shape == (rows * (side + pad) + pad, nrow * (side + pad) + pad)
    covered = np.zeros(grid.shape, dtype=bool)
    for i in range(n):
        r, c = i // nrow, i % nrow  # row-major: image i in row i // nrow, column i % nrow
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        tile = grid[top:top + side, left:left + side]
        np.testing.assert_allclose(tile, (i + 1) / 10, rtol=0, atol=1e-7)
        covered[top:top + side, left:left + side] = True
    np.testing.assert_array_equal(grid[~covered], 0.5)  # padding and the two empty tiles are mid-grey


def test_image_grid_keeps_pixel_order_inside_a_tile_and_accepts_3d_arrays():
    img = np.arange(9, dtype=np.float32).reshape(3, 3) / 8
    grid = vc.image_grid(np.stack([img, 1 - img]), nrow=10, side=3, pad=0)
    assert grid.shape == (3, 6)  # nrow larger than N: one row of N tiles
    np.testing.assert_array_equal(grid[:, :3], img)
    np.testing.assert_array_equal(grid[:, 3:], 1 - img)


def test_image_grid_rejects_bad_input_naming_the_argument():
    with pytest.raises(ValueError, match=r"images must hold at least one image, got an empty array of shape \(0, 28, 28\)"):
        vc.image_grid(torch.zeros(0, 784))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 784\) or \(N, 28, 28\), got \(2, 100\)"):
        vc.image_grid(torch.zeros(2, 100))
    with pytest.raises(ValueError, match=r"images must be 2-D \(N, 784\) or 3-D \(N, 28, 28\), got 1-D"):
        vc.image_grid(torch.zeros(784))
    with pytest.raises(ValueError, match="nrow must be an integer >= 1, got 0"):
        vc.image_grid(torch.zeros(2, 784), nrow=0)


# --- show_images -----------------------------------------------------------------------------------

def test_show_images_draws_the_inverted_grid(agg):
    images = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    ax = vc.show_images(images, nrow=3, title="five digits")
    (im,) = ax.get_images()
    drawn = np.asarray(im.get_array())
    expected = 1.0 - vc.image_grid(images, nrow=3)  # ink dark on a light background
    np.testing.assert_allclose(drawn, expected, rtol=0, atol=1e-6)
    assert im.get_clim() == (0.0, 1.0) and im.get_cmap().name == "gray"
    assert ax.get_title() == "five digits" and not ax.axison
    ax.figure.canvas.draw()  # renders with Agg without error
    _, ax2 = agg.subplots()
    assert vc.show_images(images[:2], ax=ax2) is ax2  # draws into the axes it is given


# --- slider_explorer ---------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:FigureCanvasAgg is non-interactive")
def test_slider_explorer_builds_sliders_and_calls_draw_with_their_values(agg):
    import ipywidgets as w

    calls = []

    def draw(ax, mu, sigma):
        calls.append((mu, sigma))
        ax.plot([0, 1], [mu, sigma])

    box = vc.slider_explorer(draw, {"mu": (-2.0, 3.0, 0.5, 1.0), "sigma": (0.1, 2.0, 0.1, 0.5)})
    assert isinstance(box, w.VBox)
    sliders = {s.description: s for s in box.children[0].children}
    assert set(sliders) == {"mu", "sigma"}
    mu, sigma = sliders["mu"], sliders["sigma"]
    assert (mu.min, mu.max, mu.step, mu.value) == (-2.0, 3.0, 0.5, 1.0)
    assert (sigma.min, sigma.max, sigma.step, sigma.value) == (0.1, 2.0, 0.1, 0.5)
    assert calls == [(1.0, 0.5)]  # drawn once with the initial values
    mu.value = -1.5
    assert calls[-1] == (-1.5, 0.5)  # moving a slider redraws with the new value
    sigma.value = 1.2
    assert calls[-1] == (-1.5, 1.2)


def test_slider_explorer_accepts_a_ready_made_slider(agg):
    import ipywidgets as w

    calls = []
    k = w.IntSlider(min=1, max=5, value=3, description="k")
    vc.slider_explorer(lambda ax, k: calls.append(k), {"k": k})
    assert calls == [3]


def test_slider_explorer_rejects_bad_sliders_naming_them():
    with pytest.raises(ValueError, match="sliders must name at least one keyword of draw"):
        vc.slider_explorer(lambda ax: None, {})
    with pytest.raises(ValueError, match=r"slider 'mu': value 5 is outside \[0, 1\]"):
        vc.slider_explorer(lambda ax, mu: None, {"mu": (0, 1, 0.1, 5)})
    with pytest.raises(TypeError, match=r"slider 'mu' must be \(min, max, step, value\) or an ipywidgets slider"):
        vc.slider_explorer(lambda ax, mu: None, {"mu": (0, 1)})
