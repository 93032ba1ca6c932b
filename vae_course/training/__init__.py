"""Training: the one optimisation loop of the course. Imports `core`, `models` and `inference`."""
from .loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
