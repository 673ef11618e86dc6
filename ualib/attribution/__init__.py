"""Attribution methods: explain any scalar target ``x [B, ...] -> [B]`` in terms of the input.

Every method takes a *target* (a class logit, a probability, an uncertainty: see
:mod:`ualib.targets`) and returns **raw** attributions shaped like the input ``x`` (``[B, C, H, W]``
images or ``[B, F]`` tables): signed, not normalised, not upsampled (Grad-CAM, whose map lives on a
layer's grid, is the exception: ``[B, 1, H, W]``). Absolute values, scaling and colormaps belong to
the plotting layer. No method has side effects: the model's train/eval mode, ``requires_grad``,
hooks and parameter gradients, the global RNG and ``x`` are left as they were.

========================  =====================================================  ===========================
name in :data:`METHODS`   function                                               reference
========================  =====================================================  ===========================
``gradient``              :func:`gradient`                                       Simonyan et al. 2014
``input_x_gradient``      :func:`input_x_gradient`                               Shrikumar et al. 2016
``smoothgrad``            :func:`smoothgrad`                                     Smilkov et al. 2017
``integrated_gradients``  :func:`integrated_gradients`                           Sundararajan et al. 2017
``guided_backprop``       :func:`guided_backprop` (needs ``model=``)             Springenberg et al. 2015
``grad_cam``              :func:`grad_cam` (needs ``layer=``)                    Selvaraju et al. 2017
``random``                :func:`random_attribution` (takes ``x`` only)          control
========================  =====================================================  ===========================

:func:`lime` (Ribeiro et al. 2016, through the ``lime`` package; images, grid superpixels) is not in
:data:`METHODS` either: a black box that needs no gradient, it also explains ``[n, T]`` targets
(T frozen posterior samples) in one pass.

:class:`FullGrad` (Srinivas & Fleuret 2019) is not in :data:`METHODS`: completeness holds only for a
linear function of a model's outputs, so it takes the model and a class index or logit weights
instead of an arbitrary target (:func:`fullgrad` for the signed complete map,
:func:`fullgrad_saliency` for the official display map).

Every method, with what it explains, whether it is complete, the uncertainty kinds it supports and
its reference, has one entry in :data:`REGISTRY` (:mod:`ualib.attribution.registry`); :data:`METHODS`
is built from it.

Methods that multiply work (integration steps, noise samples) take ``batch_size``, the number of
points pushed through the target at once; the result does not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable

from ualib.attribution.blur import gaussian_blur
from ualib.attribution.fullgrad import FullGrad, FullGradDecomposition, fullgrad, fullgrad_saliency
from ualib.attribution.grad_cam import grad_cam
from ualib.attribution.gradient import gradient
from ualib.attribution.guided_backprop import guided_backprop, guided_relu
from ualib.attribution.input_x_gradient import input_x_gradient
from ualib.attribution.integrated_gradients import BASELINES, integrated_gradients
from ualib.attribution.lime import lime
from ualib.attribution.random import random_attribution
from ualib.attribution.smoothgrad import smoothgrad

__all__ = [
    "gradient",
    "input_x_gradient",
    "smoothgrad",
    "integrated_gradients",
    "guided_backprop",
    "grad_cam",
    "lime",
    "random_attribution",
    "FullGrad",
    "FullGradDecomposition",
    "fullgrad",
    "fullgrad_saliency",
    "gaussian_blur",
    "guided_relu",
    "BASELINES",
    "METHODS",
    "REGISTRY",
    "MethodSpec",
]

from ualib.attribution.registry import REGISTRY, MethodSpec  # noqa: E402  (after the methods it lists)

#: the methods that take ``(target, x)`` (the random control takes ``x``), by name; built from
#: :data:`ualib.attribution.registry.REGISTRY`
METHODS: dict[str, Callable] = {
    n: s.fn for n, s in REGISTRY.items() if s.explains in ("target", "nothing") and n != "lime"
}
