"""vae_course: the companion package of the VAE course.

Chapters import its face, `import vae_course as vc`, and call `vc.setup()` first.
Importing the package changes nothing (no threads, seeds, styles or files); `setup()` does.
The face re-exports each module's `__all__`; each module's docstring names the chapter
that teaches it.

Layers, each importing only those below it:

- classroom: `__main__` (CLI), `edition` (student edition)
- teaching aids: `exercises` (checks), `plots`, `widgets`
- training: `training` (`train`, the one optimisation loop)
- models: `linear` (PCA, PPCA, factor analysis), `lvm` (toy latent variable models), `mixtures`
- ground: `distributions` (densities), `data` (bundled MNIST), `runtime` (threads, seeds)
"""
from . import exercises, plots, widgets
from .data import *  # noqa: F401,F403
from .distributions import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .lvm import *  # noqa: F401,F403
from .mixtures import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .runtime import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .widgets import *  # noqa: F401,F403
from . import data as _data, distributions as _distributions, linear as _linear, lvm as _lvm
from . import mixtures as _mixtures, plots as _plots, runtime as _runtime, training as _training
from . import widgets as _widgets

__version__ = "0.1.0"

__all__ = ["exercises", "plots", "widgets", "__version__"] + [
    name
    for module in (_runtime, _data, _distributions, _mixtures, _lvm, _linear, _training, _plots, _widgets)
    for name in module.__all__
]
