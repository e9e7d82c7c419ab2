"""Refusing a zip that lists 1,000,000 entries: the intake policy against plain ``zipfile``.

``grader.grading.intake.open_archive`` reads the count from the end-of-central-directory record
(and its ZIP64 twin) before the directory; ``zipfile.ZipFile`` parses the whole directory first,
which is what the server and ``grader check`` did before (then counted the members). Both run in
this process on the same in-memory archive (47 MB of directory); the script prints wall time,
CPU time and the peak of Python allocations for each, and their ratio.

    uv run python benchmarks/bench_intake.py
"""

from __future__ import annotations

import io
import os
import platform
import struct
import time
import tracemalloc
import zipfile

from grader.grading.intake import IntakeError, IntakeLimits, open_archive

ENTRIES = 1_000_000


def listing_zip(entries: int) -> bytes:
    """A zip whose central directory lists ``entries`` copies of one stored empty member."""
    name = b"a"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0,
                          len(name), 0, 0, 0, 0, 0o100644 << 16, 0) + name  # fmt: skip
    directory = central * entries
    offset, record_at = len(local), len(local) + len(directory)
    tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries,
                       len(directory), offset)  # fmt: skip
    tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + directory + tail


def measure(label: str, refuse) -> tuple[float, float, int]:
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = refuse()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:28s} {wall * 1000:9.1f} ms wall {cpu * 1000:9.1f} ms CPU "
          f"{peak / 1e6:8.2f} MB peak   {outcome}")  # fmt: skip
    return wall, cpu, peak


def main() -> None:
    content = listing_zip(ENTRIES)
    limits = IntakeLimits()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"archive {len(content) / 1e6:.1f} MB listing {ENTRIES:,} entries")  # fmt: skip

    def ours() -> str:
        try:
            open_archive(io.BytesIO(content), limits)
        except IntakeError as exc:
            return f"refused: {str(exc)[:50]}..."
        return "accepted"

    def plain() -> str:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = len(archive.infolist())
        return f"parsed {members:,} members, then refused by count"

    ours_wall, ours_cpu, ours_peak = measure("intake.open_archive", ours)
    plain_wall, plain_cpu, plain_peak = measure("zipfile.ZipFile (before)", plain)
    print(f"ratio before/intake: {plain_wall / ours_wall:,.0f}x wall, "
          f"{plain_peak / max(ours_peak, 1):,.0f}x peak memory")  # fmt: skip


if __name__ == "__main__":
    main()
