"""Dataset readers on tiny fake files in the real layouts, preprocessing and splits."""


import h5py
import numpy as np
import pytest
from brian2 import ms, second

from datasets import (DatasetFileError, DatasetUnavailableError, Preprocessing, SpikeSample, load_raw, load_splits, spike_counts,
                      to_dense)
from datasets.heidelberg import write_shd_layout
from datasets.records import merge_same_step, preprocess
from datasets.synthetic_bursts import SyntheticConfig, make_synthetic


def _fake_samples(n, n_units=700, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = rng.integers(50, 200)
        times = np.sort(rng.uniform(0, 0.9, k))
        out.append(SpikeSample(rng.integers(0, n_units, k), times * second, int(i % n_classes), int(i % 3)))
    return out


def _fake_heidelberg(root, name="shd", n_train=24, n_test=8):
    folder = root / name.upper()
    train, test = _fake_samples(n_train), _fake_samples(n_test, seed=1)
    keys = ["a", "b", "c", "d"]
    write_shd_layout(folder / f"{name}_train.h5", train, keys)
    write_shd_layout(folder / f"{name}_test.h5", test, keys)
    return train, test


@pytest.mark.parametrize("name", ["shd", "ssc"])
def test_heidelberg_files_read_through_tonic(tmp_path, name):
    train, test = _fake_heidelberg(tmp_path, name)
    got_train, got_test = load_raw(name, tmp_path)
    assert len(got_train) == len(train) and len(got_test) == len(test)
    assert got_train.n_channels == 700 and got_train.class_names == ["a", "b", "c", "d"]
    for mine, theirs in zip(train, got_train.samples):
        assert theirs.label == mine.label and theirs.speaker == mine.speaker
        np.testing.assert_array_equal(theirs.units, mine.units)
        # float16 seconds on disk, microseconds in tonic: agree to float16 precision
        np.testing.assert_allclose(theirs.times / second, mine.times / second, atol=5e-4)


def test_ntidigits_file_read_through_tonic(tmp_path):
    folder = tmp_path / "NTIDIGITS18"
    folder.mkdir()
    rng = np.random.default_rng(0)
    with h5py.File(folder / "n-tidigits.hdf5", "w") as f:
        for part, ids in (("train", ["man-ae-1", "woman-bb-z", "man-ae-34"]), ("test", ["man-cc-o"])):
            f[f"{part}_labels"] = np.array([i.encode() for i in ids])
            for i in ids:
                f[f"{part}_addresses/{i}"] = rng.integers(0, 64, 30)
                f[f"{part}_timestamps/{i}"] = np.sort(rng.uniform(0, 0.5, 30))
    train, test = load_raw("ntidigits", tmp_path)
    assert [s.label for s in train.samples] == [1, 10]  # 'man-ae-34' holds two digits and is left out
    assert [s.label for s in test.samples] == [0]
    assert train.n_channels == 64
    assert train.samples[0].speaker != train.samples[1].speaker


def test_missing_files_name_the_expected_place(tmp_path, monkeypatch):
    import tonic.download_utils

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tonic.download_utils, "download_url", offline)
    with pytest.raises(DatasetUnavailableError, match=r"SHD.*shd_train\.h5.*--data-dir"):
        load_raw("shd", tmp_path / "nowhere")


def test_corrupt_file_gives_a_clear_error(tmp_path):
    _fake_heidelberg(tmp_path)
    path = tmp_path / "SHD" / "shd_train.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(DatasetUnavailableError, match="truncated or corrupt"):
        load_raw("shd", tmp_path)


@pytest.mark.parametrize("broken, intact", [("shd_test.h5", "shd_train.h5"), ("shd_train.h5", "shd_test.h5")])
def test_a_truncated_file_is_named_itself(tmp_path, broken, intact):
    _fake_heidelberg(tmp_path)
    path = tmp_path / "SHD" / broken
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DatasetFileError) as info:
        load_raw("shd", tmp_path)
    assert str(path) in str(info.value) and intact not in str(info.value)


def test_a_corrupt_or_partial_local_shd_never_falls_back(tmp_path, capsys, monkeypatch):
    import tonic.download_utils

    monkeypatch.setattr(tonic.download_utils, "download_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    _fake_heidelberg(tmp_path)
    test_file = tmp_path / "SHD" / "shd_test.h5"
    test_file.write_bytes(test_file.read_bytes()[:2000])
    with pytest.raises(DatasetFileError, match=f"cannot read {test_file}"):
        load_splits(None, tmp_path)  # the default (SHD) asked for: the file there decides
    test_file.unlink()  # only the training file left
    with pytest.raises(DatasetFileError, match=r"only shd_train\.h5 is there"):
        load_splits(None, tmp_path)
    assert "BUILT-IN SYNTHETIC SET" not in capsys.readouterr().err


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_raw("mnist")


def test_default_falls_back_loudly_but_named_never_does(tmp_path, capsys, monkeypatch):
    import tonic.download_utils

    monkeypatch.setattr(tonic.download_utils, "download_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    small = SyntheticConfig(n_channels=20, n_classes=4, n_train=40, n_test=8)
    splits = load_splits(None, tmp_path, synthetic=small)
    assert splits.dataset == "synthetic" and splits.requested == "shd"
    assert "BUILT-IN SYNTHETIC SET" in capsys.readouterr().err
    with pytest.raises(DatasetUnavailableError):
        load_splits("shd", tmp_path, synthetic=small)


def test_merging_keeps_one_spike_per_unit_and_step():
    sample = SpikeSample(np.array([3, 3, 3, 1]), np.array([0.10, 0.1004, 0.1012, 0.1004]) * second, 0)
    out = preprocess(sample, Preprocessing(dt=1 * ms))
    assert sorted(zip(out.units.tolist(), np.rint(out.times / ms).astype(int).tolist())) == [(1, 100), (3, 100), (3, 101)]
    units, steps = merge_same_step(np.array([2, 2, 0]), np.array([5, 5, 5]))
    assert units.tolist() == [0, 2] and steps.tolist() == [5, 5]


def test_crop_pool_and_dense_binning():
    sample = SpikeSample(np.array([0, 4, 5, 699]), np.array([0.001, 0.002, 0.5, 1.2]) * second, 1)
    out = preprocess(sample, Preprocessing(duration=1 * second, dt=1 * ms, pool=5))
    assert out.units.tolist() == [0, 0, 1]  # 699 cropped (t = 1.2 s), 4 and 0 pooled into channel 0
    dense = to_dense([out], 140, 1000, 1 * ms)
    assert dense.shape == (1, 1000, 140) and dense.sum() == 3 and dense[0, 500, 1] == 1
    assert spike_counts([out], 140, n_bins=2).reshape(2, 140)[1, 1] == 1


def test_validation_split_is_disjoint_stratified_and_repeatable():
    small = SyntheticConfig(n_channels=10, n_classes=5, n_train=200, n_test=20)
    a = load_splits("synthetic", synthetic=small, val_fraction=0.2, seed=3)
    b = load_splits("synthetic", synthetic=small, val_fraction=0.2, seed=3)
    c = load_splits("synthetic", synthetic=small, val_fraction=0.2, seed=4)
    key = lambda s: (s.label, float(s.times[0] / second), len(s.units))  # noqa: E731
    train, val = {key(s) for s in a.train.samples}, {key(s) for s in a.val.samples}
    assert not train & val and len(a.val) == 40 and len(a.train) == 160
    assert np.bincount(a.val.labels).tolist() == [8] * 5
    assert [key(s) for s in a.val.samples] == [key(s) for s in b.val.samples]
    assert [key(s) for s in a.val.samples] != [key(s) for s in c.val.samples]


def test_synthetic_set_is_deterministic_and_shd_shaped():
    config = SyntheticConfig(n_train=40, n_test=10)
    (a, _), (b, _) = make_synthetic(config), make_synthetic(config)
    assert a.n_channels == 700 and a.n_classes == 20 and float(a.duration / second) == 1.0
    np.testing.assert_array_equal(a.samples[5].units, b.samples[5].units)
    spikes = np.mean([len(s.units) for s in a.samples])
    assert 3000 < spikes < 6000  # SHD carries thousands of spikes per sample


@pytest.mark.slow
def test_synthetic_class_information_lies_in_timing():
    """A logistic readout of per-channel counts sits near chance; with 10 time bins it is far above."""
    from sklearn.linear_model import LogisticRegression

    config = SyntheticConfig(n_channels=100, n_classes=5, n_train=300, n_test=150)
    train, test = make_synthetic(config)
    scores = []
    for bins in (1, 10):
        x_train = spike_counts(train.samples, 100, bins)
        x_test = spike_counts(test.samples, 100, bins)
        model = LogisticRegression(C=0.1, max_iter=2000).fit(x_train, train.labels)
        scores.append(model.score(x_test, test.labels))
    assert scores[0] < 0.35, f"counts alone should sit near chance (0.2), got {scores[0]}"
    assert scores[1] > scores[0] + 0.4, f"timing should add much: {scores}"


def test_every_seed_is_tested_on_the_same_test_samples():
    from datasets import load_splits

    first, second = (load_splits("synthetic_bursts", n_train=60, n_test=20, seed=s) for s in (0, 1))
    assert [s.units.tolist() for s in first.test.samples] == [s.units.tolist() for s in second.test.samples]
    assert first.test.labels.tolist() == second.test.labels.tolist()
    # while the training subsets and validation splits follow the seed
    assert first.val.labels.tolist() != second.val.labels.tolist() or \
        [s.units.tolist() for s in first.train.samples] != [s.units.tolist() for s in second.train.samples]
