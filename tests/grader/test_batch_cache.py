"""The batch's result cache: records written in packs, read back by the next run."""

from __future__ import annotations

import json

from grader.batch.cache import MAX_PACKS, Cached, ResultCache
from grader.grading.grade import Grade
from grader.grading.status import GradeStatus, SubmissionKind


def _result(student: str, accuracy: float, status: str = "ok") -> Cached:
    grade = Grade(
        GradeStatus(status),
        SubmissionKind.PREDICTIONS,
        message=student,
        scores={"public": {"accuracy": accuracy}},
    )
    return Cached(grade, experiment_plots=[f"{student}.png"])


def _accuracy(cached: Cached) -> float:
    return cached.grade.scores["public"]["accuracy"]


def test_records_reach_the_next_run_in_one_pack(tmp_path):
    cache = ResultCache(tmp_path)
    for i in range(300):
        cache.put(f"key{i}", _result(f"s{i}", i / 300))
    assert _accuracy(cache.get("key7")) == 7 / 300  # this run's twin finds it
    assert "key7" not in cache.preexisting
    cache.close()
    assert len(list(tmp_path.glob("pack-*.jsonl"))) == 1 and not list(tmp_path.glob("*.json"))
    later = ResultCache(tmp_path)
    assert len(later.preexisting) == 300
    again = later.get("key7")
    assert _accuracy(again) == 7 / 300 and again.grade.message == "s7"
    assert again.experiment_plots == ["s7.png"]


def test_errors_are_not_cached_and_foreign_records_are_misses(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put("broken", _result("a", 0.5, status="error"))  # may be transient: graded again
    cache.close()
    (tmp_path / "single.json").write_text(json.dumps(_result("b", 0.25).to_record()))
    (tmp_path / "foreign.json").write_text(json.dumps({"no": "such fields"}))
    (tmp_path / "pack-0-half.tmp").write_text("key\t{")  # an interrupted write is never read
    later = ResultCache(tmp_path)
    assert later.get("broken") is None and later.get("foreign") is None
    assert _accuracy(later.get("single")) == 0.25  # one file per record is read too


def test_a_slow_batch_flushes_as_it_goes_and_packs_are_merged(tmp_path):
    cache = ResultCache(tmp_path, flush_every_s=0.0)  # every record is flushed at once
    for i in range(MAX_PACKS + 3):
        cache.put(f"key{i}", _result(f"s{i}", 0.5))
    assert len(list(tmp_path.glob("pack-*.jsonl"))) == MAX_PACKS + 3  # a crash now loses none
    cache.close()
    packs = list(tmp_path.glob("pack-*.jsonl"))
    assert len(packs) == 1 and len(packs[0].read_text().splitlines()) == MAX_PACKS + 3
    assert len(ResultCache(tmp_path).preexisting) == MAX_PACKS + 3
