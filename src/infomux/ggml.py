"""Reading and validating whisper.cpp ggml model files.

whisper.cpp aborts (or worse) on a malformed model file, so infomux checks a file
before handing it over: :func:`validate_model_file` walks the whole layout — magic,
hyper-parameters, mel filters, vocabulary and the tensor table — without reading
tensor data (it seeks over it), and checks the tensor set is exactly the one
whisper.cpp will ask for.

File layout (all integers little-endian int32)::

    magic 0x67676d6c
    hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
             n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
    mel filters: n_mel n_fft, float32[n_mel * n_fft]
    vocab: count, then per token: len, bytes[len]
    tensors until EOF: n_dims name_len type ne[n_dims] name[name_len] data

``ftype`` is ``GGML_QNT_VERSION * 1000 + base ftype`` for quantized files.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infomux.errors import ModelError, ModelNotFoundError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger("infomux.models")

GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000
HPARAMS_SIZE = 4 * 12  # magic + 11 hparams

#: Weight types infomux writes (conversion, quantized variants, ``models import --type``):
#: f16, then ggml's quantizations from the most to the least precise.
WEIGHT_TYPES: tuple[str, ...] = ("f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
QUANT_TYPES: tuple[str, ...] = WEIGHT_TYPES[1:]

#: Progress of a model conversion or download: ``progress(bytes_done, bytes_total)``.
ProgressFn = Callable[[int, int], None]

# ggml_type ids, and (elements per block, bytes per block).
TYPE_IDS: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
}
TYPE_NAMES: dict[int, str] = {v: k for k, v in TYPE_IDS.items()}
BLOCK_LAYOUT: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 2 + 16),  # q4_0: f16 d, 16 bytes of nibbles
    3: (32, 4 + 16),  # q4_1: f16 d, f16 m, nibbles
    6: (32, 2 + 4 + 16),  # q5_0: f16 d, u32 high bits, nibbles
    7: (32, 4 + 4 + 16),  # q5_1: f16 d, f16 m, u32 high bits, nibbles
    8: (32, 2 + 32),  # q8_0: f16 d, 32 int8
}
# ggml_ftype (header, without the quantization version) -> weight tensor type.
FTYPE_TO_TYPE: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 3, 7: 8, 8: 6, 9: 7}
TYPE_TO_FTYPE: dict[int, int] = {v: k for k, v in FTYPE_TO_TYPE.items()}

_MODEL_SIZES = {4: "tiny", 6: "base", 12: "small", 24: "medium", 32: "large"}
_MAX_NAME = 256
N_TEXT_TOKENS = 50257  # GPT-2's tokens + <|endoftext|>: the least a whisper vocabulary has
_MAX_TOKEN = 4096


def type_nbytes(type_id: int, n_elements: int) -> int:
    """Bytes that ``n_elements`` values of ggml type ``type_id`` occupy.

    Raises:
        ValueError: unknown type, or a count that is not a whole number of blocks.
    """
    if type_id not in BLOCK_LAYOUT:
        raise ValueError(f"unsupported ggml tensor type {type_id}")
    block, size = BLOCK_LAYOUT[type_id]
    if n_elements % block:
        raise ValueError(f"{n_elements} elements is not a multiple of the block size {block}")
    return n_elements // block * size


@dataclass(frozen=True)
class GgmlHeader:
    """The hyper-parameters of a whisper ggml file, plus what validation learned."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int  # as stored: base ftype + 1000 * quantization version
    n_tensors: int = 0
    file_size: int = 0

    @property
    def is_multilingual(self) -> bool:
        """Whether the model knows languages other than English (whisper.cpp's rule)."""
        return self.n_vocab >= 51865

    @property
    def base_ftype(self) -> int:
        """The ftype without the quantization version."""
        return self.ftype % GGML_QNT_VERSION_FACTOR

    @property
    def qnt_version(self) -> int:
        """The quantization format version (0 for f32/f16 files)."""
        return self.ftype // GGML_QNT_VERSION_FACTOR

    @property
    def weight_type(self) -> str:
        """Type of the big weight matrices: ``f32``, ``f16``, ``q8_0``, ..."""
        type_id = FTYPE_TO_TYPE.get(self.base_ftype)
        return TYPE_NAMES[type_id] if type_id is not None else f"ftype{self.base_ftype}"

    @property
    def model_size(self) -> str:
        """``tiny``, ``base``, ``small``, ``medium``, ``large`` or ``unknown``."""
        return _MODEL_SIZES.get(self.n_audio_layer, "unknown")

    @property
    def has_weights(self) -> bool:
        """False for the weightless test stubs whisper.cpp ships (header and vocab only)."""
        return self.n_tensors > 0

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view."""
        return {
            "n_vocab": self.n_vocab,
            "n_audio_ctx": self.n_audio_ctx,
            "n_audio_state": self.n_audio_state,
            "n_audio_head": self.n_audio_head,
            "n_audio_layer": self.n_audio_layer,
            "n_text_ctx": self.n_text_ctx,
            "n_text_state": self.n_text_state,
            "n_text_head": self.n_text_head,
            "n_text_layer": self.n_text_layer,
            "n_mels": self.n_mels,
            "ftype": self.ftype,
            "type": self.weight_type,
            "multilingual": self.is_multilingual,
            "n_tensors": self.n_tensors,
            "file_size": self.file_size,
        }


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. ``ne`` is in ggml order (numpy shape reversed)."""

    name: str
    type: int
    ne: tuple[int, ...]
    offset: int  # of the data, from the start of the file
    nbytes: int

    @property
    def type_name(self) -> str:
        """The ggml type's short name."""
        return TYPE_NAMES.get(self.type, str(self.type))


@dataclass(frozen=True)
class GgmlLayout:
    """Where the sections of a ggml file are, as found by :func:`read_layout`."""

    header: GgmlHeader
    n_mel: int
    n_fft: int
    filters_offset: int
    vocab_offset: int
    n_tokens: int
    tensors_offset: int
    tensors: tuple[TensorInfo, ...]


_HPARAM_FIELDS = (
    "n_vocab",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
    "n_mels",
    "ftype",
)


def expected_tensors(h: GgmlHeader) -> dict[str, tuple[tuple[int, ...], int]]:
    """Name → (ne in ggml order, ggml type) of every tensor whisper.cpp loads for ``h``."""
    wtype = FTYPE_TO_TYPE[h.base_ftype]
    vtype = 0 if wtype == 0 else 1  # conv weights: f32 only in all-f32 files
    a, t = h.n_audio_state, h.n_text_state
    out: dict[str, tuple[tuple[int, ...], int]] = {
        "encoder.positional_embedding": ((a, h.n_audio_ctx), 0),
        "encoder.conv1.weight": ((3, h.n_mels, a), vtype),
        "encoder.conv1.bias": ((1, a), 0),
        "encoder.conv2.weight": ((3, a, a), vtype),
        "encoder.conv2.bias": ((1, a), 0),
        "encoder.ln_post.weight": ((a,), 0),
        "encoder.ln_post.bias": ((a,), 0),
        "decoder.positional_embedding": ((t, h.n_text_ctx), 0),
        "decoder.token_embedding.weight": ((t, h.n_vocab), wtype),
        "decoder.ln.weight": ((t,), 0),
        "decoder.ln.bias": ((t,), 0),
    }

    def block(prefix: str, n: int, attns: tuple[str, ...]) -> None:
        out[f"{prefix}.mlp_ln.weight"] = ((n,), 0)
        out[f"{prefix}.mlp_ln.bias"] = ((n,), 0)
        out[f"{prefix}.mlp.0.weight"] = ((n, 4 * n), wtype)
        out[f"{prefix}.mlp.0.bias"] = ((4 * n,), 0)
        out[f"{prefix}.mlp.2.weight"] = ((4 * n, n), wtype)
        out[f"{prefix}.mlp.2.bias"] = ((n,), 0)
        for attn in attns:
            out[f"{prefix}.{attn}_ln.weight"] = ((n,), 0)
            out[f"{prefix}.{attn}_ln.bias"] = ((n,), 0)
            for part in ("query", "key", "value", "out"):
                out[f"{prefix}.{attn}.{part}.weight"] = ((n, n), wtype)
                if part != "key":  # Whisper's key projections have no bias
                    out[f"{prefix}.{attn}.{part}.bias"] = ((n,), 0)

    for i in range(h.n_audio_layer):
        block(f"encoder.blocks.{i}", a, ("attn",))
    for i in range(h.n_text_layer):
        block(f"decoder.blocks.{i}", t, ("attn", "cross_attn"))
    return out


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; errors name the file."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.size = len(buf)
        self.path = path
        self.pos = 0

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.path}: {reason}")

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise self.fail(f"file is truncated ({what} at byte {self.pos} runs past the end)")

    def ints(self, n: int, what: str) -> tuple[int, ...]:
        self.need(4 * n, what)
        vals = struct.unpack_from(f"<{n}i", self.buf, self.pos)
        self.pos += 4 * n
        return vals

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n


def _check_range(cur: _Cursor, name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise cur.fail(f"implausible {name} = {value} (expected {lo}..{hi}); not a whisper model")


def _read_header(cur: _Cursor) -> GgmlHeader:
    if cur.size < 4:
        raise cur.fail("file is too small to be a ggml model")
    (magic,) = struct.unpack_from("<I", cur.buf, 0)
    if magic != GGML_MAGIC:
        raise cur.fail(f"not a ggml model file (magic 0x{magic:08x}, expected 0x{GGML_MAGIC:08x})")
    cur.pos = 4
    h = GgmlHeader(*cur.ints(11, "hyper-parameters"))
    _check_range(cur, "n_vocab", h.n_vocab, N_TEXT_TOKENS, 1 << 16)
    for field in ("n_audio_ctx", "n_text_ctx"):
        _check_range(cur, field, getattr(h, field), 1, 1 << 16)
    for field in ("n_audio_state", "n_text_state"):
        _check_range(cur, field, getattr(h, field), 1, 1 << 15)
    for field in ("n_audio_head", "n_text_head", "n_audio_layer", "n_text_layer"):
        _check_range(cur, field, getattr(h, field), 1, 1024)
    _check_range(cur, "n_mels", h.n_mels, 1, 1024)
    if h.n_audio_state != h.n_text_state:
        raise cur.fail(f"n_audio_state {h.n_audio_state} != n_text_state {h.n_text_state}")
    if h.n_audio_state % h.n_audio_head or h.n_text_state % h.n_text_head:
        raise cur.fail("the state size is not a multiple of the number of heads")
    if h.base_ftype not in FTYPE_TO_TYPE or h.qnt_version > GGML_QNT_VERSION:
        raise cur.fail(f"unsupported ftype {h.ftype}")
    if h.base_ftype == 0:
        # whisper.cpp then wants f32 convolution kernels, which ggml's CPU im2col rejects
        # with an abort; no official model is all-f32.
        raise cur.fail("all-f32 models (ftype 0) are not supported; use an f16 or quantized file")
    return h


def _read_filters(cur: _Cursor, h: GgmlHeader) -> tuple[int, int, int]:
    n_mel, n_fft = cur.ints(2, "mel filter sizes")
    if n_mel != h.n_mels:
        raise cur.fail(f"mel filters have {n_mel} bands but n_mels is {h.n_mels}")
    _check_range(cur, "mel filter n_fft", n_fft, 1, 1 << 14)
    offset = cur.pos
    cur.skip(4 * n_mel * n_fft, "mel filters")
    return n_mel, n_fft, offset


def _read_vocab(cur: _Cursor, h: GgmlHeader) -> tuple[int, int]:
    offset = cur.pos
    (n_tokens,) = cur.ints(1, "vocabulary size")
    if not 0 <= n_tokens <= h.n_vocab:
        raise cur.fail(f"vocabulary has {n_tokens} tokens, expected 0..{h.n_vocab}")
    buf, pos, size, unpack = cur.buf, cur.pos, cur.size, struct.Struct("<i").unpack_from
    for i in range(n_tokens):
        if pos + 4 > size:
            raise cur.fail(f"file is truncated (vocabulary ends at token {i} of {n_tokens})")
        (n,) = unpack(buf, pos)
        if not 0 <= n <= _MAX_TOKEN:
            raise cur.fail(f"vocabulary token {i} has invalid length {n}")
        pos += 4 + n
    if pos > size:
        raise cur.fail(f"file is truncated (in the vocabulary, {n_tokens} tokens)")
    cur.pos = pos
    return offset, n_tokens


def _iter_tensors(cur: _Cursor) -> Iterator[TensorInfo]:
    while cur.pos < cur.size:
        n_dims, name_len, type_id = cur.ints(3, "tensor header")
        if not 1 <= n_dims <= 4:
            raise cur.fail(f"tensor header at byte {cur.pos - 12} has n_dims = {n_dims}")
        if not 1 <= name_len <= _MAX_NAME:
            raise cur.fail(f"tensor header at byte {cur.pos - 12} has name length {name_len}")
        ne = cur.ints(n_dims, "tensor shape")
        cur.need(name_len, "tensor name")
        raw = bytes(cur.buf[cur.pos : cur.pos + name_len])
        cur.pos += name_len
        name = raw.decode("utf-8", "replace")
        if type_id not in BLOCK_LAYOUT:
            raise cur.fail(f"tensor '{name}' has unsupported type {type_id}")
        if any(d < 1 for d in ne):
            raise cur.fail(f"tensor '{name}' has invalid shape {list(ne)}")
        n_el = 1
        for d in ne:
            n_el *= d
        if ne[0] % BLOCK_LAYOUT[type_id][0]:
            raise cur.fail(f"tensor '{name}' row length {ne[0]} is not a whole number of blocks")
        nbytes = type_nbytes(type_id, n_el)
        offset = cur.pos
        cur.skip(nbytes, f"data of tensor '{name}'")
        yield TensorInfo(name, type_id, tuple(ne), offset, nbytes)


def _check_tensors(cur: _Cursor, h: GgmlHeader, tensors: list[TensorInfo]) -> None:
    if not tensors:
        return
    expected = expected_tensors(h)
    seen: set[str] = set()
    for t in tensors:
        if t.name not in expected:
            raise cur.fail(f"unknown tensor '{t.name}' (whisper.cpp would refuse the file)")
        if t.name in seen:
            raise cur.fail(f"tensor '{t.name}' appears twice")
        seen.add(t.name)
        ne, type_id = expected[t.name]
        pad = (*t.ne, 1, 1, 1)[:4]
        if pad != (*ne, 1, 1, 1)[:4]:
            raise cur.fail(f"tensor '{t.name}' has shape {list(t.ne)}, expected {list(ne)}")
        if t.type != type_id:
            raise cur.fail(
                f"tensor '{t.name}' has type {t.type_name}, expected {TYPE_NAMES[type_id]}"
            )
    missing = [name for name in expected if name not in seen]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise cur.fail(f"missing tensors {', '.join(missing[:3])}{more}")


def _stat_regular(path: Path) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path}: model file does not exist") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelNotFoundError(f"{path}: is a directory, not a ggml model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelNotFoundError(f"{path}: is not a regular file")
    return st.st_size


def read_layout(path: str | os.PathLike[str]) -> GgmlLayout:
    """Parse every section of a ggml file (not the tensor data) and validate it.

    Raises:
        ModelNotFoundError: the path does not exist, or is not a regular file.
        ModelError: anything wrong with the contents; the message names the file.
    """
    path = Path(path)
    size = _stat_regular(path)
    if size < 4:
        raise ModelError(f"{path}: file is too small to be a ggml model ({size} bytes)")
    if size < HPARAMS_SIZE:
        if size >= 4:
            # Tell "not ggml at all" from "truncated ggml" by the magic.
            with path.open("rb") as f:
                _read_header(_Cursor(f.read(4).ljust(HPARAMS_SIZE, b"\0"), path))
        raise ModelError(f"{path}: file is truncated ({size} bytes, no complete header)")
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            cur = _Cursor(mm, path)
            h = _read_header(cur)
            n_mel, n_fft, filters_offset = _read_filters(cur, h)
            vocab_offset, n_tokens = _read_vocab(cur, h)
            tensors_offset = cur.pos
            tensors = list(_iter_tensors(cur))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror or exc})") from None
    _check_tensors(cur, h, tensors)
    header = dataclasses.replace(h, n_tensors=len(tensors), file_size=size)
    return GgmlLayout(
        header, n_mel, n_fft, filters_offset, vocab_offset, n_tokens, tensors_offset, tuple(tensors)
    )


def validate_model_file(path: str | os.PathLike[str]) -> GgmlHeader:
    """Check that ``path`` is a whisper ggml model whisper.cpp can load; return its header.

    Reads the header, mel filters and vocabulary, walks the tensor table seeking over
    the data, and checks the file ends exactly after the last tensor and that the
    tensors are exactly the set (names, shapes, types) whisper.cpp expects. A file
    with no tensors at all (whisper.cpp's test stubs) is accepted with a warning.

    Raises:
        ModelNotFoundError: the path does not exist, or is not a regular file.
        ModelError: anything wrong with the contents; one line naming the file.
    """
    layout = read_layout(path)
    if not layout.header.has_weights:
        logger.warning("%s: model file has no tensors (a test stub?)", path)
    return layout.header


def read_mel_filters(path: str | os.PathLike[str]) -> np.ndarray:
    """The mel filterbank stored in a (valid) ggml file, float32 ``(n_mel, n_fft)``."""
    import numpy as np

    layout = read_layout(path)
    with open(path, "rb") as f:
        f.seek(layout.filters_offset)
        data = f.read(4 * layout.n_mel * layout.n_fft)
    return np.frombuffer(data, dtype="<f4").reshape(layout.n_mel, layout.n_fft).copy()


def read_vocab(path: str | os.PathLike[str]) -> list[bytes]:
    """The vocabulary stored in a (valid) ggml file, as raw token bytes."""
    layout = read_layout(path)
    with open(path, "rb") as f:
        f.seek(layout.vocab_offset)
        data = f.read(layout.tensors_offset - layout.vocab_offset)
    tokens, pos = [], 4
    for _ in range(layout.n_tokens):
        (n,) = struct.unpack_from("<i", data, pos)
        tokens.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return tokens
