"""The conversion plan: which ggml tensor comes from which rows of which CT2 variable."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from infomux import ggml
from infomux.convert.ct2 import CT2_DTYPE_NAMES, FLOAT_DTYPES, Ct2Index, Ct2Variable, read_rows
from infomux.errors import ModelError
from infomux.ggml import QUANT_TYPES

logger = logging.getLogger("infomux.models")

F32, F16 = ggml.TYPE_IDS["f32"], ggml.TYPE_IDS["f16"]


@dataclass(frozen=True)
class Piece:
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
class Plan:
    """What to write: the header's 11 hyper-parameters and the tensors, in file order."""

    hparams: tuple[int, ...]  # the 11 header ints, ftype included
    pieces: tuple[Piece, ...]


class Planner:
    """Builds the :class:`Plan` of a CT2 Whisper model for one output type (:meth:`plan`)."""

    def __init__(self, index: Ct2Index, out_type: str) -> None:
        self.index = index
        self.vars = index.variables
        self.out_type = out_type
        self.wtype = ggml.TYPE_IDS[out_type]
        self.vtype = F16  # whisper.cpp's convolutions need f16 kernels
        self.pieces: list[Piece] = []

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.index.label}: {reason}")

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
        type_id, quantize = F32, False
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
        self.pieces.append(Piece(name, var, i * rows, (i + 1) * rows, shape, type_id, quantize))

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
            logger.warning("%s: no %s/num_heads; assuming 64-wide heads", self.index.label, side)
            return n_state // 64
        with self.index.open() as f:
            value = int(read_rows(f, var, 0, 1).reshape(-1)[0])
        if value < 1 or n_state % value:
            raise self.fail(f"{side}/num_heads = {value} does not divide the state size {n_state}")
        return value

    def plan(self) -> Plan:
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
        return Plan(hparams, tuple(self.pieces))

    def check_dtypes(self) -> None:
        for var in self.vars.values():
            if var.name.endswith("_scale") or (var.shape and var.dtype not in FLOAT_DTYPES):
                raise self.fail(
                    f"variable '{var.name}' is {CT2_DTYPE_NAMES[var.dtype]}: quantized "
                    "CTranslate2 models are not supported; export it with "
                    "--quantization float16 (or float32)"
                )
