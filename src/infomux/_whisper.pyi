"""Type stub of infomux._whisper, the pybind11 binding to whisper.cpp (see cpp/module.cpp)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
BUILD_OPTIONS: str
WHISPER_ORIGIN: str
SAMPLE_RATE: int
PATCHES: str

class AbortedError(RuntimeError): ...
class EngineFailure(RuntimeError): ...

def whisper_version() -> str: ...
def system_info() -> str: ...
def backend_names() -> list[str]: ...
def lang_max_id() -> int: ...
def lang_str(id: int) -> str: ...
def lang_id(lang: str) -> int: ...
def set_log_level(level: int) -> None: ...
def set_all_logits(all: bool) -> bool: ...
def set_eager_mel(eager: bool) -> bool: ...
def set_reference_mel(reference: bool) -> bool: ...
def quantize(values: npt.NDArray[np.float32], type: str) -> bytes: ...

class VadParams:
    threshold: float
    min_speech_ms: int
    min_silence_ms: int
    max_speech_s: float
    speech_pad_ms: int
    def __init__(self) -> None: ...

class VadModel:
    def __init__(self, path: str, n_threads: int = 1) -> None: ...
    def speech(
        self, samples: npt.NDArray[np.float32], params: VadParams
    ) -> list[tuple[float, float]]: ...
    def close(self) -> None: ...

class DecodeParams:
    language: str
    translate: bool
    n_threads: int
    beam_size: int
    best_of: int
    temperature: float
    temperature_inc: float
    initial_prompt: str
    prompt_tokens: list[int]
    token_timestamps: bool
    offset_ms: int
    short_last_window: bool
    max_len: int
    split_on_word: bool
    no_context: bool
    suppress_blank: bool
    suppress_nst: bool
    max_text_ctx: int
    vad: bool
    vad_model_path: str
    vad_threshold: float
    vad_min_speech_ms: int
    vad_min_silence_ms: int
    vad_speech_pad_ms: int
    tail_vad_model: str
    tail_max_ms: int
    batch_decoder: bool
    def __init__(self) -> None: ...

class Model:
    def __init__(
        self,
        path: str,
        use_gpu: bool = True,
        flash_attn: bool = True,
        gpu_device: int = 0,
        encoder_bf16: bool = False,
    ) -> None: ...
    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        params: DecodeParams,
        on_segment: Callable[[tuple[Any, ...]], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        should_abort: Callable[[], bool] | None = None,
    ) -> dict[str, Any]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def is_multilingual(self) -> bool: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def token_eot(self) -> int: ...
    @property
    def token_beg(self) -> int: ...
    @property
    def model_type(self) -> str: ...
    @property
    def ftype(self) -> int: ...
    @property
    def encoder_bf16(self) -> bool: ...
    @property
    def n_states(self) -> int: ...
    @property
    def n_busy(self) -> int: ...
