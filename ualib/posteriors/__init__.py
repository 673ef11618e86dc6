"""Approximate posteriors sharing one interface: ``posterior.logits(x) -> [S, B, K]``.

========================  ======================================================
:class:`MCDropout`        dropout masks as weight samples (Gal & Ghahramani 2016)
:class:`DropConnect`      dropped weights (Mobiny et al. 2021)
:class:`DeepEnsemble`     M networks, vectorised with ``torch.func`` (Lakshminarayanan et al. 2017)
:class:`BayesByBackprop`  mean-field Gaussian weights, Flipout training (Blundell et al. 2015; Wen et al. 2018)
:class:`Evidential`       one deterministic network giving a Dirichlet (Sensoy et al. 2018)
========================  ======================================================
"""

from __future__ import annotations

from ualib.posteriors._base import Posterior, preserve_mode
from ualib.posteriors.bayes_by_backprop import BayesByBackprop
from ualib.posteriors.dropconnect import DropConnect
from ualib.posteriors.ensemble import DeepEnsemble
from ualib.posteriors.evidential import Evidential
from ualib.posteriors.mc_dropout import MCDropout, dropout_modules

__all__ = [
    "Posterior",
    "MCDropout",
    "DropConnect",
    "DeepEnsemble",
    "BayesByBackprop",
    "Evidential",
    "preserve_mode",
    "dropout_modules",
]
