"""job.py: the job envelope's data structures, round trips, and the JSON Schema."""

from __future__ import annotations

import json
import re
from datetime import UTC
from typing import Any

import jsonschema
import pytest

from infomux._version import __version__
from infomux.job import (
    SCHEMA_PATH,
    InputFile,
    JobEnvelope,
    JobStatus,
    StepRecord,
    StepStatus,
    host_info,
    parse_time,
    utc_now,
)

SHA = "ab" * 32


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(data: dict[str, Any]) -> None:
    jsonschema.validate(
        data, schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def make_job(**config: Any) -> JobEnvelope:
    return JobEnvelope.new(
        "run-20250131-120000-abc123",
        InputFile(path="/media/talk.mp4", sha256=SHA, size_bytes=1234),
        pipeline="transcribe",
        steps=["extract_audio", "transcribe"],
        config={"pipeline": "transcribe", **config},
    )


def test_schema_is_valid_draft_2020_12() -> None:
    data = schema()
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(data)


def test_new_job_is_pending_and_valid() -> None:
    job = make_job(model=None, threads=2, formats=["txt"], vad=False, word_timestamps=False)
    assert job.status == JobStatus.PENDING
    assert [s.name for s in job.steps] == ["extract_audio", "transcribe"]
    assert all(s.status == StepStatus.PENDING for s in job.steps)
    assert job.created_at == job.updated_at
    assert job.infomux_version == __version__
    assert job.host["pid"] > 0 and job.host["hostname"]
    assert job.history[0]["event"] == "created"
    validate(job.to_dict())


def test_envelope_keys() -> None:
    data = make_job().to_dict()
    for key in (
        "id",
        "created_at",
        "updated_at",
        "status",
        "input",
        "steps",
        "artifacts",
        "config",
        "error",
    ):
        assert key in data
    assert set(data["input"]) == {"path", "sha256", "size_bytes"}
    step = data["steps"][0]
    for key in (
        "name",
        "status",
        "started_at",
        "completed_at",
        "duration_seconds",
        "error",
        "outputs",
        "metadata",
        "attempts",
    ):
        assert key in step


def full_job() -> JobEnvelope:
    job = make_job(model="tiny.en", language="en", threads=2, formats=["txt", "json"])
    job.status = JobStatus.FAILED
    extract, transcribe = job.steps
    extract.status = StepStatus.COMPLETED
    extract.started_at, extract.completed_at = utc_now(), utc_now()
    extract.duration_seconds = 0.25
    extract.outputs = ["audio.wav"]
    extract.metadata = {"samples": 16000}
    transcribe.status = StepStatus.FAILED
    transcribe.started_at, transcribe.completed_at = utc_now(), utc_now()
    transcribe.duration_seconds = 0.01
    transcribe.error = "model not found"
    job.error = "transcribe: model not found"
    job.add_artifacts(["audio.wav", "audio.wav"])
    job.model = {"name": "tiny.en", "path": "/m/ggml.bin", "sha256": SHA, "size_bytes": 10}
    job.options = {"language": "en", "n_threads": 2}
    job.audio = {
        "sample_rate": 44100,
        "channels": 2,
        "decoded_duration": 11.5,
        "pyav_version": "18.1.0",
        "ffmpeg_version": "8.1",
    }
    job.environment.update(pyav="18.1.0", ffmpeg="8.1", engine={"whisper_cpp": "1.7"})
    return job


def test_round_trip_is_exact() -> None:
    job = full_job()
    data = job.to_dict()
    again = JobEnvelope.from_dict(json.loads(json.dumps(data)))
    assert again == job
    assert again.to_dict() == data
    assert job.artifacts == ["audio.wav"]
    validate(data)


def test_archive_attempt_keeps_history() -> None:
    record = StepRecord(name="transcribe")
    record.archive_attempt()  # never started: nothing to archive
    assert record.attempts == []
    record.status = StepStatus.FAILED
    record.started_at = record.completed_at = utc_now()
    record.duration_seconds = 0.5
    record.error = "boom"
    record.archive_attempt()
    assert record.status == StepStatus.PENDING and record.error is None
    assert record.started_at is None and record.duration_seconds is None
    assert len(record.attempts) == 1
    assert record.attempts[0].status == StepStatus.FAILED
    assert record.attempts[0].error == "boom"
    again = StepRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record


def test_timestamps_are_iso_utc() -> None:
    stamp = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert parse_time(stamp).tzinfo is not None
    assert parse_time(stamp).utcoffset() == UTC.utcoffset(None)


def test_host_info() -> None:
    info = host_info()
    assert {"hostname", "pid", "os", "cpu_count", "python_version"} <= set(info)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(status="done"),
        lambda d: d.update(id="../etc"),
        lambda d: d["input"].update(sha256="xyz"),
        lambda d: d["steps"][0].update(status="weird"),
        lambda d: d.pop("config"),
        lambda d: d.update(surprise=1),
        lambda d: d.update(artifacts=["../outside.txt"]),
        lambda d: d.update(status="failed", error=None),
    ],
)
def test_schema_rejects_malformed_jobs(mutate: Any) -> None:
    data = full_job().to_dict()
    data["status"] = "completed"
    data["error"] = None
    mutate(data)
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


def test_from_dict_rejects_malformed() -> None:
    with pytest.raises(ValueError):
        JobEnvelope.from_dict({"id": "x"})
    data = make_job().to_dict()
    data["status"] = "nonsense"
    with pytest.raises(ValueError):
        JobEnvelope.from_dict(data)
