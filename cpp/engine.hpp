// infomux native engine: a small C++ layer over whisper.cpp.
//
// Owns whisper.cpp handles through RAII, turns infomux's decoding options into
// whisper_full_params, and returns plain C++ records. It never includes pybind11;
// the binding layer (module.cpp) implements Hooks to reach Python.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct whisper_context;
struct whisper_state;
struct whisper_vad_context;
struct whisper_infomux_group;

namespace infomux {

class VadModel;

// Options fixed when a model is loaded.
struct ModelParams {
    bool use_gpu = true;
    bool flash_attn = true;
    int gpu_device = 0;
    // Keep the encoder's f16 matrices in bf16 (patch 0012; ignored without it).
    bool encoder_bf16 = false;
};

// Options of one transcription. Every field is set explicitly by us rather than
// inherited from whisper_full_default_params (which prints to stdout and
// defaults the language to "en").
struct DecodeParams {
    std::string language;  // "" = auto-detect (English-only models always use "en")
    bool translate = false;
    int n_threads = 4;
    int beam_size = 1;  // 1 = greedy
    int best_of = 1;
    float temperature = 0.0f;
    float temperature_inc = 0.2f;  // 0 disables the temperature fallback
    std::string initial_prompt;
    // Token ids given as what came before (a resumed transcription: exactly the tokens
    // whisper.cpp had decoded); when set, initial_prompt is not used.
    std::vector<int32_t> prompt_tokens;
    bool token_timestamps = false;
    // Start decoding this far into the samples (the log-mel still covers all of them,
    // and timestamps count from the first sample), as whisper-cli's --offset-t.
    int offset_ms = 0;
    // Encode a last window holding less than 30 s of audio with a shorter audio
    // context (patch 0007; ignored by a build without it).
    bool short_last_window = false;
    int max_len = 0;  // characters per segment, 0 = no limit
    bool split_on_word = false;
    bool no_context = false;
    bool suppress_blank = true;
    bool suppress_nst = false;
    int max_text_ctx = 16384;
    // Voice activity detection (whisper.cpp's Silero VAD).
    bool vad = false;
    std::string vad_model_path;
    float vad_threshold = 0.5f;
    int vad_min_speech_ms = 250;
    int vad_min_silence_ms = 100;
    int vad_speech_pad_ms = 30;
    // Before encoding another window for at most tail_max_ms of audio after the last
    // segment, ask Silero VAD (this model file) whether there is speech in it; if not,
    // stop there instead of paying a whole 30 s encoder pass. "" = always encode.
    std::string tail_vad_model;
    int tail_max_ms = 5000;
    // Join the model's decoder batch group (patch 0011): while other calls of this
    // Model run at the same time with this set, their decoder steps are computed in one
    // graph with this call's. Ignored by a build without the patch.
    bool batch_decoder = false;
};

struct TokenRecord {
    int32_t id;
    std::string text;  // raw bytes: a UTF-8 character may be split across tokens
    float p;
    int64_t t0;  // centiseconds, -1 unless token timestamps were asked for
    int64_t t1;
};

struct SegmentRecord {
    int64_t t0;  // centiseconds
    int64_t t1;
    std::string text;  // raw bytes
    float no_speech_prob;
    std::vector<TokenRecord> tokens;
};

// Where one call's time went: totals in milliseconds and how many times each stage ran.
struct Timings {
    double mel_ms = 0, sample_ms = 0, encode_ms = 0, decode_ms = 0, batchd_ms = 0, prompt_ms = 0;
    int n_sample = 0, n_encode = 0, n_decode = 0, n_batchd = 0, n_prompt = 0;
    int n_fallbacks = 0;  // windows decoded again at a higher temperature
    int n_short_windows = 0;  // windows encoded with a short audio context (patch 0007)
    int n_shared_decodes = 0;  // decoder calls computed with other calls' rows (patch 0011)
    bool available = false;  // false: this build cannot read a state's timings
};

struct TranscribeResult {
    std::vector<SegmentRecord> segments;
    std::string language;
    float language_probability = -1.0f;  // -1: not detected (given, or English-only model)
    Timings timings;
    int state_slot = -1;  // which whisper_state of the model ran it (0 = the context's own)
    double tail_skipped_s = 0;  // seconds of speechless tail not encoded (DecodeParams::tail_vad_model)
};

// Raised when inference stopped because Hooks::poll_abort() said so.
class Aborted : public std::runtime_error {
public:
    Aborted() : std::runtime_error("inference aborted") {}
};

// whisper.cpp reported a failure (not an abort, not bad input).
class EngineFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Called from inside inference, on the thread that called transcribe().
class Hooks {
public:
    virtual ~Hooks() = default;
    // Polled between encoder and decoder passes; the first true is latched.
    bool poll_abort() {
        if (aborted_.load(std::memory_order_relaxed)) return true;
        if (check_abort()) {
            aborted_.store(true, std::memory_order_relaxed);
            return true;
        }
        return false;
    }
    bool aborted() const { return aborted_.load(std::memory_order_relaxed); }
    // Forwards progress clamped to 0..100 and only when it grows.
    void report_progress(int percent) {
        percent = percent < 0 ? 0 : (percent > 100 ? 100 : percent);
        if (percent <= last_progress_) return;
        last_progress_ = percent;
        on_progress(percent);
    }
    virtual bool wants_segments() const { return false; }
    virtual void on_segments(std::vector<SegmentRecord> segments) { (void)segments; }
    virtual void on_progress(int percent) { (void)percent; }

protected:
    virtual bool check_abort() { return false; }

private:
    std::atomic<bool> aborted_{false};
    int last_progress_ = -1;
};

struct ContextDeleter {
    void operator()(whisper_context* ctx) const;
};
using ContextPtr = std::unique_ptr<whisper_context, ContextDeleter>;

struct StateDeleter {
    void operator()(whisper_state* state) const;
};
using StatePtr = std::unique_ptr<whisper_state, StateDeleter>;

// Facts about a loaded model, read once at load time (no lock needed to read them).
struct ModelInfo {
    bool is_multilingual = false;
    int n_vocab = 0;
    int token_eot = 0;
    int token_beg = 0;  // the first timestamp token (<|0.00|>)
    std::string model_type;
    int ftype = 0;
    bool encoder_bf16 = false;  // the encoder's matrices were converted to bf16 (patch 0012)
};

// A loaded model: the weights once (one whisper_context), and a pool of
// whisper_states, one per transcription running at the same time. transcribe() may
// be called from several threads: each call takes a free state (creating one when
// none is free), so calls run in parallel on one copy of the weights. State 0 is the
// context's own; whisper.cpp's built-in VAD (DecodeParams::vad) only runs there.
class Model {
public:
    Model(const std::string& path, const ModelParams& params);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    TranscribeResult transcribe(const float* samples, size_t n_samples, const DecodeParams& params,
                                Hooks& hooks);

    const ModelInfo& info() const { return info_; }
    // Frees the model after the calls running on it have finished. Throws
    // std::logic_error when called from inside one of its own calls (a callback).
    void close();
    bool closed() const { return closed_.load(); }
    // States created so far (the pool's size) and how many are running now.
    int n_states() const;
    int n_busy() const;

private:
    struct Slot {
        whisper_state* state = nullptr;  // slot 0: the context's own state
        StatePtr owned;                  // slots 1..: created on demand
        bool busy = false;
        std::string vad_model;  // the VAD model whisper.cpp cached on this state
    };
    class Lease;
    VadModel* tail_vad(const std::string& path);

    void shut_down();
    int acquire(bool need_own_state);
    void release(int slot);
    bool inside_own_call() const;

    ContextPtr ctx_;
    ModelInfo info_;
    std::atomic<bool> closed_{false};
    mutable std::mutex pool_mutex_;
    std::condition_variable pool_cv_;
    std::vector<std::unique_ptr<Slot>> slots_;
    int running_ = 0;
    whisper_infomux_group* batch_group_ = nullptr;  // patch 0011; freed before the context
    std::mutex tail_vad_mutex_;
    std::unique_ptr<VadModel> tail_vad_;
    std::string tail_vad_path_;
};

// Silero VAD (whisper.cpp's whisper_vad_* API): speech spans of a whole buffer.
struct SpeechSpan {
    double start;  // seconds
    double end;
};

struct VadParams {
    float threshold = 0.5f;
    int min_speech_ms = 250;
    int min_silence_ms = 100;
    float max_speech_s = 0.0f;  // 0: no limit
    int speech_pad_ms = 30;
};

class VadModel {
public:
    VadModel(const std::string& path, int n_threads);
    ~VadModel();
    VadModel(const VadModel&) = delete;
    VadModel& operator=(const VadModel&) = delete;
    // Serialised: one whisper_vad_context keeps LSTM state between windows.
    std::vector<SpeechSpan> speech(const float* samples, size_t n_samples, const VadParams& params);
    void close();

private:
    whisper_vad_context* ctx_ = nullptr;
    std::mutex mutex_;
};

// Build and run-time facts for the audit trail.
std::string whisper_version();
std::string system_info();
std::vector<std::string> backend_names();
int lang_max_id();
std::string lang_str(int id);
int lang_id(const std::string& lang);
// Patch 0001's switch: true projects every token of a batch onto the vocabulary, as
// unpatched whisper.cpp does (tests and benchmarks). Returns false if the build lacks it.
bool set_all_logits(bool all);
// Patch 0009's switch: true computes whisper_full's log-mel spectrogram for the whole
// input first, as unpatched whisper.cpp does. Returns false if the build lacks it.
bool set_eager_mel(bool eager);
// Patch 0013's switch: whisper.cpp's own DFT and mel sums (false without the patch).
bool set_reference_mel(bool reference);

}  // namespace infomux
