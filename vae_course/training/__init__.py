"""Training: the one optimisation loop of the course. Imports `core`, `models` and `inference`.

- `loop`: `train` (a loss function and parameters, chapters 1-7) and the shared step loop `optimise`;
- `fit`: `fit` (a model with a loss, epochs of tensor-indexed batches; chapter 8) and its `History`;
- `vi`: `fit_gaussian_q`, variational inference per data point (chapters 4 and 6).
"""
from .fit import History, fit
from .loop import TrainConfig, train
from .vi import fit_gaussian_q

__all__ = ["TrainConfig", "train", "fit_gaussian_q", "History", "fit"]
