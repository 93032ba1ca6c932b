"""Training: the one optimisation loop of the course. Imports `core`, `models` and `inference`."""
from .loop import TrainConfig, train
from .vi import fit_gaussian_q

__all__ = ["TrainConfig", "train", "fit_gaussian_q"]
