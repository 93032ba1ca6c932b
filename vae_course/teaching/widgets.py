"""Interactive explorers: sliders that redraw a matplotlib figure.

Taught in: chapter 1 (the mixture explorer). A slider only moves with a live kernel; on the
website the page shows the saved first frame, so every chapter also draws a static figure.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["slider_explorer"]


def slider_explorer(draw: Callable, sliders: dict, figsize=(6.0, 3.2)):
    """A box of sliders above a figure that `draw(ax, **values)` redraws whenever a slider moves.

    `sliders` maps each keyword of `draw` to `(min, max, step, value)` or to a ready-made
    ipywidgets slider. Returns the widget; display it as the last expression of a cell.
    """
    import ipywidgets as w  # imported here so that importing vae_course stays light
    import matplotlib.pyplot as plt

    if not sliders:
        raise ValueError("sliders must name at least one keyword of draw")
    controls = {}
    for name, spec in sliders.items():
        if isinstance(spec, w.Widget):
            controls[name] = spec
        elif isinstance(spec, (tuple, list)) and len(spec) == 4:
            lo, hi, step, value = spec
            if not lo <= value <= hi:
                raise ValueError(f"slider {name!r}: value {value} is outside [{lo}, {hi}]")
            controls[name] = w.FloatSlider(min=lo, max=hi, step=step, value=value, description=name,
                                           continuous_update=False)
        else:
            raise TypeError(f"slider {name!r} must be (min, max, step, value) or an ipywidgets slider")

    out = w.Output()

    def redraw(**values):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=figsize)
            draw(ax, **values)
            plt.show()
            plt.close(fig)

    w.interactive_output(redraw, controls)
    return w.VBox([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")), out])
