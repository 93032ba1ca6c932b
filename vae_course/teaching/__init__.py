"""Teaching aids: `setup()`, exercise checks, figures, widgets and the glue that feeds numbers to the prose.

Imports the layers below it; nothing below imports it.
"""
from . import exercises
from .glue import glue
from .plots import apply_style, image_grid, show_images
from .setup import setup
from .widgets import slider_explorer

__all__ = ["exercises", "glue", "apply_style", "image_grid", "show_images", "setup", "slider_explorer"]
