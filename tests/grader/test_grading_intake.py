"""The one intake policy: zips checked from their end records before the directory is read, the
one set of limits, and staging under checked names (for ``grader check`` and the server alike)."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from grader.grading.intake import (
    IntakeError,
    IntakeLimits,
    check_directory,
    open_archive,
    stage_files,
    unpack_archive,
)
from leaderboard.uploads import Upload, UploadError, gather_files


def listing_zip(entries: int, *, claimed: int | None = None) -> bytes:
    """A zip whose central directory lists ``entries`` members (all one stored empty file), as
    an attacker writes it: a ZIP64 end record when the count needs it; ``claimed`` puts another
    count in the end records."""
    name = b"a"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0,
                          len(name), 0, 0, 0, 0, 0o100644 << 16, 0) + name  # fmt: skip
    directory = central * entries
    count = entries if claimed is None else claimed
    offset = len(local)
    tail = b""
    if count > 0xFFFF:
        record_at = offset + len(directory)
        tail += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                            len(directory), offset)  # fmt: skip
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                            0xFFFFFFFF, 0)  # fmt: skip
    else:
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory),
                            offset, 0)  # fmt: skip
    return local + directory + tail


class CountingReader(io.BytesIO):
    """A stream that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_a_million_entry_listing_is_refused_from_the_end_record_alone():
    content = listing_zip(1_000_000)
    assert len(content) > 40_000_000  # the directory really is there
    stream = CountingReader(content)
    tracemalloc.start()
    with pytest.raises(IntakeError, match="^the archive lists 1,000,000 entries, over the limit"):
        open_archive(stream, IntakeLimits())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stream.read_bytes < 70_000  # the last 64 KiB + the ZIP64 records, not the directory
    assert peak < 1_000_000


def test_a_directory_that_holds_more_than_its_record_says_is_stopped_at_the_limit():
    lying = CountingReader(listing_zip(1_000, claimed=10))
    limits = IntakeLimits(max_archive_members=100)
    with pytest.raises(IntakeError, match="holds more than 100 entries"):
        check_directory(lying, limits)
    huge = listing_zip(500_000, claimed=10)  # 23.5 MB of directory behind a record saying 10
    with pytest.raises(IntakeError, match="directory is 23,500,000 bytes, over the limit"):
        check_directory(CountingReader(huge), IntakeLimits())
    honest = listing_zip(100)
    assert check_directory(io.BytesIO(honest), limits) == 100
    with open_archive(io.BytesIO(honest), limits) as archive:
        assert len(archive.infolist()) == 100


def test_real_zips_pass_and_broken_ones_say_so(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("hw/predictions.csv", "Id,Category\n0,3\n")
        archive.writestr("hw/", "")
        archive.writestr("__MACOSX/hw/._predictions.csv", "junk")
        archive.comment = b"x" * 300  # the end record is no longer the last 22 bytes
    (tmp_path / "hw.zip").write_bytes(buffer.getvalue())
    assert unpack_archive(tmp_path / "hw.zip", tmp_path / "out", IntakeLimits()) == []
    assert (tmp_path / "out" / "hw" / "predictions.csv").read_text() == "Id,Category\n0,3\n"
    assert not (tmp_path / "out" / "__MACOSX").exists()
    for broken in (b"", b"PK\x03\x04 not a zip", buffer.getvalue()[:-400]):
        (tmp_path / "b.zip").write_bytes(broken)
        (problem,) = unpack_archive(tmp_path / "b.zip", tmp_path / "b", IntakeLimits())
        assert problem.startswith("not a valid .zip archive"), problem


def test_the_server_refuses_the_same_archives_with_the_same_policy():
    million = Upload("model.zip", listing_zip(1_000_000))
    with pytest.raises(UploadError, match="lists 1,000,000 entries"):
        gather_files([million], limit=8_000_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sub/model.py", "x = 1\n")
        archive.writestr("sub/model.pt", b"w")
    files = gather_files([Upload("m.zip", buffer.getvalue())], limit=1000)
    assert files == {"model.py": b"x = 1\n", "model.pt": b"w"}


def test_staging_writes_only_checked_relative_names(tmp_path):
    source = tmp_path / "w.pt"
    source.write_bytes(b"weights")
    staged = stage_files(
        {"model.py": b"x = 1\n", "utils/nn.py": b"", "model.pt": source},
        tmp_path / "stage",
        limits=IntakeLimits(),
    )
    assert sorted(f.name for f in staged) == ["model.pt", "model.py", "utils/nn.py"]
    assert (tmp_path / "stage" / "utils" / "nn.py").is_file()
    for index, bad in enumerate(("../evil.py", "/abs.py", "a/../../b.py", "C:evil.py", "a\x00.py")):
        with pytest.raises(IntakeError, match="not a plain relative file name"):
            stage_files({bad: b""}, tmp_path / f"bad{index}", limits=IntakeLimits())
    with pytest.raises(IntakeError, match="over the limit of 4 bytes"):
        stage_files({"model.py": b"12345"}, tmp_path / "small",
                    limits=IntakeLimits(max_file_bytes=4))  # fmt: skip
    link = tmp_path / "link.pt"
    link.symlink_to(source)
    with pytest.raises(IntakeError, match="symbolic link"):
        stage_files({"model.pt": link}, tmp_path / "linked", limits=IntakeLimits())
    assert not Path(tmp_path / "evil.py").exists()
