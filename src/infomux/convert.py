"""Convert a CTranslate2 Whisper model directory to a whisper.cpp ggml file.

Pure Python + numpy, streaming: ``model.bin`` is indexed once (names, shapes, file
offsets) and each output tensor is then read in row chunks with ``os.pread``,
converted and written, so peak memory is a few MB above the interpreter's, not the
model's size. The output is written to a temporary file in the destination
directory, fsync'ed, validated with :func:`infomux.ggml.validate_model_file` and
renamed into place, so a crash never leaves a half-written model behind.

Quantized outputs (``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``, ``q4_0``) follow ggml's
reference quantizers (``quantize_row_*_ref``) bit for bit, applied like whisper.cpp's
``quantize`` tool does to an f16 file: only the 2-D weight matrices are quantized;
convolutions, biases, layer norms and positional embeddings keep their f16/f32 types,
and the header's ftype becomes ``ftype + 1000 * GGML_QNT_VERSION``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from infomux import ggml, storage
from infomux.errors import ModelError, ModelNotFoundError
from infomux.ggml import ProgressFn

logger = logging.getLogger("infomux.models")

OUT_TYPES = ggml.WEIGHT_TYPES
QUANT_TYPES = ggml.QUANT_TYPES
N_TEXT_TOKENS = ggml.N_TEXT_TOKENS  # tokens in the vocab section: GPT-2's + <|endoftext|>
SAMPLE_RATE = 16000
N_FFT = 400

# ---------------------------------------------------------------------------
# CTranslate2 model.bin

_CT2_DTYPES: dict[int, str] = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
_CT2_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_FLOAT_DTYPES = (0, 4, 5)


@dataclass(frozen=True)
class Ct2Variable:
    """One variable of a CTranslate2 ``model.bin``: where its raw data lies."""

    name: str
    shape: tuple[int, ...]
    dtype: int
    offset: int
    nbytes: int

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return np.dtype(_CT2_DTYPES[self.dtype]).itemsize


@dataclass(frozen=True)
class Ct2Index:
    """The table of contents of a CTranslate2 ``model.bin``."""

    path: Path
    spec: str
    version: int
    revision: int
    variables: dict[str, Ct2Variable]
    aliases: dict[str, str]


class _Ct2Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.path}: {reason}")

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("file is truncated; not a complete CTranslate2 model")
        return data

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = self.take(n)
        if not raw.endswith(b"\0"):
            raise self.fail("malformed string in model.bin; not a CTranslate2 model")
        return raw[:-1].decode("utf-8", "replace")


def read_ct2_index(model_bin: str | os.PathLike[str]) -> Ct2Index:
    """Index a CTranslate2 ``model.bin`` without reading the tensor data.

    Raises:
        ModelNotFoundError: the file does not exist.
        ModelError: the file is not a CTranslate2 model this code can read.
    """
    path = Path(model_bin)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: CTranslate2 model.bin does not exist")
    size = path.stat().st_size
    with path.open("rb") as f:
        r = _Ct2Reader(f, path, size)
        (version,) = r.unpack("I")
        if not 5 <= version <= 6:
            raise r.fail(f"unsupported CTranslate2 model format version {version}")
        spec = r.string()
        (revision,) = r.unpack("I")
        (n_vars,) = r.unpack("I")
        if n_vars > 100_000:
            raise r.fail(f"implausible variable count {n_vars}")
        variables: dict[str, Ct2Variable] = {}
        for _ in range(n_vars):
            name = r.string()
            (rank,) = r.unpack("B")
            shape = r.unpack(f"{rank}I") if rank else ()
            dtype, nbytes = r.unpack("B")[0], r.unpack("I")[0]
            if dtype not in _CT2_DTYPES:
                raise r.fail(f"variable '{name}' has unknown dtype {dtype}")
            offset = f.tell()
            if offset + nbytes > size:
                raise r.fail(f"file is truncated (variable '{name}')")
            var = Ct2Variable(name, tuple(shape), dtype, offset, nbytes)
            if int(np.prod(shape, dtype=np.int64)) * var.itemsize != nbytes:
                raise r.fail(f"variable '{name}' size {nbytes} does not match shape {shape}")
            variables[name] = var
            f.seek(nbytes, os.SEEK_CUR)
        aliases: dict[str, str] = {}
        if f.tell() < size:
            (n_alias,) = r.unpack("I")
            for _ in range(n_alias):
                alias = r.string()
                aliases[alias] = r.string()
        if f.tell() != size:
            raise r.fail(f"{size - f.tell()} unexpected trailing bytes after the variables")
    return Ct2Index(path, spec, version, revision, variables, aliases)


# ---------------------------------------------------------------------------
# Conversion plan

_F32, _F16 = ggml.TYPE_IDS["f32"], ggml.TYPE_IDS["f16"]


@dataclass(frozen=True)
class _Piece:
    """A ggml tensor to write: rows ``[row0, row1)`` of a CT2 variable."""

    name: str
    var: Ct2Variable
    row0: int
    row1: int
    shape: tuple[int, ...]  # numpy shape of the output tensor
    type: int  # ggml type id
    quantize: bool = False

    @property
    def ne(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape))

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def record_size(self) -> int:
        name = self.name.encode()
        head = 12 + 4 * len(self.shape) + len(name)
        return head + ggml.type_nbytes(self.type, self.n_elements)


@dataclass(frozen=True)
class _Plan:
    hparams: tuple[int, ...]  # the 11 header ints, ftype included
    pieces: tuple[_Piece, ...]


class _Planner:
    def __init__(self, index: Ct2Index, out_type: str) -> None:
        self.index = index
        self.vars = index.variables
        self.out_type = out_type
        self.wtype = ggml.TYPE_IDS[out_type]
        self.vtype = _F16  # whisper.cpp's convolutions need f16 kernels
        self.pieces: list[_Piece] = []

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.index.path}: {reason}")

    def var(self, name: str, ndim: int) -> Ct2Variable:
        name = self.index.aliases.get(name, name)
        var = self.vars.get(name)
        if var is None:
            raise self.fail(f"variable '{name}' is missing; not a CTranslate2 Whisper model")
        if len(var.shape) != ndim:
            raise self.fail(f"variable '{name}' has shape {var.shape}, expected {ndim} dims")
        return var

    def add(self, name: str, src: str, kind: str, *, split: tuple[int, int] = (0, 1)) -> None:
        """Add tensor ``name`` from CT2 variable ``src``; ``split=(i, n)``: i-th of n row blocks."""
        ndim = {"vec": 1, "mat": 2, "conv": 3, "f32mat": 2, "convbias": 1}[kind]
        var = self.var(src, ndim)
        i, n = split
        if var.shape[0] % n:
            raise self.fail(f"variable '{var.name}' cannot be split into {n} parts")
        rows = var.shape[0] // n
        shape = (rows, *var.shape[1:])
        type_id, quantize = _F32, False
        if kind == "convbias":
            shape = (rows, 1)
        elif kind == "conv":
            type_id = self.vtype
        elif kind == "mat":
            type_id = self.wtype
            quantize = self.out_type in QUANT_TYPES
            block = ggml.BLOCK_LAYOUT[type_id][0]
            if shape[-1] % block:
                raise self.fail(
                    f"'{var.name}' rows of {shape[-1]} cannot be {self.out_type} blocks"
                )
        self.pieces.append(_Piece(name, var, i * rows, (i + 1) * rows, shape, type_id, quantize))

    def layer_norm(self, dst: str, src: str) -> None:
        self.add(f"{dst}.weight", f"{src}/gamma", "vec")
        self.add(f"{dst}.bias", f"{src}/beta", "vec")

    def linear(
        self, dst: str, src: str, *, split: tuple[int, int] = (0, 1), bias: bool = True
    ) -> None:
        self.add(f"{dst}.weight", f"{src}/weight", "mat", split=split)
        if bias:
            self.add(f"{dst}.bias", f"{src}/bias", "vec", split=split)

    def block(self, dst: str, src: str, *, cross: bool) -> None:
        self.layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        qkv = f"{src}/self_attention/linear_0"
        for i, part in enumerate(("query", "key", "value")):
            # CT2 fills the (absent) key bias with zeros; whisper.cpp has no key bias.
            self.linear(f"{dst}.attn.{part}", qkv, split=(i, 3), bias=part != "key")
        self.linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            self.layer_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            self.linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            kv = f"{src}/attention/linear_1"
            self.linear(f"{dst}.cross_attn.key", kv, split=(0, 2), bias=False)
            self.linear(f"{dst}.cross_attn.value", kv, split=(1, 2))
            self.linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        self.layer_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        self.linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        self.linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    def n_layers(self, side: str) -> int:
        pat = re.compile(rf"{side}/layer_(\d+)/")
        found = {int(m.group(1)) for name in self.vars if (m := pat.match(name))}
        if found != set(range(len(found))) or not found:
            raise self.fail(f"{side} layers are missing or not numbered 0..n-1")
        return len(found)

    def n_heads(self, side: str, n_state: int) -> int:
        var = self.vars.get(f"{side}/num_heads")
        if var is None:
            logger.warning("%s: no %s/num_heads; assuming 64-wide heads", self.index.path, side)
            return n_state // 64
        with self.index.path.open("rb") as f:
            value = int(_read_rows(f, var, 0, 1).reshape(-1)[0])
        if value < 1 or n_state % value:
            raise self.fail(f"{side}/num_heads = {value} does not divide the state size {n_state}")
        return value

    def plan(self) -> _Plan:
        self.check_dtypes()
        conv1 = self.var("encoder/conv1/weight", 3)
        emb = self.var("decoder/embeddings/weight", 2)
        enc_pe = self.var("encoder/position_encodings/encodings", 2)
        dec_pe = self.var("decoder/position_encodings/encodings", 2)
        n_audio_state, n_mels = conv1.shape[0], conv1.shape[1]
        n_vocab, n_text_state = emb.shape
        n_audio_layer, n_text_layer = self.n_layers("encoder"), self.n_layers("decoder")
        self.add("encoder.positional_embedding", enc_pe.name, "f32mat")
        self.add("encoder.conv1.weight", "encoder/conv1/weight", "conv")
        self.add("encoder.conv1.bias", "encoder/conv1/bias", "convbias")
        self.add("encoder.conv2.weight", "encoder/conv2/weight", "conv")
        self.add("encoder.conv2.bias", "encoder/conv2/bias", "convbias")
        for i in range(n_audio_layer):
            self.block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
        self.layer_norm("encoder.ln_post", "encoder/layer_norm")
        self.add("decoder.positional_embedding", dec_pe.name, "f32mat")
        self.add("decoder.token_embedding.weight", emb.name, "mat")
        for i in range(n_text_layer):
            self.block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
        self.layer_norm("decoder.ln", "decoder/layer_norm")
        if self.out_type in QUANT_TYPES:
            ftype = ggml.TYPE_TO_FTYPE[self.wtype] + ggml.GGML_QNT_VERSION_FACTOR * (
                ggml.GGML_QNT_VERSION
            )
        else:
            ftype = ggml.TYPE_TO_FTYPE[self.wtype]
        hparams = (
            n_vocab,
            enc_pe.shape[0],
            n_audio_state,
            self.n_heads("encoder", n_audio_state),
            n_audio_layer,
            dec_pe.shape[0],
            n_text_state,
            self.n_heads("decoder", n_text_state),
            n_text_layer,
            n_mels,
            ftype,
        )
        return _Plan(hparams, tuple(self.pieces))

    def check_dtypes(self) -> None:
        for var in self.vars.values():
            if var.name.endswith("_scale") or (var.shape and var.dtype not in _FLOAT_DTYPES):
                raise self.fail(
                    f"variable '{var.name}' is {_CT2_DTYPE_NAMES[var.dtype]}: quantized "
                    "CTranslate2 models are not supported; export it with "
                    "--quantization float16 (or float32)"
                )


# ---------------------------------------------------------------------------
# Tensor data: reading, type conversion, quantization


def _read_rows(f: BinaryIO, var: Ct2Variable, row0: int, row1: int) -> np.ndarray:
    """Rows ``[row0, row1)`` of a variable (first axis), in its stored dtype."""
    row_elems = int(np.prod(var.shape[1:], dtype=np.int64)) if var.shape else 1
    start = var.offset + row0 * row_elems * var.itemsize
    count = (row1 - row0) * row_elems
    data = os.pread(f.fileno(), count * var.itemsize, start)
    if len(data) != count * var.itemsize:
        raise ModelError(f"{var.name}: short read from model.bin")
    arr = np.frombuffer(data, dtype=_CT2_DTYPES[var.dtype])
    if var.dtype == 5:  # bfloat16: the top half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape((row1 - row0, *var.shape[1:]) if var.shape else (1,))


def _fp16_bytes(values: np.ndarray) -> np.ndarray:
    """float32 → IEEE half (round to nearest even, as GGML_FP32_TO_FP16), as (n, 2) bytes."""
    return values.astype("<f2").view(np.uint8).reshape(-1, 2)


def _safe_inverse(d: np.ndarray) -> np.ndarray:
    out = np.zeros_like(d)
    np.divide(np.float32(1.0), d, out=out, where=d != 0)
    return out


def _roundf(x: np.ndarray) -> np.ndarray:
    """C ``roundf``: halves away from zero (numpy's ``round`` goes to even)."""
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= np.float32(0.5), np.sign(x), np.float32(0.0))


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """32 values per block → 16 bytes: low nibble element j, high nibble element j+16."""
    q = q.astype(np.uint8)
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def _high_bits(q: np.ndarray) -> np.ndarray:
    """Bit 4 of each of the 32 values of a block → a little-endian uint32 (4 bytes)."""
    bits = ((q.astype(np.uint8) >> 4) & 1).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def _absmax_signed(x: np.ndarray) -> np.ndarray:
    """Per block, the value of largest magnitude (first one on ties), sign kept."""
    idx = np.argmax(np.abs(x), axis=1)
    return x[np.arange(x.shape[0]), idx]


def quantize_blocks(x: np.ndarray, qtype: str) -> bytes:
    """Quantize float32 values (length a multiple of 32) exactly like ggml's reference code.

    Returns the raw ggml blocks of type ``qtype`` (``q8_0``, ``q5_1``, ``q5_0``, ``q4_1``
    or ``q4_0``).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    f32 = np.float32
    if qtype == "q8_0":
        d = np.abs(x).max(axis=1) / f32(127)
        q = _roundf(x * _safe_inverse(d)[:, None]).astype(np.int8).view(np.uint8)
        parts = [_fp16_bytes(d), q]
    elif qtype in ("q4_0", "q5_0"):
        half = f32(8) if qtype == "q4_0" else f32(16)
        d = _absmax_signed(x) / -half
        q = np.trunc(x * _safe_inverse(d)[:, None] + (half + f32(0.5)))
        q = np.minimum(q, 2 * half - 1).astype(np.uint8)
        if qtype == "q4_0":
            parts = [_fp16_bytes(d), _pack_nibbles(q)]
        else:
            parts = [_fp16_bytes(d), _high_bits(q), _pack_nibbles(q)]
    elif qtype in ("q4_1", "q5_1"):
        levels = f32(15) if qtype == "q4_1" else f32(31)
        lo, hi = x.min(axis=1), x.max(axis=1)
        d = (hi - lo) / levels
        q = np.trunc((x - lo[:, None]) * _safe_inverse(d)[:, None] + f32(0.5))
        if qtype == "q4_1":
            parts = [_fp16_bytes(d), _fp16_bytes(lo), _pack_nibbles(np.minimum(q, levels))]
        else:
            q = q.astype(np.uint8)
            parts = [_fp16_bytes(d), _fp16_bytes(lo), _high_bits(q), _pack_nibbles(q)]
    else:
        raise ValueError(f"unknown quantization type {qtype!r}; choose from {QUANT_TYPES}")
    return np.concatenate(parts, axis=1).tobytes()


def _encode(values: np.ndarray, piece: _Piece, out_type: str) -> bytes:
    if piece.quantize:
        # Quantize what the f16 file would hold, as whisper.cpp's quantize tool does.
        as_f32 = values.astype(np.float16).astype(np.float32)
        return quantize_blocks(as_f32, out_type)
    if piece.type == _F16:
        return values.astype("<f2").tobytes()
    return values.astype("<f4").tobytes()


def _piece_chunks(f: BinaryIO, piece: _Piece, max_elems: int = 1 << 20) -> Iterator[np.ndarray]:
    row_elems = max(1, piece.n_elements // (piece.row1 - piece.row0))
    step = max(1, max_elems // row_elems)
    for r in range(piece.row0, piece.row1, step):
        yield _read_rows(f, piece.var, r, min(r + step, piece.row1))


# ---------------------------------------------------------------------------
# Header sections: mel filters, vocabulary


def mel_filters(n_mels: int = 80, *, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """A Slaney-style mel filterbank (librosa's default), float32 ``(n_mels, n_fft//2 + 1)``.

    This is the filterbank Whisper was trained with (``librosa.filters.mel`` with
    ``htk=False, norm="slaney"``), computed from its definition.
    """
    f_sp = 200.0 / 3  # Hz per mel in the linear part
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
        return np.where(hz >= min_log_hz, log_part, hz / f_sp)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        log_part = min_log_hz * np.exp(logstep * (np.maximum(mel, min_log_mel) - min_log_mel))
        return np.where(mel >= min_log_mel, log_part, f_sp * mel)

    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_pts = np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights.astype(np.float32)


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes→printable-unicode table used in BPE vocabularies."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _token_bytes(token: str, table: dict[str, int]) -> bytes:
    if all(c in table for c in token):
        return bytes(table[c] for c in token)
    return token.encode("utf-8")


def read_ct2_vocabulary(src_dir: Path) -> list[str]:
    """The token strings of a CT2 Whisper model (``vocabulary.txt`` or ``.json``)."""
    txt, js = src_dir / "vocabulary.txt", src_dir / "vocabulary.json"
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    if js.is_file():
        tokens = json.loads(js.read_text(encoding="utf-8"))
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            return tokens
        raise ModelError(f"{js}: expected a JSON list of token strings")
    raise ModelNotFoundError(f"{src_dir}: no vocabulary.txt or vocabulary.json")


def _vocab_section(tokens: list[str], n_vocab: int, src_dir: Path) -> bytes:
    if len(tokens) < N_TEXT_TOKENS or len(tokens) > n_vocab:
        raise ModelError(
            f"{src_dir}: vocabulary has {len(tokens)} tokens, expected {N_TEXT_TOKENS}..{n_vocab}"
        )
    table = _byte_decoder()
    out = [struct.pack("<i", N_TEXT_TOKENS)]
    for token in tokens[:N_TEXT_TOKENS]:
        raw = _token_bytes(token, table)
        out.append(struct.pack("<i", len(raw)) + raw)
    return b"".join(out)


def _header_bytes(plan: _Plan, tokens: list[str], src_dir: Path) -> bytes:
    n_vocab, n_mels = plan.hparams[0], plan.hparams[9]
    filters = mel_filters(n_mels)
    head = struct.pack("<I11i", ggml.GGML_MAGIC, *plan.hparams)
    mel = struct.pack("<2i", *filters.shape) + filters.astype("<f4").tobytes()
    return head + mel + _vocab_section(tokens, n_vocab, src_dir)


# ---------------------------------------------------------------------------
# Driver


def _tensor_header(piece: _Piece) -> bytes:
    name = piece.name.encode()
    ne = piece.ne
    return struct.pack(f"<3i{len(ne)}i", len(ne), len(name), piece.type, *ne) + name


def _write_tensors(
    out: BinaryIO,
    src: BinaryIO,
    plan: _Plan,
    out_type: str,
    done: int,
    total: int,
    progress: ProgressFn | None,
) -> int:
    for piece in plan.pieces:
        out.write(_tensor_header(piece))
        for chunk in _piece_chunks(src, piece):
            out.write(_encode(chunk, piece, out_type))
        done += piece.record_size
        if progress is not None:
            progress(done, total)
    return done


def _check_source(src_dir: Path) -> Path:
    if not src_dir.exists():
        raise ModelNotFoundError(f"{src_dir}: CTranslate2 model directory does not exist")
    if not src_dir.is_dir():
        raise ModelError(f"{src_dir}: not a directory (expected a CTranslate2 model directory)")
    model_bin = src_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelNotFoundError(f"{src_dir}: no model.bin; not a CTranslate2 model directory")
    return model_bin


def convert_ct2_to_ggml(
    src_dir: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    *,
    out_type: str = "f16",
    progress: ProgressFn | None = None,
) -> Path:
    """Convert a CTranslate2 Whisper model directory into a whisper.cpp ggml file.

    Args:
        src_dir: directory with ``model.bin`` and ``vocabulary.txt`` (or ``.json``).
        dst_path: the ggml file to create (replaced atomically if it exists).
        out_type: ``f16`` (default) or a quantization: ``q8_0``, ``q5_1``,
            ``q5_0``, ``q4_1``, ``q4_0``.
        progress: called as ``progress(bytes_written, total_bytes)`` after each tensor.

    Returns:
        ``dst_path`` as a :class:`~pathlib.Path`.

    Raises:
        ModelNotFoundError: ``src_dir`` or its files do not exist.
        ModelError: the source is not a (float) CTranslate2 Whisper model, or the
            output could not be written.
        ValueError: unknown ``out_type``.
    """
    if out_type not in OUT_TYPES:
        raise ValueError(f"unknown out_type {out_type!r}; choose from {', '.join(OUT_TYPES)}")
    src_dir, dst = Path(src_dir), Path(dst_path)
    index = read_ct2_index(_check_source(src_dir))
    if index.spec != "WhisperSpec":
        raise ModelError(f"{index.path}: a {index.spec} model, not a Whisper model")
    plan = _Planner(index, out_type).plan()
    header = _header_bytes(plan, read_ct2_vocabulary(src_dir), src_dir)
    total = len(header) + sum(p.record_size for p in plan.pieces)
    logger.debug("converting %s to %s (%s, %.1f MB)", src_dir, dst, out_type, total / 1e6)

    def check(tmp: Path) -> None:
        written = tmp.stat().st_size
        if written != total:
            raise ModelError(f"{dst}: wrote {written} bytes, expected {total}")
        ggml.validate_model_file(tmp)

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with storage.atomic_open(dst, check=check) as out, index.path.open("rb") as src:
            out.write(header)
            _write_tensors(out, src, plan, out_type, len(header), total, progress)
    except OSError as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{dst}: cannot write the model ({exc.strerror or exc})") from exc
    logger.debug("wrote %s (%d bytes)", dst, total)
    return dst
