"""Readout of precise spike times by orthogonal forward regression, after Florescu & Coca (2019).

Florescu, D. & Coca, D. (2019), "Learning with precise spike times: a new decoding algorithm for
liquid state machines", Neural Computation 31(9):1825-1852 (arXiv:1805.09774).

Each neuron's spike train :math:`s_i = \\sum_m \\delta(t - t_i^m)` is a vector in the inner-product
space of spike trains with the kernel inner product

.. math:: \\langle s_i, s_j \\rangle = \\sum_{\\text{samples}} \\sum_{m,n} \\kappa(t_i^m - t_j^n),

here with the kernel of an exponential filter :math:`h(t) = e^{-t/\\tau}\\,\\Theta(t)` (so that
:math:`\\kappa = h \\star h`): the inner product is that of the filtered trains
:math:`x_i = h * s_i`, evaluated on a time grid of step ``grid_dt``. Small ``tau`` makes the
product sensitive to precise spike timing. The targets are time-resolved: with the sample split
into ``n_target_bins`` windows, target :math:`y_{c,b}(t) = 1` during window :math:`b` of the samples
of class :math:`c` and 0 otherwise, so the readout may weigh a neuron differently early and late.

Orthogonal forward regression (the orthogonal least squares of Chen, Billings & Luo 1989, used by
the paper) picks neurons one by one: with the trains selected so far, every candidate is
orthogonalised against them (Gram-Schmidt in the spike-train space), and the one with the largest
error reduction ratio

.. math:: \\mathrm{ERR}_j = \\frac{\\sum_c \\langle w_j, y_c \\rangle^2}{\\langle w_j, w_j\\rangle \\sum_c \\langle y_c, y_c\\rangle}

is taken, :math:`w_j` being the orthogonalised train. Everything runs on the Gram matrix
:math:`G_{ij} = \\langle x_i, x_j \\rangle` and the cross products :math:`B_{ic} = \\langle x_i, y_c\\rangle`,
which are accumulated sample by sample (a rank-one deflation per selected neuron). The readout is
then the least-squares combination of the selected trains; a sample goes to the class whose outputs,
each averaged over its own window, sum highest.

Departures from the paper: window-wise class targets instead of desired output spike trains (and
so no spike-train distance at decoding); the number of selected neurons is chosen on the
validation split.
"""

from __future__ import annotations

import numpy as np
from brian2 import Quantity, ms, second
from sklearn.base import BaseEstimator, ClassifierMixin


def filtered_trains(units: np.ndarray, times_s: np.ndarray, n_neurons: int, n_grid: int, grid_dt: float,
                    tau: float) -> np.ndarray:
    """``(n_neurons, n_grid)`` exponentially filtered spike trains sampled at ``k * grid_dt``."""
    out = np.zeros((n_neurons, n_grid))
    bins = np.floor(times_s / grid_dt).astype(np.int64)
    keep = bins < n_grid
    # Each spike adds exp(-(t_grid - t_spike)/tau) from its bin on: bin the spikes with their
    # within-bin delay, then run the filter as one recursion over the grid.
    offset = np.exp(-((bins[keep] + 1) * grid_dt - times_s[keep]) / tau)
    np.add.at(out, (units[keep], bins[keep]), offset)
    decay = np.exp(-grid_dt / tau)
    for k in range(1, n_grid):
        out[:, k] += decay * out[:, k - 1]
    return out


def orthogonal_forward_selection(gram: np.ndarray, cross: np.ndarray, target_energy: float, n_select: int,
                                 tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Greedy OLS on a Gram matrix: the selected indices in order and their error reduction ratios."""
    g = np.array(gram, dtype=np.float64)
    b = np.array(cross, dtype=np.float64).reshape(len(g), -1)
    available = np.ones(len(g), dtype=bool)
    chosen, ratios = [], []
    scale = np.max(np.diag(g), initial=0.0)
    for _ in range(min(n_select, len(g))):
        norms = np.diag(g).copy()
        valid = available & (norms > tol * max(scale, 1e-300))
        if not valid.any():
            break
        err = np.where(valid, (b ** 2).sum(axis=1) / np.where(valid, norms, 1.0) / target_energy, -np.inf)
        j = int(np.argmax(err))
        chosen.append(j)
        ratios.append(float(err[j]))
        available[j] = False
        column = g[:, j].copy()
        b -= np.outer(column, b[j]) / g[j, j]
        g -= np.outer(column, column) / g[j, j]
    return np.array(chosen, dtype=np.int64), np.array(ratios)


class SpikeTimeOFRReadout(BaseEstimator, ClassifierMixin):
    """Florescu & Coca (2019) readout on reservoir spike trains (scikit-learn classifier).

    ``X`` is a list of samples, each ``(units, times in seconds)`` of the reservoir's spikes.
    ``n_select`` neurons are kept; :meth:`choose_n_select` picks it on validation data.
    """

    def __init__(self, n_neurons: int, n_select: int = 50, tau: Quantity = 10 * ms, grid_dt: Quantity = 5 * ms,
                 duration: Quantity = 1 * second, n_target_bins: int = 10, ridge: float = 1e-6):
        self.n_neurons, self.n_select, self.tau, self.grid_dt = n_neurons, n_select, tau, grid_dt
        self.duration, self.n_target_bins, self.ridge = duration, n_target_bins, ridge

    def _grid(self):
        grid_dt, tau = float(self.grid_dt / second), float(self.tau / second)
        return int(round(float(self.duration / second) / grid_dt)), grid_dt, tau

    def _trains(self, sample):
        n_grid, grid_dt, tau = self._grid()
        units, times = sample
        return filtered_trains(np.asarray(units, dtype=np.int64), np.asarray(times, dtype=float),
                               self.n_neurons, n_grid, grid_dt, tau)

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        gram = np.zeros((self.n_neurons, self.n_neurons))
        n_grid = self._grid()[0]
        window = self._windows(n_grid)
        cross = np.zeros((self.n_neurons, len(self.classes_), self.n_target_bins))
        for sample, label in zip(X, y):
            trains = self._trains(sample)
            gram += trains @ trains.T
            cross[:, np.searchsorted(self.classes_, label)] += trains @ window
        cross = cross.reshape(self.n_neurons, -1)
        energy = float(len(y) * n_grid)  # sum over classes of <y_c, y_c>
        self.gram_, self.cross_ = gram, cross
        self.order_, self.err_ = orthogonal_forward_selection(gram, cross, energy, self.n_select)
        self._solve(self.n_select)
        return self

    def _windows(self, n_grid: int) -> np.ndarray:
        """``(n_grid, n_target_bins)`` indicator of which window each grid point lies in."""
        index = np.minimum(np.arange(n_grid) * self.n_target_bins // n_grid, self.n_target_bins - 1)
        return np.eye(self.n_target_bins)[index]

    def _solve(self, k: int):
        sel = self.order_[:k]
        g = self.gram_[np.ix_(sel, sel)]
        g = g + self.ridge * np.trace(g) / max(len(sel), 1) * np.eye(len(sel))
        self.selected_ = sel
        self.weights_ = np.linalg.solve(g, self.cross_[sel]) if len(sel) else np.zeros((0, self.cross_.shape[1]))

    def decision_function(self, X) -> np.ndarray:
        """Per class: each window's output averaged over that window, summed over windows."""
        n_grid = self._grid()[0]
        window = self._windows(n_grid)
        window = window / window.sum(axis=0)
        out = []
        for sample in X:
            trains = self._trains(sample)[self.selected_]
            outputs = (trains.T @ self.weights_).reshape(n_grid, len(self.classes_), self.n_target_bins)
            out.append(np.einsum("tcb,tb->c", outputs, window))
        return np.array(out)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def choose_n_select(self, X_val, y_val, candidates=None) -> dict[int, float]:
        """Refit on the first k selected neurons for each k; keep the k with the best validation accuracy."""
        candidates = candidates or sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, len(self.order_))
                                           if 1 <= k <= len(self.order_)})
        scores = {}
        for k in candidates:
            self._solve(k)
            scores[k] = float(np.mean(self.predict(X_val) == np.asarray(y_val)))
        best = max(scores, key=lambda k: (scores[k], -k))
        self._solve(best)
        return scores
