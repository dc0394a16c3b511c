"""In-process audio decoding: any media file → float32, 16 kHz, mono.

PyAV demuxes only the chosen audio stream's packets (video is never decoded),
decodes them, and libswresample (through ``av.AudioResampler``) converts them
to packed float32 mono at 16 kHz. The samples are written into one
preallocated float32 buffer that grows geometrically if the container's
duration was an underestimate and is trimmed in place at the end, so peak
memory is about the size of the result plus a small constant.

Decisions
---------
* **Stream choice.** ``stream=None`` takes FFmpeg's best audio stream (the
  default-disposition one where there is one); ``stream=N`` is the N-th audio
  stream (0-based, counting audio streams only).
* **Resampling.** libswresample with its default filter (the same as the
  ``ffmpeg`` CLI), any input rate, layout and sample format, output frames of
  one second. The downmix matrix is normalised (``rematrix_maxval=1``): stereo
  becomes (L + R) / 2 and 5.1 a weighted sum with weights adding up to 1, exactly
  the samples of the ``ffmpeg -ac 1 -ar 16000 -c:a pcm_s16le`` step this module
  replaces (and of faster-whisper's s16 resampler), minus the s16 rounding.
  Without it, float output would get (L + R) / √2: 3 dB louder and able to
  exceed ±1.
  Decoded frames are collected in an ``av.AudioFifo`` and converted about a
  second at a time (bit-identical to frame-by-frame, half the cost). Input that
  already is 16 kHz mono ``flt``/``fltp``/``s16``/``s16p`` skips the resampler:
  float samples are copied, s16 samples scaled by 1/32768, bit-identical to
  what libswresample would produce. A higher-quality resampler setting (longer
  swr filter; soxr is not in PyAV's FFmpeg) was measured and not adopted: see
  ``benchmarks/README_audio.md``.
* **Length.** The output has the decoder's samples, as ``ffmpeg`` gives them,
  with one exception: for MP4/MOV, whose sample tables give the exact duration,
  the encoder padding FFmpeg leaves at the end (up to one AAC frame, 59 ms in
  ``speech_a_video.mp4``) is trimmed, so the decoded duration matches the
  stream's duration.
* **Mid-stream changes.** When the sample rate, layout or sample format of the
  decoded frames changes (concatenated ADTS/MP3 streams, some broadcast
  captures), the current resampler is flushed and a new one is created for the
  new parameters; decoding continues.
* **Damaged input.** A file whose header cannot be read (``truncated.mp4``
  without its ``moov`` atom, a text file named ``.mp3``, a 0-byte file) raises
  :class:`AudioDecodeError`. Once decoding has started, a packet the decoder
  rejects is skipped and counted, and a read error in the middle of the file
  ends decoding and is counted too: whatever audio could be decoded is
  returned, ``AudioInfo.decode_errors`` says how many packets were lost, and a
  warning is logged. A file that yields no audio at all raises
  :class:`AudioDecodeError`. When the decoded duration falls well short of the
  duration the container claims (a cut-off file), a warning is logged.
* **Sources.** A path (``str``/``os.PathLike``; any Unicode; a name with a colon
  is opened through FFmpeg's ``file:`` protocol, never as a URL) or a binary
  file-like object (seekable or not).
* **Errors.** :class:`AudioFileNotFoundError` for a missing path, a directory or
  anything that is not a regular file (a FIFO would block); :class:`AudioDecodeError`
  for everything else. Messages are one line and name the file and the reason.

Modules
-------
``info`` (``SAMPLE_RATE``, :class:`AudioInfo`, :class:`DecodedAudio`), ``source``
(opening, stream choice, durations), ``resample`` (frames → 16 kHz mono samples),
``decode`` (:func:`decode_audio`, :func:`load_audio`), ``chunks``
(:func:`iter_audio_chunks`), ``wav`` (:func:`write_wav`, :func:`quantize_s16`). The
public names are those below, importable from ``infomux.audio``; the modules are its
inner structure.

``av`` is imported lazily, so ``import infomux.audio`` stays cheap.
"""

from __future__ import annotations

from infomux.audio.chunks import iter_audio_chunks
from infomux.audio.decode import decode_audio, load_audio
from infomux.audio.info import SAMPLE_RATE, AudioInfo, DecodedAudio
from infomux.audio.wav import quantize_s16, write_wav

__all__ = [
    "SAMPLE_RATE",
    "AudioInfo",
    "DecodedAudio",
    "decode_audio",
    "iter_audio_chunks",
    "load_audio",
    "quantize_s16",
    "write_wav",
]
