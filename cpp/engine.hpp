// infomux native engine: a small C++ layer over whisper.cpp.
//
// Owns whisper.cpp handles through RAII, turns infomux's decoding options into
// whisper_full_params, and returns plain C++ records. It never includes pybind11;
// the binding layer (module.cpp) implements Hooks to reach Python.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct whisper_context;

namespace infomux {

// Options fixed when a model is loaded.
struct ModelParams {
    bool use_gpu = true;
    bool flash_attn = true;
    int gpu_device = 0;
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
    bool token_timestamps = false;
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

struct Timings {
    float sample_ms = 0, encode_ms = 0, decode_ms = 0, batchd_ms = 0, prompt_ms = 0;
};

struct TranscribeResult {
    std::vector<SegmentRecord> segments;
    std::string language;
    float language_probability = -1.0f;  // -1: not detected (given, or English-only model)
    Timings timings;
};

// Raised when inference stopped because Hooks::poll_abort() said so.
class Aborted : public std::runtime_error {
public:
    Aborted() : std::runtime_error("inference aborted") {}
};

// Called from inside inference, on the thread that called transcribe().
class Hooks {
public:
    virtual ~Hooks() = default;
    // Polled by ggml after every graph node; the first true is latched.
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

// A loaded model. transcribe() may be called from several threads: whisper_full
// is not thread-safe for one context, and VAD runs only on the context's own
// state, so calls on one Model are serialised by a mutex.
class Model {
public:
    Model(const std::string& path, const ModelParams& params);

    TranscribeResult transcribe(const float* samples, size_t n_samples, const DecodeParams& params,
                                Hooks& hooks);

    bool is_multilingual() const;
    int n_vocab() const;
    int token_eot() const;
    std::string model_type() const;
    int ftype() const;
    void close();
    bool closed() const { return !ctx_; }

private:
    whisper_context* ctx() const;
    ContextPtr ctx_;
    std::mutex mutex_;
};

// Build and run-time facts for the audit trail.
std::string whisper_version();
std::string system_info();
std::vector<std::string> backend_names();
int lang_max_id();
std::string lang_str(int id);
int lang_id(const std::string& lang);

}  // namespace infomux
