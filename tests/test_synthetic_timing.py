"""The built-in timing set: counts carry nothing, it is deterministic, and it is made fast.

Bounds: chance is 1/20. The figures measured on the full set (1,800 train / 200 validation / 500
test) are in the README; here a reduced set (360 train / 40 validation / 200 test)
keeps the tests fast, and the bound on the total count leaves room for the sampling error of 200
test samples (standard error about 1.5 points at 5 %).
"""

import time

import numpy as np
import pytest
from brian2 import ms, second

from datasets import load_raw, load_splits, spike_counts, validation_split
from datasets.synthetic import TimingConfig, class_codes, make_timing
from datasets.synthetic_bursts import SyntheticConfig, make_synthetic
from learning_rules.count_control import CountReadout, fit_count_control

CHANCE = 1 / 20
REDUCED = TimingConfig(n_train=400, n_test=200, seed=7)


@pytest.fixture(scope="module")
def reduced():
    train, test = make_timing(REDUCED)
    fit, val = validation_split(train.labels, 0.1, seed=7)
    return train.subset(fit), train.subset(val), test


def _control(fit, val, n_bins_options):
    return fit_count_control(fit.samples, fit.labels, val.samples, val.labels, fit.n_channels, fit.duration,
                             n_bins_options)


def test_total_count_readout_sits_at_chance(reduced):
    fit, val, test = reduced
    result = _control(fit, val, (1,))
    assert result.n_bins == 1
    assert result.score(test.samples, test.labels) < CHANCE + 0.06


def test_best_binned_count_readout_stays_low(reduced):
    fit, val, test = reduced
    result = _control(fit, val, (1, 2, 4, 10, 20, 50, 100, 200))
    assert result.val_accuracy.shape == (8, len(result.alpha_factors))
    assert result.score(test.samples, test.labels) < 0.35


def test_count_control_catches_class_information_in_time_bins():
    """The former burst set puts the class in burst times: binned counts find it, totals do not."""
    train, test = make_synthetic(SyntheticConfig(n_channels=100, n_classes=5, n_train=250, n_test=100))
    fit, val = validation_split(train.labels, 0.2, seed=0)
    fit, val = train.subset(fit), train.subset(val)
    total = _control(fit, val, (1,))
    binned = _control(fit, val, (1, 2, 10))
    assert total.score(test.samples, test.labels) < 0.4
    assert binned.n_bins > 1 and binned.score(test.samples, test.labels) > 0.8


def test_chosen_model_reproduces_its_validation_score(reduced):
    """The dual-form search and the refitted RidgeClassifier are the same readout."""
    fit, val, _ = reduced
    result = _control(fit, val, (1, 10))
    assert isinstance(result.model, CountReadout)
    assert result.score(val.samples, val.labels) == pytest.approx(result.best_val_accuracy, abs=1 / len(val))


def test_generation_is_deterministic_for_a_seed():
    config = TimingConfig(n_train=30, n_test=10, seed=3)
    (a, a_test), (b, _) = make_timing(config), make_timing(config)
    c, _ = make_timing(TimingConfig(n_train=30, n_test=10, seed=4))
    assert a.name == "synthetic" and a.n_channels == 700 and a.n_classes == 20
    assert float(a.duration / second) == 1.0 and len(a) == 30 and len(a_test) == 10
    for x, y in zip(a.samples, b.samples):
        np.testing.assert_array_equal(x.units, y.units)
        np.testing.assert_array_equal(np.asarray(x.times), np.asarray(y.times))
        assert x.label == y.label
    assert any(len(x.units) != len(z.units) or not np.array_equal(x.units, z.units)
               for x, z in zip(a.samples, c.samples))


def test_samples_are_shd_like_sorted_and_in_range():
    train, _ = make_timing(TimingConfig(n_train=40, n_test=0))
    spikes = np.array([len(s.units) for s in train.samples])
    assert 3000 < spikes.mean() < 6000  # thousands of spikes per sample, as in SHD
    for s in train.samples:
        times = np.asarray(s.times / second)
        assert np.all(np.diff(times) >= 0) and times.min() >= 0 and times.max() < 1.0
        assert s.units.min() >= 0 and s.units.max() < 700


@pytest.mark.parametrize("shared_onsets", [True, False])
def test_assemblies_fire_in_synchrony_or_spread_as_their_class_says(shared_onsets):
    # a small jitter against the spread, so that a synchronous volley and a spread one cannot pass for each other
    config = TimingConfig(n_train=1, n_test=0, noise_rate=0 / second, dropout=0.0, occurrences=1, seed=5,
                          jitter=0.1 * ms, shared_onsets=shared_onsets)
    assembly, synchronous, latency = class_codes(config, np.random.default_rng(
        np.random.SeedSequence(config.seed).spawn(3)[0]))
    assert np.all(synchronous.sum(axis=0) == config.n_classes // 2)  # each assembly synchronous in half the classes
    assert len(np.unique(synchronous, axis=0)) == config.n_classes  # distinct codes
    sample = make_timing(config)[0].samples[0]
    times = np.asarray(sample.times / second)
    members = assembly[sample.units]

    def circular_spread(t):  # a volley may wrap past T
        return np.ptp((t - t[0] + 0.5) % 1.0 - 0.5)

    for m in range(config.n_assemblies):
        volley = times[members == m]
        aligned = volley - latency[sample.label][sample.units[members == m]]
        assert circular_spread(aligned) < 8 * float(config.jitter)
        if synchronous[sample.label, m]:
            assert circular_spread(volley) < 8 * float(config.jitter)
        else:
            assert circular_spread(volley) > float(config.spread) / 2
    aligned = times - latency[sample.label][sample.units]
    if shared_onsets:  # the whole code in one window: every assembly starts at the same onset
        assert circular_spread(aligned) < 8 * float(config.jitter)
    else:  # each assembly starts anywhere
        assert circular_spread(aligned) > 0.1


def _class_dependence(counts, labels):
    """z-scores of each class mean of each (bin, channel) count against the overall mean."""
    overall, variance = counts.mean(axis=0), counts.var(axis=0, ddof=1)
    z = []
    for c in np.unique(labels):
        chosen = counts[labels == c]
        z.append((chosen.mean(axis=0) - overall) / np.sqrt(variance / len(chosen)))
    return np.array(z)


def _dependence_statistics(counts, labels):
    """Mean squared and largest absolute z-score of the class means of every (bin, channel) count."""
    z = _class_dependence(counts, labels)
    return np.mean(z ** 2), np.abs(z).max()


def _permutation_bounds(counts, labels, n_permutations=20):
    """What the statistics reach when labels carry nothing: labels shuffled. Channels share the onsets of
    a sample, so the z-scores are not independent and their null distribution is measured, not assumed."""
    rng = np.random.default_rng(0)
    null = np.array([_dependence_statistics(counts, rng.permutation(labels)) for _ in range(n_permutations)])
    return null[:, 0].mean() + 5 * null[:, 0].std(ddof=1), 1.25 * null[:, 1].max()


def _counts(samples, n_bins):
    return spike_counts(samples, 700, n_bins).astype(np.float64)


@pytest.fixture(scope="module")
def pooled(reduced):
    fit, val, test = reduced
    return fit.samples + val.samples + test.samples, np.concatenate([fit.labels, val.labels, test.labels])


@pytest.mark.parametrize("n_bins", [1, 4])
def test_channel_counts_do_not_depend_on_class(pooled, n_bins):
    """The class means of the counts vary no more than under shuffled labels."""
    samples, labels = pooled
    counts = _counts(samples, n_bins)
    mean_z2, max_z = _dependence_statistics(counts, labels)
    bound_z2, bound_max = _permutation_bounds(counts, labels)
    assert mean_z2 < bound_z2 and max_z < bound_max


def test_class_dependence_check_can_fail(pooled):
    """Two extra spikes on one channel in one class (of about 4.5) are caught by the check above."""
    samples, labels = pooled
    leaky = [s if s.label != 0 else type(s)(np.append(s.units, [3, 3]),
                                             np.append(np.asarray(s.times / second), [0.25, 0.75]) * second, s.label)
             for s in samples]
    counts = _counts(leaky, 1)
    assert _dependence_statistics(counts, labels)[1] > _permutation_bounds(counts, labels)[1]


def test_loader_names_pick_the_generator():
    small = TimingConfig(n_channels=50, group_size=5, n_train=40, n_test=20)
    train, _ = load_raw("synthetic", synthetic=small)
    assert train.name == "synthetic" and train.n_channels == 50
    bursts, _ = load_raw("synthetic_bursts", synthetic=SyntheticConfig(n_channels=20, n_train=20, n_test=4))
    assert bursts.name == "synthetic_bursts"
    old, _ = load_raw("synthetic", synthetic=SyntheticConfig(n_channels=20, n_train=20, n_test=4))
    assert old.name == "synthetic_bursts"  # an explicit burst config keeps its old behaviour
    with pytest.raises(TypeError):
        load_raw("synthetic_bursts", synthetic=small)
    splits = load_splits("synthetic", synthetic=small, preprocessing=_prep())
    assert splits.dataset == "synthetic" and len(splits.train) + len(splits.val) == 40


def _prep():
    from datasets import Preprocessing

    return Preprocessing(dt=1 * ms)


def test_full_default_set_is_made_within_ten_seconds():
    start = time.perf_counter()
    train, test = make_timing(TimingConfig())
    elapsed = time.perf_counter() - start
    assert len(train) == 2000 and len(test) == 500
    assert elapsed < 10.0, f"generating the default set took {elapsed:.1f} s"


def test_the_dataset_summary_measures_the_controls(tmp_path):
    import xarray as xr

    from studies import dataset_summary

    path = dataset_summary.main(["--dataset", "synthetic", "--n-train", "200", "--n-test", "60",
                                 "--bptt-seconds", "2", "--out", str(tmp_path)])
    ds = xr.load_dataset(path)
    # counts alone stay near chance (0.05) on the timing set, as its bounds demand
    assert float(ds.control_total_counts_accuracy) <= 0.15
    assert float(ds.control_binned_counts_accuracy) <= 0.35
    assert int(ds.control_binned_counts_bins) in ds.count_bins.values and ds.count_bins.values.max() == 200
    assert int(ds.control_bptt_epochs) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary_synthetic.nc"], "nothing else left behind"
