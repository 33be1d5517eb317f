"""The input-count control: its bin count chosen on validation, and kept so in a comparison."""

import numpy as np
import pytest
import xarray as xr

from learning_rules.count_control import N_BINS_OPTIONS
from studies import compare_shd, counts_shd
from studies.config import RunConfig

DATA = ["--dataset", "synthetic", "--n-train", "40", "--n-test", "20"]


def test_the_bin_count_is_chosen_on_validation_unless_fixed(tmp_path):
    chosen = xr.load_dataset(counts_shd.main(DATA + ["--out", str(tmp_path / "chosen")]))
    assert chosen.n_bins_option.values.tolist() == list(N_BINS_OPTIONS)
    scores = chosen.val_accuracy_per_n_bins.values
    # the first best option (ties go to fewer bins), and the run's validation accuracy is its
    assert int(chosen.n_bins) == N_BINS_OPTIONS[int(np.argmax(scores))]
    assert float(chosen.val_accuracy.values[0]) == scores.max()
    assert int(chosen.trainable_parameters) == (700 * int(chosen.n_bins) + 1) * int(chosen.attrs["n_classes"])
    fixed = xr.load_dataset(counts_shd.main(DATA + ["--n-bins", "4", "--out", str(tmp_path / "fixed")]))
    assert int(fixed.n_bins) == 4 and fixed.n_bins_option.values.tolist() == [4]
    assert float(fixed.val_accuracy.values[0]) == float(scores[N_BINS_OPTIONS.index(4)])
    with pytest.raises(ValueError, match="n_bins must be at least 1"):
        counts_shd.CountsStudyConfig(n_bins=0)


def test_a_comparisons_shared_bin_count_leaves_the_control_choosing_its_own():
    """The networks' readouts take the comparison's --n-bins; the control chooses its own on validation,
    unless --set fixes it."""
    config = compare_shd.CompareConfig(run=RunConfig(dataset="synthetic"), rules=("stdp", "lsm", "counts"), n_bins=4)
    configs = compare_shd.rule_configs(config, seed=0)
    assert configs["stdp"].n_bins == 4 and configs["lsm"].n_bins == 4 and configs["counts"].n_bins is None
    fixed = compare_shd.rule_configs(compare_shd.CompareConfig(run=RunConfig(dataset="synthetic"), rules=("counts",),
                                                               set=("counts.n_bins=9",)), seed=0)
    assert fixed["counts"].n_bins == 9
