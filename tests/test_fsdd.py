"""FSDD as a first-class dataset: the pinned download (faked, no network), the per-recording cache
with bad files, and the speaker-independent split. Fake files in the real layouts, built here."""

import io
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from brian2 import second
from scipy.io import wavfile

from datasets import DatasetUnavailableError, SpikeSample, load_splits
from datasets.cochlea import CochleaParams
from datasets.fsdd import (PINNED, PINNED_COMMIT, FSDDSource, default_recordings_dir, find_or_download,
                           load_fsdd, recordings_digest)
from datasets.heidelberg import write_shd_layout

# The reference copy the pinned digest was computed from (beside the main checkout).
LOCAL = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings",
                          Path("/work/shared/data/fsdd/recordings")) if p.is_dir()), None)
SMALL = CochleaParams(n_channels=16)
TOP = f"free-spoken-digit-dataset-{PINNED_COMMIT}"


def _wav_bytes(frequency, seconds=0.15, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype(np.int16))
    return buffer.getvalue()


def _recordings(speakers=("anna", "bob"), digits=(1, 7), indices=(0, 5)):
    return {f"{d}_{s}_{i}.wav": _wav_bytes(300 + 200 * d + 50 * i + 10 * k)
            for k, s in enumerate(speakers) for d in digits for i in indices}


def _tar(files: dict[str, bytes], extra_members=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in list(files.items()) + list(extra_members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{TOP}/recordings/9_anna_9.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


def _source(tmp_path, files, speakers=("anna", "bob")) -> FSDDSource:
    reference = tmp_path / "reference"
    reference.mkdir()
    for name, data in files.items():
        (reference / name).write_bytes(data)
    n, digest = recordings_digest(reference, speakers)
    return FSDDSource(url="https://example.invalid/fsdd/archive/abc.tar.gz", min_files=n, speakers=speakers,
                      digest=digest)


def _serve(monkeypatch, payload: bytes | Exception):
    asked = []

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr("datasets.fsdd.urlopen", fake_urlopen)
    monkeypatch.delenv("FSDD_DIR", raising=False)
    return asked


@pytest.mark.skipif(LOCAL is None, reason="the shared FSDD reference copy is not here")
def test_pinned_digest_matches_the_local_copy():
    n, digest = recordings_digest(LOCAL, PINNED.speakers)
    assert n == 2500 and n >= PINNED.min_files
    assert digest == PINNED.digest
    assert PINNED_COMMIT in PINNED.url and PINNED.url.endswith(".tar.gz")


def test_digest_depends_on_content_and_names(tmp_path):
    files = _recordings()
    source = _source(tmp_path, files)
    (tmp_path / "reference" / "1_anna_0.wav").write_bytes(files["1_anna_5.wav"])
    assert recordings_digest(tmp_path / "reference", source.speakers)[1] != source.digest
    # a speaker outside the manifest does not change it
    (tmp_path / "reference" / "1_anna_0.wav").write_bytes(files["1_anna_0.wav"])
    (tmp_path / "reference" / "3_carl_0.wav").write_bytes(b"anything")
    assert recordings_digest(tmp_path / "reference", source.speakers) == (8, source.digest)


def test_download_extracts_only_the_recordings_safely(tmp_path, monkeypatch):
    files = _recordings()
    source = _source(tmp_path, files)
    hostile = [(f"{TOP}/README.md", b"readme"), ("../0_evil_0.wav", b"x"), (f"{TOP}/recordings/../../0_evil_1.wav", b"x"),
               ("/tmp/0_evil_2.wav", b"x"), (f"{TOP}/recordings/sub/0_evil_3.wav", b"x")]
    asked = _serve(monkeypatch, _tar({f"{TOP}/recordings/{n}": d for n, d in files.items()}, hostile))
    data = tmp_path / "data"
    folder = find_or_download(data, source)
    assert asked == [source.url]
    assert folder == default_recordings_dir(data) == data / "fsdd" / "recordings"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert all((folder / n).read_bytes() == d for n, d in files.items())
    assert not list(tmp_path.rglob("*evil*")) and not Path("/tmp/0_evil_2.wav").exists()
    assert sorted(p.name for p in (data / "fsdd").iterdir()) == ["recordings"]  # no staging left behind
    # found the second time, not downloaded again
    assert find_or_download(data, source) == folder and len(asked) == 1


def test_tampered_download_fails_its_checksum_and_leaves_nothing(tmp_path, monkeypatch):
    files = _recordings()
    source = _source(tmp_path, files)
    tampered = dict(files, **{"7_bob_5.wav": files["7_bob_5.wav"][:-2] + b"\0\0"})
    _serve(monkeypatch, _tar({f"{TOP}/recordings/{n}": d for n, d in tampered.items()}))
    with pytest.raises(DatasetUnavailableError, match=r"fail their checksum.*8 files of anna, bob.*expected "
                                                      + source.digest):
        find_or_download(tmp_path / "data", source)
    assert not (tmp_path / "data" / "fsdd" / "recordings").exists()
    assert list((tmp_path / "data" / "fsdd").iterdir()) == []
    # too few files
    _serve(monkeypatch, _tar({f"{TOP}/recordings/{n}": d for n, d in list(files.items())[:5]}))
    with pytest.raises(DatasetUnavailableError, match="held 5 recordings, expected at least 8"):
        find_or_download(tmp_path / "data", source)


def test_offline_gives_one_clear_error(tmp_path, monkeypatch):
    _serve(monkeypatch, URLError("no network"))
    target = tmp_path / "data" / "fsdd" / "recordings"
    with pytest.raises(DatasetUnavailableError) as info:
        load_fsdd(tmp_path / "data")
    message = str(info.value)
    for part in (PINNED.url, str(target), "--data-dir", "$FSDD_DIR", "recordings/*.wav", "no network",
                 "not found"):
        assert part in message, f"{part!r} missing from: {message}"
    assert not target.exists()


def test_bad_recordings_are_named_and_the_rerun_converts_only_what_is_missing(tmp_path, monkeypatch):
    import datasets.fsdd

    monkeypatch.delenv("FSDD_DIR", raising=False)
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, data in _recordings(speakers=("anna", "bob", "carl")).items():
        (folder / name).write_bytes(data)
    (folder / "3_anna_6.wav").write_bytes(b"this is not a wav file at all")
    (folder / "3_bob_6.wav").write_bytes(b"")
    empty = io.BytesIO()
    wavfile.write(empty, 8000, np.zeros(0, dtype=np.int16))
    (folder / "3_carl_6.wav").write_bytes(empty.getvalue())

    converted = []
    real = datasets.fsdd.convert_files

    def counting(paths, *args, **kwargs):
        converted.append(sorted(Path(p).name for p in paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr("datasets.fsdd.convert_files", counting)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetUnavailableError) as info:
        load_fsdd(folder, SMALL, workers=1, cache=cache)
    message = str(info.value)
    assert "3 recording(s) could not be converted" in message
    assert "3_anna_6.wav (ValueError: File format" in message
    assert "3_bob_6.wav (ValueError: File format b'' not understood" in message
    assert "3_carl_6.wav (ValueError: the wav file holds no samples)" in message
    assert "12 recordings converted are cached" in message
    assert len(converted[0]) == 15

    for name in ("3_anna_6.wav", "3_bob_6.wav", "3_carl_6.wav"):
        (folder / name).unlink()
    train, test = load_fsdd(folder, SMALL, workers=1, cache=cache)
    assert converted[1:] == []  # everything came from the per-recording cache
    assert len(train) == 6 and len(test) == 6 and train.speaker_names == ["anna", "bob", "carl"]
    assert train.n_channels == 16

    (folder / "1_anna_5.wav").write_bytes(_wav_bytes(2500))  # changed
    (folder / "7_carl_8.wav").write_bytes(_wav_bytes(900))  # new
    train, _ = load_fsdd(folder, SMALL, workers=1, cache=cache)
    assert converted[1:] == [["1_anna_5.wav", "7_carl_8.wav"]]
    assert len(train) == 7
    # a torn cache entry is converted again, not trusted
    entry = next((cache / "files").rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:20])
    (folder / "7_carl_8.wav").unlink()
    load_fsdd(folder, SMALL, workers=1, cache=cache)
    assert len(converted) == 3 and len(converted[2]) == 1


def _fake_speaker_set(root, names=("george", "lucas", "theo"), stored_names=True):
    rng = np.random.default_rng(0)
    parts = {}
    for split, n in (("train", 60), ("test", 15)):
        samples = []
        for i in range(n):
            times = np.sort(rng.uniform(0, 0.9, 40))
            samples.append(SpikeSample(rng.integers(0, 700, 40), times * second, i % 4, (i // 4) % len(names)))
        extra = {"speaker_names": np.array([s.encode() for s in names])} if stored_names else None
        write_shd_layout(root / "SHD" / f"shd_{split}.h5", samples, ["a", "b", "c", "d"], extra)
        parts[split] = samples
    return parts


@pytest.mark.parametrize("held_out", [("theo",), ("george", "theo")])
def test_speaker_split_never_tests_on_a_training_speaker(tmp_path, held_out):
    parts = _fake_speaker_set(tmp_path)
    splits = load_splits("shd", tmp_path, split="speaker", test_speakers=held_out)
    names = splits.train.speaker_names
    assert names == ["george", "lucas", "theo"]
    test_ids = {names.index(s) for s in held_out}
    assert {s.speaker for s in splits.test.samples} == test_ids
    assert not {s.speaker for s in splits.train.samples + splits.val.samples} & test_ids
    everything = parts["train"] + parts["test"]
    assert len(splits.test) == sum(s.speaker in test_ids for s in everything)
    assert len(splits.train) + len(splits.val) == len(everything) - len(splits.test)
    assert splits.split == "speaker" and splits.test_speakers == held_out


def test_official_split_is_unchanged_and_recorded(tmp_path):
    parts = _fake_speaker_set(tmp_path)
    default, official = load_splits("shd", tmp_path), load_splits("shd", tmp_path, split="official")
    assert default.split == official.split == "official" and default.test_speakers == ()
    assert len(official.test) == len(parts["test"])
    assert len(official.train) + len(official.val) == len(parts["train"])
    for a, b in zip(default.test.samples + default.val.samples, official.test.samples + official.val.samples):
        np.testing.assert_array_equal(a.units, b.units)
    speaker = load_splits("shd", tmp_path, split="speaker")  # default held-out speaker
    assert speaker.test_speakers == ("theo",)


def test_speaker_split_errors_are_clear(tmp_path):
    _fake_speaker_set(tmp_path)
    with pytest.raises(ValueError, match=r"unknown test speaker\(s\) 'zed'.*george, lucas, theo"):
        load_splits("shd", tmp_path, split="speaker", test_speakers=("theo", "zed"))
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        load_splits("shd", tmp_path, split="speaker", test_speakers=("george", "lucas", "theo"))
    with pytest.raises(ValueError, match="unknown split 'by-age'"):
        load_splits("shd", tmp_path, split="by-age")
    with pytest.raises(ValueError, match="only used with split='speaker'"):
        load_splits("shd", tmp_path, test_speakers="theo")
    with pytest.raises(ValueError, match="no speaker information"):
        load_splits("synthetic", split="speaker")


def test_speaker_ids_serve_as_names_where_files_store_none(tmp_path):
    _fake_speaker_set(tmp_path, stored_names=False)
    splits = load_splits("shd", tmp_path, split="speaker", test_speakers="1")
    assert {s.speaker for s in splits.test.samples} == {1} and splits.test_speakers == ("1",)
    with pytest.raises(ValueError, match="its speakers are 0, 1, 2"):
        load_splits("shd", tmp_path, split="speaker")


def test_speaker_ids_span_both_parts(tmp_path):
    # SHD's test part holds speakers its training part lacks
    rng = np.random.default_rng(1)
    for split, speakers in (("train", [0, 1]), ("test", [1, 2])):
        samples = [SpikeSample(rng.integers(0, 700, 20), np.sort(rng.uniform(0, 0.9, 20)) * second, i % 2,
                               speakers[i % 2]) for i in range(12)]
        write_shd_layout(tmp_path / "SHD" / f"shd_{split}.h5", samples, ["a", "b"])
    splits = load_splits("shd", tmp_path, split="speaker", test_speakers="2")
    assert len(splits.test) == 6 and {s.speaker for s in splits.test.samples} == {2}
    assert len(splits.train) + len(splits.val) == 18


def test_the_split_is_an_option_of_every_study_and_recorded_in_its_results(tmp_path):
    import xarray as xr

    from studies import counts_shd

    parts = _fake_speaker_set(tmp_path / "data")
    path = counts_shd.main(["--dataset", "shd", "--data-dir", str(tmp_path / "data"), "--split", "speaker",
                            "--test-speakers", "lucas", "--n-bins", "1", "--out", str(tmp_path / "out")])
    ds = xr.load_dataset(path)
    assert ds.attrs["split"] == "speaker" and ds.attrs["test_speakers"] == "lucas"
    lucas = sum(s.speaker == 1 for s in parts["train"] + parts["test"])
    assert ds.attrs["n_test"] == lucas  # every sample of lucas, from both official parts
    with pytest.raises(ValueError, match="--test-speakers goes with --split speaker"):
        counts_shd.main(["--dataset", "shd", "--data-dir", str(tmp_path / "data"), "--test-speakers", "lucas",
                         "--out", str(tmp_path / "out")])
