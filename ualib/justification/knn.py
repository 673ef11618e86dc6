"""k-nearest-neighbour justification (the baseline of the justification chapter).

Virani, Iyer & Yang (2020) justify a classifier's decision by the *support* it finds in the training
set, "e.g. k-nearest neighbors (k-NN) and lp-norm based", in the input and latent spaces of the
network [READ, abstract]. The exact support functions of that paper were not available to us; this
module implements the following reconstruction [INF; book: chapter 7, "Justification" — notebooks/07_justification.ipynb]:

* In one feature space (one layer), the justification of a query ``h`` is its ``k`` nearest training
  examples (Euclidean distance) with their labels.
* The **support** of class ``c`` is the fraction of those ``k`` neighbours labelled ``c``; the
  support of a prediction is the support of the predicted class.
* The **distance score** (mean Euclidean distance to the ``k`` neighbours) is large where the
  training set offers no support and serves as an OOD score (the kNN OOD detector of Sun et al.,
  2022, uses the k-th distance; the mean is a smoother variant).

It keeps the whole training set, ``O(N d)`` memory and ``O(N d)`` work per query: the cost that the
sparse-GP method of Ardis & Flenner (2024) sets out to remove (:mod:`ualib.justification.sparse_gp`).

References
----------
N. Virani, N. Iyer, Z. Yang. Justification-based reliability in machine learning. AAAI 2020
(``virani2020justification``). Y. Sun, Y. Ming, X. Zhu, Y. Li. Out-of-distribution detection with
deep nearest neighbors. ICML 2022 (``sun2022knn``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ualib._checks import check_positive_int, check_tensor

__all__ = ["KNNJustification", "KNNJustifier"]


@dataclass(frozen=True)
class KNNJustification:
    """The kNN justification of ``B`` queries.

    Attributes
    ----------
    indices : LongTensor ``[B, k]``
        Training indices of the neighbours, nearest first.
    distances : Tensor ``[B, k]``
        Their Euclidean distances (non-decreasing along the row).
    labels : LongTensor ``[B, k]``
        Their training labels.
    support : Tensor ``[B, K]``
        Fraction of the ``k`` neighbours in each class (rows sum to 1).
    score : Tensor ``[B]``
        Mean distance to the ``k`` neighbours (higher = less support = more likely OOD).
    """

    indices: torch.Tensor
    distances: torch.Tensor
    labels: torch.Tensor
    support: torch.Tensor
    score: torch.Tensor

    def support_of(self, classes: torch.Tensor) -> torch.Tensor:
        """Support of the given class per query (e.g. the network's prediction): ``[B] -> [B]``."""
        return self.support.gather(1, classes.view(-1, 1).long()).squeeze(1)


class KNNJustifier:
    """Brute-force k-nearest-neighbour support in one feature space.

    Parameters
    ----------
    k
        Number of neighbours.
    batch_size
        Queries per chunk (the distance block is ``[batch_size, N]``).
    dtype
        The dtype in which the training features are stored and distances are computed
        (``float32`` by default, what a practical deployment would keep).

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> h, y = torch.rand(20, 3), torch.arange(20) % 2
    >>> res = ualib.KNNJustifier(k=5).fit(h, y).query(h[:4])
    >>> tuple(res.indices.shape), tuple(res.support.shape)
    ((4, 5), (4, 2))
    >>> torch.allclose(res.support.sum(1), torch.ones(4))
    True
    """

    def __init__(self, k: int = 10, *, batch_size: int = 256, dtype: torch.dtype = torch.float32) -> None:
        check_positive_int(k, "k")
        check_positive_int(batch_size, "batch_size")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self.k = k
        self.batch_size = batch_size
        self.dtype = dtype
        self.h_: torch.Tensor | None = None
        self.y_: torch.Tensor | None = None
        self.sqnorm_: torch.Tensor | None = None
        self.num_classes_: int = 0

    def fit(self, h: torch.Tensor, y: torch.Tensor, *, num_classes: int | None = None) -> KNNJustifier:
        """Store the training features ``h [N, d]`` and labels ``y [N]`` (N >= k)."""
        h = check_tensor(h, "h", ndim=2)
        y = check_tensor(y, "y", ndim=1, integer=True)
        if len(h) != len(y):
            raise ValueError(f"h and y must have the same length, got {len(h)} and {len(y)}")
        if len(h) < self.k:
            raise ValueError(f"need at least k={self.k} training examples, got {len(h)}")
        if (y < 0).any():
            raise ValueError("labels must be non-negative class indices")
        self.h_ = h.detach().to(self.dtype).contiguous()
        self.y_ = y.detach().long().contiguous()
        self.sqnorm_ = (self.h_**2).sum(1)
        need = int(y.max()) + 1
        if num_classes is not None:
            if int(num_classes) < need:
                raise ValueError(
                    f"num_classes must be >= {need} (the largest label in y is {need - 1}), got {num_classes}"
                )
        self.num_classes_ = int(num_classes) if num_classes is not None else need
        return self

    def _check_query(self, h: torch.Tensor) -> torch.Tensor:
        if self.h_ is None:
            raise RuntimeError("call fit() before querying")
        h = check_tensor(h, "h", ndim=2, nonempty=True)
        if h.shape[1] != self.h_.shape[1]:
            raise ValueError(f"h must have {self.h_.shape[1]} features, got shape {tuple(h.shape)}")
        return h.to(self.dtype)

    def query(self, h: torch.Tensor) -> KNNJustification:
        """Neighbours, support and distance score of the queries ``h [B, d]``."""
        h = self._check_query(h)
        assert self.h_ is not None and self.y_ is not None and self.sqnorm_ is not None
        idx, dist = [], []
        for i in range(0, len(h), self.batch_size):
            q = h[i : i + self.batch_size]
            d2 = (q**2).sum(1, keepdim=True) + self.sqnorm_ - 2.0 * (q @ self.h_.T)
            val, ind = torch.topk(d2, self.k, dim=1, largest=False, sorted=True)
            idx.append(ind)
            dist.append(val.clamp_min(0).sqrt())
        indices = torch.cat(idx) if idx else torch.zeros(0, self.k, dtype=torch.long)
        distances = torch.cat(dist) if dist else torch.zeros(0, self.k, dtype=self.dtype)
        labels = self.y_[indices]
        support = torch.zeros(len(h), self.num_classes_, dtype=self.dtype)
        support.scatter_add_(1, labels, torch.full_like(distances, 1.0 / self.k))
        return KNNJustification(indices, distances, labels, support, distances.mean(1))

    def memory_bytes(self) -> int:
        """Bytes kept to answer queries: the training features, their squared norms and labels."""
        if self.h_ is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (self.h_, self.y_, self.sqnorm_))
