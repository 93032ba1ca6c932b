"""Inference: estimators of log p(x) and of posteriors that work through the model interface.

Imports `core` and `models`. Part II (chapters 4-7) adds variational inference, the ELBO,
amortized encoders and gradient estimators here.
"""

from .importance import importance_log_prob, kl_to_standard_normal, kl_to_standard_normal_parts

__all__ = ["importance_log_prob", "kl_to_standard_normal", "kl_to_standard_normal_parts"]
