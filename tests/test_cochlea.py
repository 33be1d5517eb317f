"""The audio front end: tonotopy, silence, loudness, the SHD layout through tonic, real recordings."""

from pathlib import Path

import numpy as np
import pytest
from brian2 import Hz, kHz

from datasets import load_splits
from datasets.cochlea import CochleaParams, audio_to_spikes, centre_frequencies, main as cochlea_main
from datasets.fsdd import load_fsdd

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
PARAMS = CochleaParams(n_channels=100)
RATE = 16 * kHz


def _tone(frequency, amplitude=0.1, seconds=0.3):
    t = np.arange(int(seconds * 16000)) / 16000
    return amplitude * np.sin(2 * np.pi * frequency * t)


def _channel_counts(audio, params=PARAMS):
    units, _ = audio_to_spikes(audio, RATE, params)
    return np.bincount(units, minlength=params.n_channels)


def test_tone_drives_the_channels_tuned_near_it():
    frequencies = [200, 500, 1000, 2000, 4000]
    peaks = [int(np.argmax(_channel_counts(_tone(f)))) for f in frequencies]
    # channel 0 is the highest frequency, as in SHD
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == len(peaks), f"most active channel must fall with frequency: {peaks}"
    cf = np.asarray(centre_frequencies(PARAMS) / Hz)
    for f, peak in zip(frequencies, peaks):
        assert abs(np.log2(cf[peak] / f)) < 0.5, f"{f} Hz peaked in the channel tuned to {cf[peak]:.0f} Hz"


def test_silence_gives_no_spikes_and_louder_gives_more():
    assert _channel_counts(np.zeros(8000)).sum() == 0
    quiet, loud = _channel_counts(_tone(1000, 0.01)).sum(), _channel_counts(_tone(1000, 0.1)).sum()
    assert loud > quiet > 0


@pytest.mark.skipif(not FSDD.is_dir(), reason="the shared FSDD recordings are not beside the repository")
def test_real_recordings_convert_and_round_trip_through_tonic(tmp_path, monkeypatch):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for digit in (1, 7):
        for speaker in ("george", "theo"):
            for index in (0, 5, 6):  # index 0 is test, the others training
                name = f"{digit}_{speaker}_{index}.wav"
                (folder / name).symlink_to(FSDD / name)
    monkeypatch.setenv("SNN_DATA_DIR", str(tmp_path / "data"))
    train, test = load_fsdd(folder, workers=2)
    assert len(train) == 8 and len(test) == 4 and train.n_channels == 700
    assert sorted({s.label for s in test.samples}) == [1, 7] and train.class_names[7] == "seven"
    spikes = [len(s.units) for s in train.samples + test.samples]
    assert min(spikes) > 100 and np.median(spikes) > 1000, f"real speech must give SHD-like spike counts: {spikes}"
    # a second load reads the cache (no conversion), through the SHD reader
    monkeypatch.setattr("datasets.fsdd.convert_files", lambda *a, **k: pytest.fail("converted again"))
    again, _ = load_fsdd(folder)
    np.testing.assert_array_equal(again.samples[0].units, train.samples[0].units)
    splits = load_splits("fsdd", folder, n_train=8)
    assert splits.dataset == "fsdd" and len(splits.test) == 4


def test_command_line_converts_a_folder(tmp_path):
    from scipy.io import wavfile

    folder = tmp_path / "wavs"
    folder.mkdir()
    for label, f in (("low", 300), ("high", 3000)):
        wavfile.write(folder / f"{label}_anna_0.wav", 16000, (_tone(f) * 32767).astype(np.int16))
    out = cochlea_main([str(folder), str(tmp_path / "out.h5"), "--n-channels", "64", "--workers", "1"])
    import h5py

    with h5py.File(out) as f:
        assert [k.decode() for k in f["extra/keys"][:]] == ["high", "low"]
        units = f["spikes/units"]
        high, low = np.median(units[0]), np.median(units[1])
        assert high < low and f["spikes/times"][0].dtype == np.float16  # high frequencies in low channels


def test_missing_recordings_name_where_they_were_expected(tmp_path, monkeypatch):
    from datasets import DatasetUnavailableError

    import datasets.fsdd

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.delenv("FSDD_DIR", raising=False)
    monkeypatch.setattr(datasets.fsdd, "urlopen", offline)
    with pytest.raises(DatasetUnavailableError, match="FSDD recordings were not found"):
        load_fsdd(tmp_path)


def test_command_line_bad_recordings_exit_with_status_1(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    folder = tmp_path / "wavs"
    folder.mkdir()
    (folder / "low_anna_0.wav").write_bytes(b"not a wav file")
    result = subprocess.run([sys.executable, "-m", "datasets.cochlea", str(folder), str(tmp_path / "out.h5"),
                             "--workers", "1"], capture_output=True, text=True, timeout=300, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "error:" in result.stderr and "low_anna_0.wav" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.h5").exists()
