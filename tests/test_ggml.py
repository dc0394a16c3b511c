"""Tests for infomux.ggml: validating whisper.cpp model files before whisper.cpp sees them."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from infomux import ggml
from infomux.errors import ModelError, ModelNotFoundError
from tests.require import media_file
from tests.timing import best_seconds


@pytest.fixture(scope="module")
def stub_dir(whisper_cpp_dir: Path) -> Path:
    """whisper.cpp's models/ directory with the weightless for-tests-ggml-*.bin files."""
    return whisper_cpp_dir / "models"


@pytest.fixture
def tiny_stub(stub_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ggml-tiny.en.bin"
    shutil.copyfile(stub_dir / "for-tests-ggml-tiny.en.bin", dst)
    return dst


# --- a small but complete synthetic model -----------------------------------

SMALL = dict(
    n_vocab=51864,
    n_audio_ctx=6,
    n_audio_state=32,
    n_audio_head=2,
    n_audio_layer=1,
    n_text_ctx=5,
    n_text_state=32,
    n_text_head=2,
    n_text_layer=1,
    n_mels=4,
    ftype=1,
)


def _tensor_record(name: str, ne: tuple[int, ...], type_id: int) -> bytes:
    n = 1
    for d in ne:
        n *= d
    raw = name.encode()
    head = struct.pack(f"<3i{len(ne)}i", len(ne), len(raw), type_id, *ne) + raw
    nbytes = ggml.type_nbytes(type_id, n) if type_id in ggml.BLOCK_LAYOUT else 4 * n
    return head + b"\x11" * nbytes


def build_model(
    hp: dict[str, int] | None = None,
    *,
    tensors: list[tuple[str, tuple[int, ...], int]] | None = None,
    n_mel: int | None = None,
    tokens: list[bytes] | None = None,
) -> bytes:
    """A ggml whisper file; by default with every tensor whisper.cpp expects."""
    hp = {**SMALL, **(hp or {})}
    header = ggml.GgmlHeader(**hp)
    if tensors is None:
        tensors = [(name, ne, t) for name, (ne, t) in ggml.expected_tensors(header).items()]
    n_mel = hp["n_mels"] if n_mel is None else n_mel
    tokens = [b"!", b"hello", b" world"] if tokens is None else tokens
    out = [struct.pack("<I11i", ggml.GGML_MAGIC, *hp.values())]
    out.append(struct.pack("<2i", n_mel, 5) + b"\0" * (4 * n_mel * 5))
    out.append(struct.pack("<i", len(tokens)))
    out += [struct.pack("<i", len(t)) + t for t in tokens]
    out += [_tensor_record(*t) for t in tensors]
    return b"".join(out)


def write(tmp_path: Path, data: bytes, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_error(path: Path, *fragments: str, cls: type[Exception] = ModelError) -> str:
    with pytest.raises(cls) as info:
        ggml.validate_model_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


# --- the whisper.cpp test stubs ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "n_vocab", "state", "layers"),
    [
        ("tiny.en", 51864, 384, 4),
        ("tiny", 51865, 384, 4),
        ("base.en", 51864, 512, 6),
        ("small", 51865, 768, 12),
        ("medium.en", 51864, 1024, 24),
        ("large", 51865, 1280, 32),
    ],
)
def test_whisper_cpp_stub_models_validate(
    stub_dir: Path, tmp_path: Path, name: str, n_vocab: int, state: int, layers: int
) -> None:
    path = tmp_path / f"ggml-{name}.bin"
    shutil.copyfile(stub_dir / f"for-tests-ggml-{name}.bin", path)
    h = ggml.validate_model_file(path)
    assert (h.n_vocab, h.n_audio_state, h.n_audio_layer, h.n_text_layer) == (
        n_vocab,
        state,
        layers,
        layers,
    )
    assert h.is_multilingual is (not name.endswith(".en"))
    assert (h.n_mels, h.n_audio_ctx, h.n_text_ctx, h.ftype) == (80, 1500, 448, 1)
    assert h.weight_type == "f16" and h.qnt_version == 0
    assert h.n_tensors == 0 and not h.has_weights
    assert h.file_size == path.stat().st_size
    assert h.to_dict()["multilingual"] is h.is_multilingual


def test_stub_sections(tiny_stub: Path) -> None:
    layout = ggml.read_layout(tiny_stub)
    assert (layout.n_mel, layout.n_fft) == (80, 201)
    assert layout.n_tokens == 50257
    vocab = ggml.read_vocab(tiny_stub)
    assert vocab[0] == b"!" and vocab[220] == b" " and vocab[50256] == b"<|endoftext|>"
    filters = ggml.read_mel_filters(tiny_stub)
    assert filters.shape == (80, 201) and filters.dtype.name == "float32"


def test_validation_is_a_small_part_of_loading(tiny_stub: Path) -> None:
    """Validating before every load is cheap next to what whisper.cpp does with the file."""
    from infomux.engine import Model

    def load() -> None:
        Model(tiny_stub, use_gpu=False).close()  # validates, then whisper.cpp loads

    validate = best_seconds(ggml.validate_model_file, tiny_stub)
    assert validate < 0.25 * best_seconds(load)


@pytest.mark.parametrize("cut", [0, 3, 20, 47, 60, 32_000, 586_000, 586_835])
def test_truncated_stub(tiny_stub: Path, cut: int) -> None:
    data = tiny_stub.read_bytes()
    tiny_stub.write_bytes(data[:cut])
    message = expect_error(tiny_stub)
    assert ("truncated" in message) or ("too small" in message)


def test_stub_with_trailing_garbage(tiny_stub: Path) -> None:
    with tiny_stub.open("ab") as f:
        f.write(b"\0" * 5)
    expect_error(tiny_stub, "truncated")


# --- not a model at all ------------------------------------------------------


def test_not_media_file(tmp_path: Path) -> None:
    path = tmp_path / "not_media.mp3"
    shutil.copyfile(media_file("not_media.mp3"), path)
    expect_error(path, "not a ggml model file")


def test_directory(tmp_path: Path) -> None:
    message = expect_error(tmp_path, "is a directory", cls=ModelNotFoundError)
    assert message.startswith(str(tmp_path))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError):  # ModelNotFoundError is one
        ggml.validate_model_file(path)
    expect_error(path, "does not exist", cls=ModelNotFoundError)


def test_empty_file(tmp_path: Path) -> None:
    expect_error(write(tmp_path, b""), "too small")


def test_random_bytes(tmp_path: Path) -> None:
    expect_error(write(tmp_path, os.urandom(4096)), "not a ggml model file")


# --- a complete synthetic model and broken variants --------------------------


def test_complete_small_model(tmp_path: Path) -> None:
    path = write(tmp_path, build_model())
    h = ggml.validate_model_file(path)
    assert h.has_weights and h.n_tensors == 11 + 15 + 24
    assert h.file_size == path.stat().st_size
    table = ggml.read_layout(path).tensors
    conv = next(t for t in table if t.name == "encoder.conv1.weight")
    assert conv.ne == (3, 4, 32) and conv.type_name == "f16"
    bias = next(t for t in table if t.name == "encoder.conv2.bias")
    assert bias.ne == (1, 32) and bias.type_name == "f32"


def test_quantized_small_model(tmp_path: Path) -> None:
    hp = {"ftype": 2007}  # q8_0, quantization version 2
    path = write(tmp_path, build_model(hp))
    h = ggml.validate_model_file(path)
    assert h.weight_type == "q8_0" and h.qnt_version == 2 and h.base_ftype == 7
    types = {t.name: t.type_name for t in ggml.read_layout(path).tensors}
    assert types["decoder.token_embedding.weight"] == "q8_0"
    assert types["encoder.blocks.0.attn.key.weight"] == "q8_0"
    assert types["encoder.conv2.weight"] == "f16"
    assert types["decoder.positional_embedding"] == "f32"


def test_expected_tensor_names_match_whisper_cpp() -> None:
    tiny = ggml.GgmlHeader(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1)
    names = ggml.expected_tensors(tiny)
    # whisper.cpp: 11 global tensors, 15 per encoder block, 24 per decoder block.
    assert len(names) == 11 + 15 * 4 + 24 * 4 == 167
    assert names["decoder.blocks.3.cross_attn.key.weight"] == ((384, 384), 1)
    assert names["encoder.conv1.weight"] == ((3, 80, 384), 1)
    assert names["encoder.conv1.bias"] == ((1, 384), 0)
    assert names["decoder.token_embedding.weight"] == ((384, 51864), 1)
    assert names["encoder.blocks.0.mlp.0.weight"] == ((384, 1536), 1)
    assert "decoder.blocks.0.cross_attn.key.bias" not in names
    assert "encoder.blocks.0.attn.key.bias" not in names
    assert "decoder.blocks.4.attn.query.weight" not in names


def _tensor_list() -> list[tuple[str, tuple[int, ...], int]]:
    h = ggml.GgmlHeader(**SMALL)
    return [(name, ne, t) for name, (ne, t) in ggml.expected_tensors(h).items()]


def test_unknown_tensor_name(tmp_path: Path) -> None:
    tensors = _tensor_list()
    tensors[3] = ("encoder.conv9.bias", tensors[3][1], tensors[3][2])
    expect_error(
        write(tmp_path, build_model(tensors=tensors)), "unknown tensor 'encoder.conv9.bias'"
    )


def test_key_bias_is_unknown(tmp_path: Path) -> None:
    tensors = [*_tensor_list(), ("encoder.blocks.0.attn.key.bias", (32,), 0)]
    expect_error(write(tmp_path, build_model(tensors=tensors)), "unknown tensor")


def test_missing_tensor(tmp_path: Path) -> None:
    tensors = [t for t in _tensor_list() if t[0] != "decoder.ln.bias"]
    expect_error(write(tmp_path, build_model(tensors=tensors)), "missing tensors decoder.ln.bias")


def test_duplicate_tensor(tmp_path: Path) -> None:
    tensors = _tensor_list()
    expect_error(write(tmp_path, build_model(tensors=[*tensors, tensors[0]])), "appears twice")


def test_wrong_shape(tmp_path: Path) -> None:
    tensors = [(n, (ne[1], ne[0]) if n == "encoder.blocks.0.mlp.0.weight" else ne, t)
               for n, ne, t in _tensor_list()]  # fmt: skip
    expect_error(write(tmp_path, build_model(tensors=tensors)), "has shape [128, 32]")


def test_wrong_type(tmp_path: Path) -> None:
    tensors = [(n, ne, 0 if n == "decoder.token_embedding.weight" else t)
               for n, ne, t in _tensor_list()]  # fmt: skip
    expect_error(write(tmp_path, build_model(tensors=tensors)), "has type f32, expected f16")


def test_unsupported_tensor_type(tmp_path: Path) -> None:
    tensors = [(n, ne, 12 if n == "decoder.ln.bias" else t) for n, ne, t in _tensor_list()]
    expect_error(write(tmp_path, build_model(tensors=tensors)), "unsupported type 12")


def test_every_truncation_of_a_complete_model_fails(tmp_path: Path) -> None:
    data = build_model()
    path = tmp_path / "m.bin"
    cuts = [*range(0, 600, 3), *range(600, len(data), len(data) // 400)]
    for cut in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError):
            ggml.validate_model_file(path)
    path.write_bytes(data[:-1])
    expect_error(path, "truncated", f"data of tensor '{_tensor_list()[-1][0]}'")


@pytest.mark.parametrize(
    ("hp", "fragment"),
    [
        ({"n_vocab": 5}, "implausible n_vocab = 5"),
        ({"n_vocab": 10**6}, "implausible n_vocab = 1000000"),
        ({"n_audio_layer": 0}, "implausible n_audio_layer = 0"),
        ({"n_audio_ctx": -3}, "implausible n_audio_ctx"),
        ({"n_text_state": 64}, "n_audio_state 32 != n_text_state 64"),
        ({"n_audio_head": 3}, "multiple of the number of heads"),
        ({"ftype": 5}, "unsupported ftype 5"),
        ({"ftype": 3007}, "unsupported ftype 3007"),
        ({"ftype": 0}, "all-f32 models"),
    ],
)
def test_bad_hparams(tmp_path: Path, hp: dict[str, int], fragment: str) -> None:
    expect_error(write(tmp_path, build_model(hp, tensors=[])), fragment)


def test_mel_band_mismatch(tmp_path: Path) -> None:
    expect_error(write(tmp_path, build_model(n_mel=7, tensors=[])), "mel filters have 7 bands")


def test_bad_vocab(tmp_path: Path) -> None:
    data = bytearray(build_model(tensors=[]))
    vocab_at = 48 + 8 + 4 * 4 * 5
    struct.pack_into("<i", data, vocab_at + 4, -1)  # first token's length
    expect_error(write(tmp_path, bytes(data)), "token 0 has invalid length -1")
    struct.pack_into("<i", data, vocab_at, 60_000)  # more tokens than n_vocab
    expect_error(write(tmp_path, bytes(data)), "vocabulary has 60000 tokens")


def test_type_sizes() -> None:
    sizes = {name: ggml.type_nbytes(tid, 64) for name, tid in ggml.TYPE_IDS.items()}
    assert sizes == {
        "f32": 256,
        "f16": 128,
        "q4_0": 36,
        "q4_1": 40,
        "q5_0": 44,
        "q5_1": 48,
        "q8_0": 68,
    }
    with pytest.raises(ValueError):
        ggml.type_nbytes(8, 33)
