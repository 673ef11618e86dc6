r"""Sparse Gaussian processes on frozen features: example-based justification and uncertainty.

Ardis & Flenner (2024) replace the memory- and compute-hungry kNN justification of Virani et al.
(2020) by sparse Gaussian processes on the activations of a frozen network [READ, abstract]. Their
full text was not available to us: **everything below is a reconstruction** [INF; book: chapter 7, "Justification" — notebooks/07_justification.ipynb].

One GP per layer, on features :math:`h = \phi_l(x) \in \mathbb R^d` (:mod:`ualib.justification.features`):

* **Inducing points are real training examples.** :func:`select_inducing` runs k-means++ (Lloyd
  iterations from a k-means++ start) *within each class*, with ``P`` centres split over the classes in
  proportion to their size, and snaps every centre to the nearest unused training example of its class.
  The inducing locations stay fixed at those examples during fitting, so every piece of evidence is
  a training image one can show.
* **Kernel** :math:`k(h, h') = s^2 \exp(-\tfrac12 \lVert (h - h') / \ell \rVert^2)` (RBF with one
  lengthscale per feature, ARD), zero prior mean, shared by the ``K`` outputs.
* **SGPR** (default, ``likelihood="gaussian"``): Titsias' (2009) collapsed variational bound for
  regression on one-hot targets :math:`Y \in \{0,1\}^{N \times K}` with noise :math:`\sigma^2`,

  .. math:: \mathcal L = \sum_{k=1}^K \log \mathcal N(Y_{:k} \mid 0, Q_{XX} + \sigma^2 I)
            - \tfrac{K}{2\sigma^2} \operatorname{tr}(K_{XX} - Q_{XX}), \qquad
            Q_{XX} = K_{XZ} K_{ZZ}^{-1} K_{ZX},

  maximised over :math:`(\ell, s^2, \sigma^2)` with L-BFGS (on a random subset of at most
  ``hyper_subset`` rows; the posterior then uses all rows). Prediction, with
  :math:`\Sigma = (K_{ZZ} + \sigma^{-2} K_{ZX} K_{XZ})^{-1}`:

  .. math:: \mu_* = K_{*Z}\beta,\quad \beta = \sigma^{-2}\Sigma K_{ZX} Y \in \mathbb R^{P\times K},
            \qquad v_* = k_{**} - K_{*Z}(K_{ZZ}^{-1} - \Sigma) K_{Z*}.

  This is an exact implementation of the bound and predictive equations (GPyTorch's
  ``InducingPointKernel`` computes the same model), written with Cholesky factors in float64 so that
  the inducing points can be held fixed and the query state is explicit.
* **SVGP** (option, ``likelihood="softmax"``): Hensman et al. (2015), one latent GP per class with a
  softmax likelihood, trained with GPyTorch's ``VariationalELBO`` (whitened Cholesky variational
  distribution, inducing locations fixed). Its latent mean is :math:`\mu_{*k} = K_{*Z}\beta_{:k}` with
  :math:`\beta = K_{ZZ}^{-1} m` (``m`` the variational mean), and its variance
  :math:`v_{*k} = k_{**} - K_{*Z} K_{ZZ}^{-1} (K_{ZZ} - S_k) K_{ZZ}^{-1} K_{Z*}`, averaged over classes.

**Justification.** Because :math:`\mu_{*k} = \sum_{j=1}^P k(h_*, z_j)\,\beta_{jk}`, each inducing
example ``j`` contributes a weight :math:`w_j(h_*) = k(h_*, z_j)\beta_{j\hat k}` to the score of the
predicted class :math:`\hat k`; the weights sum *exactly* to the predictive mean. The largest positive
weights are the supporting examples, the most negative the opposing ones. **Uncertainty** is the
predictive variance :math:`v_*` (large where no inducing example is near).

**Cost.** Answering a query needs ``Z`` (``P x d``), ``beta`` (``P x K``) and two ``P x P`` Cholesky
factors: ``O(Pd + P^2)`` memory and time per query, independent of ``N`` (kNN: ``O(Nd)``).

References
----------
M. Ardis, A. Flenner. Extracting explanations, justification, and uncertainty from black-box deep
neural networks. arXiv 2403.08652, 2024 (``ardis2024extracting``). M. Titsias. Variational learning
of inducing variables in sparse Gaussian processes. AISTATS 2009 (``titsias2009variational``).
J. Hensman, A. Matthews, Z. Ghahramani. Scalable variational Gaussian process classification.
AISTATS 2015 (``hensman2015scalable``). J. Gardner et al. GPyTorch. NeurIPS 2018
(``gardner2018gpytorch``). N. Virani, N. Iyer, Z. Yang. Justification-based reliability in machine
learning. AAAI 2020 (``virani2020justification``). D. Arthur, S. Vassilvitskii. k-means++. SODA 2007.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib._progress import progress_bar
from ualib.seeding import derive_seed, generator

__all__ = ["select_inducing", "rbf_kernel", "titsias_bound", "GPPrediction", "Justification", "SparseGP", "LIKELIHOODS"]

LIKELIHOODS = ("gaussian", "softmax")


def _check_xy(h: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    h = check_tensor(h, "h", ndim=2, nonempty=True)
    y = check_tensor(y, "y", ndim=1, integer=True)
    if len(h) != len(y):
        raise ValueError(f"h and y must have the same length, got {len(h)} and {len(y)}")
    if len(y) and (y < 0).any():
        raise ValueError("labels y must be non-negative class indices")
    return h, y.long()


def select_inducing(h: torch.Tensor, y: torch.Tensor, num_inducing: int, *, seed: int = 0) -> torch.Tensor:
    """Class-stratified k-means++ centres snapped to real training examples.

    Parameters
    ----------
    h : Tensor ``[N, d]``
        Training features.
    y : LongTensor ``[N]``
        Training labels.
    num_inducing
        ``P <= N``. Split over the classes present in proportion to their size (largest remainders),
        at least one per class when ``P`` is at least the number of classes.
    seed
        Seeds each class's k-means (scikit-learn ``KMeans``, ``init="k-means++"``, one start).

    Returns
    -------
    LongTensor ``[P]``
        Distinct training indices, grouped by class (increasing label). Every centre is replaced by
        the nearest training example of its class not already chosen.
    """
    from sklearn.cluster import KMeans

    h, y = _check_xy(h, y)
    check_positive_int(num_inducing, "num_inducing")
    if num_inducing > len(h):
        raise ValueError(f"num_inducing must be <= the number of training examples {len(h)}, got {num_inducing}")
    classes, counts = torch.unique(y, return_counts=True)
    share = counts.double() / counts.sum() * num_inducing
    alloc = share.floor().long()
    if num_inducing >= len(classes):
        alloc = alloc.clamp_min(1)
    alloc = torch.minimum(alloc, counts)
    while int(alloc.sum()) != num_inducing:  # largest remainders first; take back from the largest shares
        if int(alloc.sum()) < num_inducing:
            room = (alloc < counts).double()
            alloc[torch.argmax((share - alloc.double()) * room - 1e9 * (1 - room))] += 1
        else:
            alloc[torch.argmax(alloc.double() - share + 1e9 * (alloc > 1).double())] -= 1
    chosen: list[int] = []
    hn = h.detach().double().numpy()
    for c, p in zip(classes.tolist(), alloc.tolist()):
        if p == 0:
            continue
        members = torch.nonzero(y == c).squeeze(1).numpy()
        pts = hn[members]
        if p >= len(members):
            chosen.extend(members.tolist())
            continue
        km = KMeans(n_clusters=p, init="k-means++", n_init=1, random_state=derive_seed(seed, "inducing", c) % 2**32)
        centres = km.fit(pts).cluster_centers_
        d2 = (centres**2).sum(1)[:, None] + (pts**2).sum(1)[None, :] - 2 * centres @ pts.T
        used = np.zeros(len(members), dtype=bool)
        for row in d2:
            row = np.where(used, np.inf, row)
            j = int(np.argmin(row))
            used[j] = True
            chosen.append(int(members[j]))
    return torch.tensor(chosen, dtype=torch.long)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, lengthscale: torch.Tensor, outputscale: torch.Tensor) -> torch.Tensor:
    """ARD RBF kernel ``s^2 exp(-|(a - b) / l|^2 / 2)``: ``a [n, d]``, ``b [m, d]`` -> ``[n, m]``."""
    a, b = a / lengthscale, b / lengthscale
    d2 = (a**2).sum(1, keepdim=True) + (b**2).sum(1) - 2.0 * a @ b.T
    return outputscale * torch.exp(-0.5 * d2.clamp_min(0))


def _tri(L: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return torch.linalg.solve_triangular(L, B, upper=False)


def titsias_bound(
    x: torch.Tensor,
    Y: torch.Tensor,
    z: torch.Tensor,
    lengthscale: torch.Tensor,
    outputscale: torch.Tensor,
    noise: torch.Tensor,
    jitter: float = 1e-6,
) -> torch.Tensor:
    r"""Titsias' collapsed lower bound on :math:`\sum_k \log p(Y_{:k})` (differentiable, scalar).

    ``x [N, d]`` inputs, ``Y [N, K]`` targets, ``z [P, d]`` inducing inputs; the kernel is
    :func:`rbf_kernel`; ``jitter * outputscale`` is added to the diagonal of ``K_ZZ``.
    """
    n, k = Y.shape
    sigma2 = noise
    Kzz = rbf_kernel(z, z, lengthscale, outputscale)
    L = torch.linalg.cholesky(Kzz + jitter * outputscale * torch.eye(len(z), dtype=z.dtype))
    A = _tri(L, rbf_kernel(z, x, lengthscale, outputscale)) / sigma2.sqrt()
    AAT = A @ A.T
    LB = torch.linalg.cholesky(torch.eye(len(z), dtype=z.dtype) + AAT)
    c = _tri(LB, A @ Y) / sigma2.sqrt()
    return (
        -0.5 * n * k * math.log(2 * math.pi)
        - k * torch.log(torch.diagonal(LB)).sum()
        - 0.5 * n * k * torch.log(sigma2)
        - 0.5 * (Y**2).sum() / sigma2
        + 0.5 * (c**2).sum()
        - 0.5 * k * (n * outputscale) / sigma2
        + 0.5 * k * torch.diagonal(AAT).sum()
    )


@dataclass(frozen=True)
class GPPrediction:
    """Predictions for ``B`` queries: ``mean [B, K]`` (class scores), ``variance [B]`` (the
    uncertainty: latent variance, averaged over classes for the softmax option) and, for the softmax
    option, ``probs [B, K]`` (Monte Carlo estimate of the predictive class probabilities)."""

    mean: torch.Tensor
    variance: torch.Tensor
    probs: torch.Tensor | None = None

    @property
    def predicted(self) -> torch.Tensor:
        """``argmax`` of the class scores, ``[B]``."""
        return self.mean.argmax(1)


@dataclass(frozen=True)
class Justification:
    """Example-based justification of ``B`` queries by their ``n`` strongest inducing examples.

    Attributes
    ----------
    classes : LongTensor ``[B]``
        The explained class (default: the GP's prediction).
    support_index, oppose_index : LongTensor ``[B, n]``
        *Training-set* indices of the inducing examples with the largest positive / most negative
        weight for that class (strongest first).
    support_weight, oppose_weight : Tensor ``[B, n]``
        Their weights :math:`w_j = k(h_*, z_j)\\beta_{j,\\mathrm{class}}`.
    total : Tensor ``[B]``
        Sum of all ``P`` weights, equal to the predictive mean of the class.
    """

    classes: torch.Tensor
    support_index: torch.Tensor
    support_weight: torch.Tensor
    oppose_index: torch.Tensor
    oppose_weight: torch.Tensor
    total: torch.Tensor


class SparseGP:
    """A sparse GP on one layer's features with real training examples as inducing points.

    Parameters
    ----------
    num_inducing
        ``P``, the number of inducing examples.
    likelihood
        ``"gaussian"`` (SGPR on one-hot targets, closed form) or ``"softmax"`` (SVGP, GPyTorch).
    ard
        One lengthscale per feature (ARD, default) or a single shared lengthscale.
    iterations
        L-BFGS iterations for the SGPR hyperparameters (0: keep the initial / given values).
    hyper_subset
        Fit the SGPR hyperparameters on at most this many random training rows (``None``: all).
    jitter
        Added to the diagonal of ``K_ZZ`` (times the outputscale for SGPR).
    svgp_epochs, svgp_lr, svgp_batch_size, mc_samples
        SVGP training (Adam, minibatches) and the Monte Carlo samples of its class probabilities.
    batch_size
        Query / training rows per chunk.
    seed
        Seeds inducing-point selection, the hyperparameter subset, SVGP minibatches and MC samples.
    progress
        Show a plain ``tqdm`` bar while fitting.

    Attributes (after :meth:`fit`)
    -------------------------------
    inducing_index_ : LongTensor ``[P]``
        Training indices of the inducing examples; ``inducing_y_`` their labels.
    z_, beta_ : Tensor ``[P, d]``, ``[P, K]``
    lengthscale_, outputscale_, noise_ : the hyperparameters.
    bound_ : the SGPR bound (or the SVGP ELBO per example) at the end of fitting.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> h, y = torch.rand(40, 3, dtype=torch.float64), torch.arange(40) % 2  # features of one layer, labels
    >>> gp = ualib.SparseGP(num_inducing=8, iterations=5, seed=0).fit(h, y)
    >>> pred = gp.predict(h[:4])
    >>> tuple(pred.mean.shape), tuple(pred.variance.shape)
    ((4, 2), (4,))
    >>> just = gp.justify(h[:4], n=3)  # strongest supporting / opposing training examples
    >>> tuple(just.support_index.shape), torch.allclose(just.total, pred.mean.gather(1, just.classes[:, None])[:, 0])
    ((4, 3), True)
    """

    def __init__(
        self,
        num_inducing: int = 128,
        *,
        likelihood: Literal["gaussian", "softmax"] = "gaussian",
        ard: bool = True,
        iterations: int = 50,
        hyper_subset: int | None = 5000,
        jitter: float = 1e-6,
        svgp_epochs: int = 20,
        svgp_lr: float = 0.01,
        svgp_batch_size: int = 256,
        mc_samples: int = 64,
        batch_size: int = 2048,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        check_positive_int(num_inducing, "num_inducing")
        check_choice(likelihood, "likelihood", LIKELIHOODS)
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
        if hyper_subset is not None:
            check_positive_int(hyper_subset, "hyper_subset")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        for name, v in (
            ("svgp_epochs", svgp_epochs),
            ("svgp_batch_size", svgp_batch_size),
            ("mc_samples", mc_samples),
            ("batch_size", batch_size),
        ):
            check_positive_int(v, name)
        self.num_inducing = num_inducing
        self.likelihood = likelihood
        self.ard = bool(ard)
        self.iterations = iterations
        self.hyper_subset = hyper_subset
        self.jitter = float(jitter)
        self.svgp_epochs, self.svgp_lr, self.svgp_batch_size = svgp_epochs, float(svgp_lr), svgp_batch_size
        self.mc_samples = mc_samples
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress
        self.inducing_index_: torch.Tensor | None = None

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        h: torch.Tensor,
        y: torch.Tensor,
        *,
        num_classes: int | None = None,
        inducing_index: torch.Tensor | None = None,
        lengthscale: float | torch.Tensor | None = None,
        outputscale: float | None = None,
        noise: float | None = None,
    ) -> SparseGP:
        """Fit on training features ``h [N, d]`` and labels ``y [N]``.

        ``inducing_index [P]`` overrides :func:`select_inducing` (distinct training indices);
        ``lengthscale`` (scalar or ``[d]``), ``outputscale`` and ``noise`` set the initial
        hyperparameters (with ``iterations=0``: the final ones). Default initial values: lengthscale
        = median distance between inducing examples, outputscale 1, noise 0.1.
        """
        h, y = _check_xy(h, y)
        n, d = h.shape
        K = int(num_classes) if num_classes is not None else int(y.max()) + 1
        if K < 2:
            raise ValueError(f"need at least 2 classes, got {K}")
        if inducing_index is None:
            idx = select_inducing(h, y, min(self.num_inducing, n), seed=self.seed)
        else:
            idx = check_tensor(inducing_index, "inducing_index", ndim=1, floating=False).long()
            if len(torch.unique(idx)) != len(idx) or (idx < 0).any() or (idx >= n).any():
                raise ValueError("inducing_index must hold distinct training indices in [0, N)")
        x = h.detach().double()
        z = x[idx].clone()
        self.inducing_index_, self.inducing_y_ = idx.clone(), y[idx].clone()
        self.z_, self.num_classes_ = z, K
        if lengthscale is None:
            dz = torch.cdist(z, z)
            off = dz[~torch.eye(len(z), dtype=torch.bool)]
            lengthscale = float(off.median()) if off.numel() else 1.0
        ls = torch.as_tensor(lengthscale, dtype=torch.float64).reshape(-1).clone()
        want = d if self.ard else 1
        if ls.numel() == 1:
            ls = ls.expand(want).clone()
        if ls.numel() != want:
            raise ValueError(f"lengthscale must be a scalar or have {want} entries (ard={self.ard}), got {ls.numel()}")
        if (ls <= 0).any():
            raise ValueError("lengthscale must be > 0")
        os_ = torch.tensor(1.0 if outputscale is None else float(outputscale), dtype=torch.float64)
        nz = torch.tensor(0.1 if noise is None else float(noise), dtype=torch.float64)
        if self.likelihood == "gaussian":
            self._fit_sgpr(x, y, ls, os_, nz)
        else:
            self._fit_svgp(x, y, ls, os_)
        return self

    def _fit_sgpr(
        self, x: torch.Tensor, y: torch.Tensor, ls: torch.Tensor, os_: torch.Tensor, nz: torch.Tensor
    ) -> None:
        K, z = self.num_classes_, self.z_
        Y = torch.nn.functional.one_hot(y, K).double()
        params = [ls.log().requires_grad_(), os_.log().requires_grad_(), nz.log().requires_grad_()]

        def hyper() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return params[0].exp(), params[1].exp(), params[2].exp() + 1e-6

        if self.iterations > 0:
            sub = torch.arange(len(x))
            if self.hyper_subset is not None and len(x) > self.hyper_subset:
                sub = torch.randperm(len(x), generator=generator(self.seed, "hyper_subset"))[: self.hyper_subset]
            xs, Ys = x[sub], Y[sub]
            opt = torch.optim.LBFGS(params, lr=1.0, max_iter=self.iterations, line_search_fn="strong_wolfe")
            bar = progress_bar(progress=self.progress, desc="SGPR bound evaluations")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = -titsias_bound(xs, Ys, z, *hyper(), jitter=self.jitter) / Ys.numel()
                loss.backward()
                bar.update(1)
                return loss

            try:
                opt.step(closure)
            finally:
                bar.close()
        with torch.no_grad():
            self.lengthscale_, self.outputscale_, self.noise_ = (p.detach().clone() for p in hyper())
            ls, s2, sigma2 = self.lengthscale_, self.outputscale_, self.noise_
            P = len(z)
            L = torch.linalg.cholesky(rbf_kernel(z, z, ls, s2) + self.jitter * s2 * torch.eye(P, dtype=z.dtype))
            AAT = torch.zeros(P, P, dtype=z.dtype)
            AY = torch.zeros(P, K, dtype=z.dtype)
            for i in range(0, len(x), self.batch_size):
                A = _tri(L, rbf_kernel(z, x[i : i + self.batch_size], ls, s2))
                AAT += A @ A.T
                AY += A @ Y[i : i + self.batch_size]
            LB = torch.linalg.cholesky(torch.eye(P, dtype=z.dtype) + AAT / sigma2)
            c = _tri(LB, AY) / sigma2
            self.beta_ = torch.linalg.solve_triangular(
                L.T, torch.linalg.solve_triangular(LB.T, c, upper=True), upper=True
            )
            self.chol_zz_, self.chol_b_ = L, LB
            self.bound_: float | None = None
        if self.iterations > 0:
            with torch.no_grad():
                self.bound_ = float(titsias_bound(xs, Ys, z, ls, s2, sigma2, self.jitter))

    def _fit_svgp(self, x: torch.Tensor, y: torch.Tensor, ls: torch.Tensor, os_: torch.Tensor) -> None:
        import gpytorch

        K, z = self.num_classes_, self.z_
        P, d = z.shape

        class _Model(gpytorch.models.ApproximateGP):
            def __init__(self) -> None:
                vd = gpytorch.variational.CholeskyVariationalDistribution(P, batch_shape=torch.Size([K]))
                base = gpytorch.variational.VariationalStrategy(self, z, vd, learn_inducing_locations=False)
                super().__init__(gpytorch.variational.IndependentMultitaskVariationalStrategy(base, num_tasks=K))
                self.mean_module = gpytorch.means.ZeroMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=len(ls)))

            def forward(self, t: torch.Tensor):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(t), self.covar_module(t))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "svgp"))
            model = _Model().double()
            model.covar_module.base_kernel.lengthscale = ls.view(1, -1)
            model.covar_module.outputscale = os_
            lik = gpytorch.likelihoods.SoftmaxLikelihood(num_features=K, num_classes=K, mixing_weights=False).double()
            mll = gpytorch.mlls.VariationalELBO(lik, model, num_data=len(x))
            opt = torch.optim.Adam([*model.parameters(), *lik.parameters()], lr=self.svgp_lr)
            model.train(), lik.train()
            steps = self.svgp_epochs * math.ceil(len(x) / self.svgp_batch_size)
            bar = progress_bar(progress=self.progress, desc="SVGP", total=steps)
            elbo = float("nan")
            try:
                with gpytorch.settings.variational_cholesky_jitter(self.jitter):
                    for epoch in range(self.svgp_epochs):
                        perm = torch.randperm(len(x), generator=generator(self.seed, "svgp_shuffle", epoch))
                        for i in range(0, len(x), self.svgp_batch_size):
                            b = perm[i : i + self.svgp_batch_size]
                            opt.zero_grad()
                            loss = -mll(model(x[b]), y[b])
                            loss.backward()
                            opt.step()
                            elbo = -float(loss.detach())
                            bar.update(1)
            finally:
                bar.close()
            model.eval(), lik.eval()
        self._svgp_model = model  # kept for tests / inspection; not part of the query state
        with torch.no_grad():
            self.lengthscale_ = model.covar_module.base_kernel.lengthscale.detach().view(-1).clone()
            self.outputscale_ = model.covar_module.outputscale.detach().clone()
            self.noise_ = torch.tensor(0.0, dtype=torch.float64)
            vd = model.variational_strategy.base_variational_strategy._variational_distribution
            m = vd.variational_mean.detach()  # [K, P], whitened
            Ls = vd.chol_variational_covar.detach().tril()  # [K, P, P], whitened
            L = torch.linalg.cholesky(
                rbf_kernel(z, z, self.lengthscale_, self.outputscale_) + self.jitter * torch.eye(P, dtype=z.dtype)
            )
            self.beta_ = torch.linalg.solve_triangular(L.T, m.T, upper=True)  # [P, K] = K_ZZ^{-1} (L m)
            self.chol_zz_, self.chol_s_ = L, Ls
            self.bound_ = elbo

    # ------------------------------------------------------------------ queries
    def _check_query(self, h: torch.Tensor) -> torch.Tensor:
        if self.inducing_index_ is None:
            raise RuntimeError("call fit() before querying")
        h = check_tensor(h, "h", ndim=2, nonempty=True)
        if h.shape[1] != self.z_.shape[1]:
            raise ValueError(f"h must have {self.z_.shape[1]} features, got shape {tuple(h.shape)}")
        return h.detach().double()

    def cross_kernel(self, h: torch.Tensor) -> torch.Tensor:
        """``k(h, Z)``: ``[B, d] -> [B, P]`` (float64)."""
        return rbf_kernel(self._check_query(h), self.z_, self.lengthscale_, self.outputscale_)

    def predict(self, h: torch.Tensor, *, include_noise: bool = False) -> GPPrediction:
        """Class scores ``mean [B, K]`` and predictive variance ``[B]`` of queries ``h [B, d]``.

        ``include_noise`` adds the Gaussian noise variance (SGPR only) to the latent variance.
        """
        h = self._check_query(h)
        means, variances, probs = [], [], []
        for i in range(0, len(h), self.batch_size):
            kx = rbf_kernel(h[i : i + self.batch_size], self.z_, self.lengthscale_, self.outputscale_)  # [b, P]
            t1 = _tri(self.chol_zz_, kx.T)  # [P, b]
            means.append(kx @ self.beta_)
            if self.likelihood == "gaussian":
                t2 = _tri(self.chol_b_, t1)
                v = self.outputscale_ - (t1**2).sum(0) + (t2**2).sum(0)
                variances.append(v.clamp_min(0) + (self.noise_ if include_noise else 0.0))
            else:
                t2 = self.chol_s_.mT @ t1  # [K, P, b]
                v = self.outputscale_ - (t1**2).sum(0) + (t2**2).sum(1)  # [K, b]
                v = v.clamp_min(0)
                variances.append(v.mean(0))
                g = generator(self.seed, "svgp_mc", i)
                f = means[-1] + v.T.sqrt() * torch.randn(self.mc_samples, *means[-1].shape, generator=g, dtype=v.dtype)
                probs.append(torch.softmax(f, -1).mean(0))
        mean = torch.cat(means) if means else torch.zeros(0, self.num_classes_, dtype=torch.float64)
        var = torch.cat(variances) if variances else torch.zeros(0, dtype=torch.float64)
        return GPPrediction(mean, var, torch.cat(probs) if probs else None)

    def contributions(self, h: torch.Tensor) -> torch.Tensor:
        """Per-inducing-example contributions ``w [B, P, K]`` with ``w.sum(1) == predict(h).mean``."""
        return self.cross_kernel(h)[:, :, None] * self.beta_[None]

    def justify(self, h: torch.Tensor, n: int = 5, *, classes: torch.Tensor | None = None) -> Justification:
        """The ``n`` strongest supporting and opposing training examples for each query ``h [B, d]``.

        ``classes [B]`` is the class explained (default: the GP's predicted class).
        """
        check_positive_int(n, "n")
        n = min(n, len(self.z_))
        kx = self.cross_kernel(h)  # [B, P]
        if classes is None:
            classes = (kx @ self.beta_).argmax(1)
        classes = torch.as_tensor(classes).long().view(-1)
        if len(classes) != len(kx):
            raise ValueError(f"classes must have one entry per query ({len(kx)}), got {len(classes)}")
        w = kx * self.beta_[:, classes].T  # [B, P]
        sw, si = torch.topk(w, n, dim=1, largest=True)
        ow, oi = torch.topk(w, n, dim=1, largest=False)
        idx = self.inducing_index_
        return Justification(classes, idx[si], sw, idx[oi], ow, w.sum(1))

    def memory_bytes(self) -> int:
        """Bytes kept to answer queries: ``Z``, ``beta``, the Cholesky factors, hyperparameters and the
        inducing examples' training indices and labels."""
        if self.inducing_index_ is None:
            return 0
        kept = [
            self.z_,
            self.beta_,
            self.chol_zz_,
            self.lengthscale_,
            self.outputscale_,
            self.noise_,
            self.inducing_index_,
            self.inducing_y_,
        ]
        kept.append(self.chol_b_ if self.likelihood == "gaussian" else self.chol_s_)
        return sum(t.numel() * t.element_size() for t in kept)
