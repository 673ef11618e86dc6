"""Gradient meta-classification (Oberdiek et al., 2018): per-sample gradient metrics and the meta
classifiers that read wrong or out-of-distribution predictions off them."""

from ualib.meta.gradient_metrics import *  # noqa: F401,F403
from ualib.meta.gradient_metrics import __all__ as _gm_all
from ualib.meta.meta_classification import *  # noqa: F401,F403
from ualib.meta.meta_classification import __all__ as _mc_all

__all__ = [*_gm_all, *_mc_all]
