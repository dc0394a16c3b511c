"""The ggml file's header sections: hyper-parameters, mel filters, vocabulary."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infomux import ggml
from infomux.errors import ModelError

if TYPE_CHECKING:
    from infomux.convert.plan import Plan

N_TEXT_TOKENS = ggml.N_TEXT_TOKENS  # tokens in the vocab section: GPT-2's + <|endoftext|>
SAMPLE_RATE = 16000
N_FFT = 400


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


def special_token_ids(n_vocab: int) -> dict[str, int]:
    """Where whisper.cpp puts the special tokens of a model with ``n_vocab`` tokens.

    whisper.cpp does not read them from the file: it derives them from ``n_vocab``
    (``whisper_vocab``: a multilingual model, ``n_vocab >= 51865``, has one more text
    token, and ``n_vocab - 51765 - 1`` languages, 99 for base, 100 for large-v3). The
    languages are ``sot + 1 ...`` in whisper.cpp's own order.
    """
    multilingual = n_vocab >= 51865
    m = int(multilingual)
    n_languages = n_vocab - 51765 - m
    dt = n_languages - 98 if multilingual else 0
    return {
        "<|endoftext|>": 50256 + m,
        "<|startoftranscript|>": 50257 + m,
        "<|translate|>": 50357 + dt,
        "<|transcribe|>": 50358 + dt,
        "<|startofprev|>": 50360 + dt,
        "<|notimestamps|>": 50362 + dt,
        "<|0.00|>": 50363 + dt,
    }


def language_tokens(tokens: list[str], n_vocab: int) -> list[str]:
    """The language codes of a vocabulary, in token order (``["en", "zh", ...]``).

    Empty when the vocabulary does not list its special tokens.
    """
    ids = special_token_ids(n_vocab)
    first, end = ids["<|startoftranscript|>"] + 1, ids["<|translate|>"]
    return [t[2:-2] for t in tokens[first:end] if t.startswith("<|") and t.endswith("|>")]


def check_special_tokens(tokens: list[str], n_vocab: int, where: str) -> None:
    """Check that the vocabulary's special tokens are where whisper.cpp will look for them.

    A vocabulary that stops at the text tokens is accepted as it is (there is nothing
    to compare); one that lists them must list them where ``n_vocab`` says, or
    whisper.cpp would decode with the wrong end-of-text, language or timestamp tokens.

    Raises:
        ModelError: a special token is elsewhere (names the token and both places).
    """
    if len(tokens) <= N_TEXT_TOKENS + 1:
        return
    ids = special_token_ids(n_vocab)
    for token, want in ids.items():
        got = tokens.index(token) if token in tokens else None
        if got != want:
            place = f"at {got}" if got is not None else "missing"
            raise ModelError(
                f"{where}: vocabulary token {token} is {place}, but whisper.cpp expects it "
                f"at {want} for n_vocab {n_vocab}; the vocabulary does not fit the model"
            )
    languages = language_tokens(tokens, n_vocab)
    n_languages = ids["<|translate|>"] - ids["<|startoftranscript|>"] - 1
    if len(languages) != n_languages:
        raise ModelError(
            f"{where}: {len(languages)} language tokens, expected {n_languages} "
            f"for n_vocab {n_vocab}"
        )


def header_bytes(plan: Plan, tokens: list[str], src_dir: Path) -> bytes:
    n_vocab, n_mels = plan.hparams[0], plan.hparams[9]
    check_special_tokens(tokens, n_vocab, str(src_dir))
    filters = mel_filters(n_mels)
    head = struct.pack("<I11i", ggml.GGML_MAGIC, *plan.hparams)
    mel = struct.pack("<2i", *filters.shape) + filters.astype("<f4").tobytes()
    return head + mel + _vocab_section(tokens, n_vocab, src_dir)
