"""Metrics: predictive quality (calibration, OOD detection, selective prediction) in
:mod:`ualib.metrics.predictive`, re-exported here; per-input score tables in
:mod:`ualib.metrics.evaluation`; attribution evaluation by perturbation
(:mod:`ualib.metrics.perturbation`) and by localization (:mod:`ualib.metrics.localization`)."""

from ualib.metrics.predictive import *  # noqa: F401,F403
from ualib.metrics.predictive import __all__ as _p_all

__all__ = list(_p_all)
