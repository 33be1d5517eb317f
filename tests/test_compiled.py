"""The engine's watch on the simulator binary it runs (models/engine/compiled.py)."""

import os
import subprocess
import sys

from models.engine import compiled


def test_the_binary_watch_scans_for_the_binary_once_and_records_its_peak_memory(tmp_path, monkeypatch):
    # A child named like the simulator binary that holds 64 MiB for a second.
    binary = tmp_path / compiled.BINARY_NAME
    binary.symlink_to(os.path.realpath(sys.executable))
    code = "x = bytearray(64 * 2 ** 20); x[::4096] = b'1' * len(x[::4096]); import time; time.sleep(1.0)"
    scan, found = compiled.simulator_processes, []

    def counted_scan():
        children = list(scan())
        found.append(len(children))
        return children

    monkeypatch.setattr(compiled, "simulator_processes", counted_scan)
    with compiled._PeakChildMemory() as watch:
        subprocess.run([str(binary), "-c", code], check=True)
    assert watch.peak_mib > 64, f"peak {watch.peak_mib:.1f} MiB of a binary that held 64 MiB"
    # Scanning every process on the machine at every poll took a core's time from the binary:
    # once found, only the binary itself is read (about 100 polls in that second).
    assert found.count(1) == 1, f"the binary was scanned for {found.count(1)} times while it ran"
