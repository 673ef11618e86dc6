"""Example-based justification (Ardis & Flenner, 2024): frozen-network features, a sparse Gaussian
process whose inducing points are real training examples, and a kNN baseline."""

from ualib.justification.features import *  # noqa: F401,F403
from ualib.justification.features import __all__ as _f_all
from ualib.justification.knn import *  # noqa: F401,F403
from ualib.justification.knn import __all__ as _k_all
from ualib.justification.sparse_gp import *  # noqa: F401,F403
from ualib.justification.sparse_gp import __all__ as _g_all

__all__ = [*_f_all, *_k_all, *_g_all]
