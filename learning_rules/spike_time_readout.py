"""A readout of spike-train inner products, its terms chosen by forward orthogonal regression.

What follows Florescu & Coca (2019), "Learning with precise spike times: a new decoding algorithm
for liquid state machines", Neural Computation 31(9):1825-1852 (arXiv:1805.09774), and nothing more:

1. spike trains are vectors of an inner-product space, :math:`s_i = \\sum_m \\delta(t - t_i^m)` with

   .. math:: \\langle s_i, s_j \\rangle = \\sum_{m,n} \\kappa(t_i^m - t_j^n),

   here :math:`\\kappa = h \\star h` for the exponential filter :math:`h(t) = e^{-t/\\tau}\\Theta(t)`, so
   that the product is :math:`\\int x_i x_j\\,dt` of the filtered trains :math:`x_i = h * s_i`
   (evaluated on a grid of step ``grid_dt``); a small :math:`\\tau` makes it count coincidences within
   about :math:`\\tau`;
2. the readout's inputs are chosen one by one by forward orthogonal regression (the orthogonal
   least squares of Chen, Billings & Luo 1989 that the paper uses): every candidate is orthogonalised
   against those already chosen and the one with the largest error reduction ratio

   .. math:: \\mathrm{ERR}_k = \\frac{\\sum_c \\langle q_k, y_c \\rangle^2}{\\langle q_k, q_k \\rangle \\sum_c \\langle y_c, y_c \\rangle}

   is taken (:math:`q_k` the orthogonalised candidate, :math:`y_c` the targets).

What is this project's, not the paper's (the paper fits a readout to desired output spike trains;
none of the following is claimed to be in it):

- **Candidates and targets.** One sample is one regression row. The sample is cut into
  ``n_windows`` windows :math:`b`; the candidates are, per window, every neuron's filtered count
  :math:`\\int_b x_i\\,dt` (about :math:`\\tau` times its spike count there) and the inner products
  :math:`\\int_b x_i x_j\\,dt` (:math:`i \\le j`) of the ``n_pool`` neurons whose filtered counts alone
  explain the most (largest single-term ERR). The targets are the one-hot class codes. The products
  are what lets the readout use precise timing: two trains with the same counts in every window
  differ in their products when their spikes coincide, which no readout linear in counts can see
  (tested on such a task, where a readout of binned counts stays at chance).
- **Intercept.** A constant term enters first, before any selection, so every candidate and target
  is centred: a neuron that fires the same way in every sample (tonic firing) has nothing left after
  the constant and cannot be chosen, however much it fires (tested).
- **Fit and decision.** Least squares with a ridge (``ridge`` times the mean diagonal of the chosen
  terms' Gram matrix) of the targets on the chosen terms and the intercept; a sample goes to the
  class of the largest output. The number of chosen terms, the ridge, and whether the inner
  products are candidates at all (or the filtered counts alone) are picked on the validation split
  (:meth:`choose_n_select`): with one regression row per sample, a readout of many terms fitted on
  a few hundred samples needs the penalty, and where counts carry the class the products only add
  variance.
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, ms, second
from scipy.signal import lfilter
from sklearn.base import BaseEstimator, ClassifierMixin


def filtered_trains(units: np.ndarray, times_s: np.ndarray, n_neurons: int, n_grid: int, grid_dt: float,
                    tau: float) -> np.ndarray:
    """``(n_neurons, n_grid)`` exponentially filtered spike trains sampled at ``(k + 1) * grid_dt``."""
    out = np.zeros((n_neurons, n_grid))
    bins = np.floor(times_s / grid_dt).astype(np.int64)
    keep = bins < n_grid
    # Each spike adds exp(-(t_grid - t_spike)/tau) from the end of its bin on: bin the spikes with
    # their within-bin delay, then run the filter as one recursion over the grid.
    offset = np.exp(-((bins[keep] + 1) * grid_dt - times_s[keep]) / tau)
    np.add.at(out, (units[keep], bins[keep]), offset)
    return lfilter([1.0], [1.0, -np.exp(-grid_dt / tau)], out, axis=1)


def forward_orthogonal_regression(design: np.ndarray, targets: np.ndarray, n_select: int,
                                  tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Forward orthogonal regression on the columns of ``design`` ``(rows, candidates)`` for
    ``targets`` ``(rows, outputs)``: the chosen columns in order and their error reduction ratios.

    Columns and targets are used as given (centre them first for an intercept). A column whose part
    orthogonal to the chosen ones falls below ``tol`` of its own norm is never taken. Each step costs
    one product of the design matrix with the newly orthogonalised vector.
    """
    d = np.asarray(design, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64).reshape(len(d), -1)
    energy = float((y ** 2).sum())
    original = (d ** 2).sum(axis=0)
    norms = original.copy()  # squared norms of the columns' parts orthogonal to the chosen ones
    proj = d.T @ y  # their products with the targets (the targets' projections are removed below)
    basis = []  # orthonormal vectors of the chosen columns
    chosen, ratios = [], []
    available = original > 0
    for _ in range(min(n_select, d.shape[1])):
        valid = available & (norms > tol * np.maximum(original, 1e-300))
        if not valid.any() or energy <= 0:
            break
        err = np.where(valid, (proj ** 2).sum(axis=1) / np.where(valid, norms, 1.0) / energy, -np.inf)
        k = int(np.argmax(err))
        chosen.append(k)
        ratios.append(float(err[k]))
        available[k] = False
        q = d[:, k] - sum(b * (b @ d[:, k]) for b in basis) if basis else d[:, k].copy()
        q /= np.linalg.norm(q)
        basis.append(q)
        # q is orthogonal to the earlier basis, so its product with a column's orthogonal part is
        # its product with the column itself.
        c = q @ d
        norms -= c ** 2
        proj -= np.outer(c, q @ y)
    return np.array(chosen, dtype=np.int64), np.array(ratios)


class SpikeTrainInnerProductReadout(BaseEstimator, ClassifierMixin):
    """Least-squares readout of windowed spike-train inner products, terms chosen by forward
    orthogonal regression (see the module docstring for what follows Florescu & Coca 2019).

    ``X`` is a list of samples, each ``(units, times in seconds)`` of the network's spikes.
    After ``fit``: ``terms_`` ``(candidates, 3)`` names every candidate as ``(i, j, window)``
    (``j = -1`` for the filtered count of ``i``), ``order_``/``err_`` the chosen candidates and their
    error reduction ratios, ``selected_`` those in use, ``intercept_`` and ``weights_`` the fit.
    """

    def __init__(self, n_neurons: int, n_select: int = 50, tau: Quantity = 5 * ms, grid_dt: Quantity = 1 * ms,
                 duration: Quantity = 1 * second, n_windows: int = 4, n_pool: int = 30, ridge: float = 1e-6):
        self.n_neurons, self.n_select, self.tau, self.grid_dt = n_neurons, n_select, tau, grid_dt
        self.duration, self.n_windows, self.n_pool, self.ridge = duration, n_windows, n_pool, ridge

    def _grid(self):
        grid_dt, tau = float(self.grid_dt / second), float(self.tau / second)
        n_grid = int(round(float(self.duration / second) / grid_dt))
        window = np.minimum(np.arange(n_grid) * self.n_windows // n_grid, self.n_windows - 1)
        return n_grid, grid_dt, tau, window

    def _trains(self, sample):
        n_grid, grid_dt, tau, _ = self._grid()
        units, times = sample
        return filtered_trains(np.asarray(units, dtype=np.int64), np.asarray(times, dtype=float),
                               self.n_neurons, n_grid, grid_dt, tau)

    def _window_sums(self, values: np.ndarray) -> np.ndarray:
        """``(..., grid)`` -> ``(..., window)``: integrals over each window."""
        n_grid, grid_dt, _, window = self._grid()
        edges = np.searchsorted(window, np.arange(self.n_windows))
        return np.add.reduceat(values, edges, axis=-1) * grid_dt

    def _counts(self, X) -> np.ndarray:
        """``(sample, neuron * window)`` filtered counts."""
        return np.stack([self._window_sums(self._trains(s)).reshape(-1) for s in X])

    def _features(self, X, pool: np.ndarray, iu: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Every candidate of every sample: filtered counts, then the pool's products, ``(sample, candidate)``."""
        rows = []
        for sample in X:
            trains = self._trains(sample)
            counts = self._window_sums(trains).reshape(-1)
            p = trains[pool]
            products = self._window_sums(p[iu[0]] * p[iu[1]]).reshape(-1)
            rows.append(np.concatenate([counts, products]))
        return np.array(rows)

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        targets = (y[:, None] == self.classes_[None, :]).astype(float)
        targets -= targets.mean(axis=0)
        # The pool of neurons whose products are candidates: largest single-term ERR of a filtered count.
        counts = self._counts(X)
        centred = counts - counts.mean(axis=0)
        norms = (centred ** 2).sum(axis=0)
        single = np.where(norms > 0, ((centred.T @ targets) ** 2).sum(axis=1) / np.where(norms > 0, norms, 1), 0.0)
        best = single.reshape(self.n_neurons, self.n_windows).max(axis=1)
        self.pool_ = np.sort(np.argsort(-best, kind="stable")[:min(self.n_pool, self.n_neurons)])
        self.pool_ = self.pool_[best[self.pool_] > 0] if (best > 0).any() else self.pool_
        iu = np.triu_indices(len(self.pool_))
        self._iu = iu
        count_terms = np.array([(i, -1, b) for i in range(self.n_neurons) for b in range(self.n_windows)])
        product_terms = np.array([(self.pool_[a], self.pool_[c], b) for a, c in zip(*iu) for b in range(self.n_windows)])
        self.terms_ = np.concatenate([count_terms, product_terms.reshape(-1, 3)]).astype(np.int64)
        features = self._features(X, self.pool_, iu)
        self.mean_ = features.mean(axis=0)
        design = features - self.mean_
        self._targets = targets
        self._target_mean = (y[:, None] == self.classes_[None, :]).mean(axis=0)
        # Two candidate sets, compared on validation: all terms, and the filtered counts alone.
        n_counts = len(count_terms)
        self._families = {}
        for family, columns in (("products", design), ("counts", design[:, :n_counts])):
            order, err = forward_orthogonal_regression(columns, targets, self.n_select)
            self._families[family] = (order, err, design[:, order])
        self._use("products")
        self._solve(len(self.order_))
        return self

    def _use(self, family: str):
        self.family_ = family
        self.order_, self.err_, self._design = self._families[family]

    def _solve(self, k: int, ridge: float | None = None):
        ridge = self.ridge if ridge is None else ridge
        x = self._design[:, :k]
        g = x.T @ x
        g = g + ridge * np.trace(g) / max(k, 1) * np.eye(k)
        self.selected_, self.ridge_ = self.order_[:k], ridge
        self.weights_ = np.linalg.solve(g, x.T @ self._targets) if k else np.zeros((0, len(self.classes_)))
        self.intercept_ = self._target_mean - self.mean_[self.selected_] @ self.weights_

    def decision_function(self, X) -> np.ndarray:
        features = self._features(X, self.pool_, self._iu)
        return features[:, self.selected_] @ self.weights_ + self.intercept_

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    @property
    def selected_neurons_(self) -> np.ndarray:
        """The neurons the chosen terms read."""
        terms = self.terms_[self.selected_]
        return np.unique(np.concatenate([terms[:, 0], terms[terms[:, 1] >= 0, 1]]))

    def choose_n_select(self, X_val, y_val, candidates=None, ridges=None) -> dict[int, float]:
        """Refit on the first k chosen terms for each k, each relative ridge in ``ridges`` (the
        constructor's ``ridge`` and larger ones by default) and each candidate set (all terms, or
        the filtered counts alone); keep the best on validation (ties: the counts alone, fewer terms,
        the stronger ridge). Returns, per k, the best validation accuracy over ridges and sets."""
        ridges = ridges or sorted({self.ridge, 1e-3, 1e-2, 1e-1, 1.0})
        features = self._features(X_val, self.pool_, self._iu)
        y_val = np.asarray(y_val)
        grid = {}
        for family in ("counts", "products"):
            self._use(family)
            n = len(self.order_)
            ks = candidates or sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, n) if 1 <= k <= n})
            for k in ks:
                for ridge in ridges:
                    self._solve(min(k, n), ridge)
                    output = features[:, self.selected_] @ self.weights_ + self.intercept_
                    grid[family, min(k, n), ridge] = float(np.mean(self.classes_[np.argmax(output, axis=1)] == y_val))
        self.val_grid_ = grid
        rank = {"counts": 1, "products": 0}
        family, k, ridge = max(grid, key=lambda key: (grid[key], rank[key[0]], -key[1], key[2]))
        self._use(family)
        self._solve(k, ridge)
        scores = {}
        for (_, k_, _), value in grid.items():
            scores[k_] = max(scores.get(k_, 0.0), value)
        return dict(sorted(scores.items()))
