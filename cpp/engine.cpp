#include "engine.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "ggml-backend.h"
#include "whisper.h"

namespace infomux {

namespace {

constexpr int kSampleRate = WHISPER_SAMPLE_RATE;
// whisper_full_with_state returns without output below 100 ms of audio.
constexpr int kMinSamples = kSampleRate / 10;

// Models whose transcribe() is running on this thread (a callback calling back into
// the same model would deadlock or free what is in use).
thread_local std::vector<const void*> t_active_models;

struct ActiveCall {
    explicit ActiveCall(const void* model) { t_active_models.push_back(model); }
    ~ActiveCall() { t_active_models.pop_back(); }
    ActiveCall(const ActiveCall&) = delete;
    ActiveCall& operator=(const ActiveCall&) = delete;
};

// Reads results from a state, or from the context's own state (state == nullptr,
// only in builds without patch 0002 that cannot name it).
struct ResultReader {
    whisper_context* ctx;
    whisper_state* state;

    int n_segments() const {
        return state ? whisper_full_n_segments_from_state(state) : whisper_full_n_segments(ctx);
    }

    SegmentRecord segment(int i) const {
        SegmentRecord seg;
        if (state) {
            seg.t0 = whisper_full_get_segment_t0_from_state(state, i);
            seg.t1 = whisper_full_get_segment_t1_from_state(state, i);
            seg.text = whisper_full_get_segment_text_from_state(state, i);
            seg.no_speech_prob = whisper_full_get_segment_no_speech_prob_from_state(state, i);
        } else {
            seg.t0 = whisper_full_get_segment_t0(ctx, i);
            seg.t1 = whisper_full_get_segment_t1(ctx, i);
            seg.text = whisper_full_get_segment_text(ctx, i);
            seg.no_speech_prob = whisper_full_get_segment_no_speech_prob(ctx, i);
        }
        const int n_tokens =
            state ? whisper_full_n_tokens_from_state(state, i) : whisper_full_n_tokens(ctx, i);
        seg.tokens.reserve(static_cast<size_t>(n_tokens));
        for (int j = 0; j < n_tokens; ++j) {
            const whisper_token_data data = state
                                                ? whisper_full_get_token_data_from_state(state, i, j)
                                                : whisper_full_get_token_data(ctx, i, j);
            const char* text = state ? whisper_full_get_token_text_from_state(ctx, state, i, j)
                                     : whisper_full_get_token_text(ctx, i, j);
            seg.tokens.push_back(TokenRecord{data.id, text ? text : "", data.p, data.t0, data.t1});
        }
        return seg;
    }

    int lang_id() const {
        return state ? whisper_full_lang_id_from_state(state) : whisper_full_lang_id(ctx);
    }
};

struct CallbackData {
    Hooks* hooks;
    // for the speechless-tail check before each encoder pass after the first
    const float* samples = nullptr;
    int n_samples = 0;
    VadModel* tail_vad = nullptr;
    int tail_max_cs = 0;
    int windows = 0;
    double tail_skipped_s = 0;
};

// Whether the audio after the last segment is a short tail with no speech in it
// (then another 30 s encoder pass would only find silence there).
bool speechless_tail(CallbackData& cb, whisper_context* ctx, whisper_state* state) {
    ResultReader reader{ctx, state};
    const int n = reader.n_segments();
    const int64_t done_cs =
        n > 0 ? (state ? whisper_full_get_segment_t1_from_state(state, n - 1)
                       : whisper_full_get_segment_t1(ctx, n - 1))
              : 0;
    const int64_t first = done_cs * (kSampleRate / 100);
    if (first <= 0 || first >= cb.n_samples) return false;
    const int64_t remaining_cs = (cb.n_samples - first) * 100 / kSampleRate;
    if (remaining_cs > cb.tail_max_cs) return false;
    try {
        const auto spans = cb.tail_vad->speech(cb.samples + first,
                                               static_cast<size_t>(cb.n_samples - first), VadParams{});
        if (!spans.empty()) return false;
    } catch (...) {
        return false;  // no VAD answer: encode as whisper.cpp would
    }
    cb.tail_skipped_s = static_cast<double>(cb.n_samples - first) / kSampleRate;
    return true;
}

void on_new_segment(whisper_context* ctx, whisper_state* state, int n_new, void* user_data) {
    auto* data = static_cast<CallbackData*>(user_data);
    if (data->hooks->aborted()) return;
    ResultReader reader{ctx, state};
    const int n = reader.n_segments();
    std::vector<SegmentRecord> segments;
    for (int i = std::max(0, n - n_new); i < n; ++i) segments.push_back(reader.segment(i));
    data->hooks->on_segments(std::move(segments));
}

void on_progress(whisper_context*, whisper_state*, int progress, void* user_data) {
    auto* data = static_cast<CallbackData*>(user_data);
    if (!data->hooks->aborted()) data->hooks->report_progress(progress);
}

// whisper.cpp 1.8.5 polls the abort callback after each encoder pass and each decoder
// call (not per graph node on the scheduler path); the encoder-begin callback also
// stops it before a new 30 s window is encoded.
bool on_abort_poll(void* user_data) {
    return static_cast<CallbackData*>(user_data)->hooks->poll_abort();
}

bool on_encoder_begin(whisper_context* ctx, whisper_state* state, void* user_data) {
    auto* cb = static_cast<CallbackData*>(user_data);
    if (cb->hooks->poll_abort()) return false;
    // whisper.cpp ends the call (keeping what it decoded) when this returns false
    if (cb->windows++ > 0 && cb->tail_vad != nullptr && speechless_tail(*cb, ctx, state)) {
        return false;
    }
    return true;
}

whisper_full_params make_full_params(const DecodeParams& p, const std::string& language,
                                     CallbackData* cb) {
    const bool beam = p.beam_size > 1;
    whisper_full_params fp =
        whisper_full_default_params(beam ? WHISPER_SAMPLING_BEAM_SEARCH : WHISPER_SAMPLING_GREEDY);
    fp.n_threads = std::max(1, p.n_threads);
    // In whisper.cpp 1.8.5 `no_context` only clears the text left in the state by the
    // *previous call*; within a call each window is still prompted with the text before
    // it. Calls must be independent (one Model serves many files), so it is always set,
    // and our own no_context option turns the rolling prompt off with n_max_text_ctx=0.
    fp.n_max_text_ctx = p.no_context ? 0 : p.max_text_ctx;
#ifdef INFOMUX_PATCH_NO_HISTORY
    // no_context with a prompt: the user's prompt in every window, no decoded history
    if (p.no_context && (!p.initial_prompt.empty() || !p.prompt_tokens.empty())) {
        fp.n_max_text_ctx = p.max_text_ctx;
        fp.carry_initial_prompt = true;
        fp.no_history = true;
    }
#endif
    fp.offset_ms = p.offset_ms;
#ifdef INFOMUX_PATCH_SHORT_LAST_WINDOW
    fp.short_last_window = p.short_last_window;
#endif
    fp.duration_ms = 0;
    fp.translate = p.translate;
    fp.no_context = true;
    // Timestamps stay on even for plain text: without them whisper.cpp's
    // long-form decoding degrades badly (repetition).
    fp.no_timestamps = false;
    fp.single_segment = false;
    fp.print_special = false;
    fp.print_progress = false;
    fp.print_realtime = false;
    fp.print_timestamps = false;
    fp.token_timestamps = p.token_timestamps || p.max_len > 0;
    fp.max_len = p.max_len;
    fp.split_on_word = p.split_on_word;
    fp.initial_prompt = p.initial_prompt.empty() ? nullptr : p.initial_prompt.c_str();
    if (!p.prompt_tokens.empty()) {
        fp.initial_prompt = nullptr;
        fp.prompt_tokens = p.prompt_tokens.data();
        fp.prompt_n_tokens = static_cast<int>(p.prompt_tokens.size());
    }
    fp.language = language.c_str();
    fp.detect_language = false;
    fp.suppress_blank = p.suppress_blank;
    fp.suppress_nst = p.suppress_nst;
    fp.temperature = p.temperature;
    fp.temperature_inc = p.temperature_inc;
    fp.greedy.best_of = std::max(1, p.best_of);
    fp.beam_search.beam_size = std::max(1, p.beam_size);
    fp.new_segment_callback = cb->hooks->wants_segments() ? on_new_segment : nullptr;
    fp.new_segment_callback_user_data = cb;
    fp.progress_callback = on_progress;
    fp.progress_callback_user_data = cb;
    fp.encoder_begin_callback = on_encoder_begin;
    fp.encoder_begin_callback_user_data = cb;
    fp.abort_callback = on_abort_poll;
    fp.abort_callback_user_data = cb;
    fp.vad = p.vad;
    fp.vad_model_path = p.vad ? p.vad_model_path.c_str() : nullptr;
    if (p.vad) {
        fp.vad_params = whisper_vad_default_params();
        fp.vad_params.threshold = p.vad_threshold;
        fp.vad_params.min_speech_duration_ms = p.vad_min_speech_ms;
        fp.vad_params.min_silence_duration_ms = p.vad_min_silence_ms;
        fp.vad_params.speech_pad_ms = p.vad_speech_pad_ms;
        fp.vad_params.max_speech_duration_s = FLT_MAX;
    }
    return fp;
}

whisper_state* default_state(whisper_context* ctx) {
#ifdef INFOMUX_PATCH_STATE_TIMINGS
    return whisper_infomux_default_state(ctx);
#else
    (void)ctx;
    return nullptr;
#endif
}

void reset_timings(whisper_context* ctx, whisper_state* state) {
#ifdef INFOMUX_PATCH_STATE_TIMINGS
    if (state) {
        whisper_infomux_reset_state_timings(state);
        return;
    }
#else
    (void)state;
#endif
    whisper_reset_timings(ctx);
}

Timings read_timings(whisper_context* ctx, whisper_state* state, bool own_state) {
    Timings t;
#ifdef INFOMUX_PATCH_STATE_TIMINGS
    (void)ctx;
    (void)own_state;
    if (state) {
        whisper_infomux_timings raw{};
        whisper_infomux_get_state_timings(state, &raw);
        t.mel_ms = raw.t_mel_us / 1000.0;
        t.sample_ms = raw.t_sample_us / 1000.0;
        t.encode_ms = raw.t_encode_us / 1000.0;
        t.decode_ms = raw.t_decode_us / 1000.0;
        t.batchd_ms = raw.t_batchd_us / 1000.0;
        t.prompt_ms = raw.t_prompt_us / 1000.0;
        t.n_sample = raw.n_sample;
        t.n_encode = raw.n_encode;
        t.n_decode = raw.n_decode;
        t.n_batchd = raw.n_batchd;
        t.n_prompt = raw.n_prompt;
        t.n_fallbacks = raw.n_fail_p + raw.n_fail_h;
#ifdef INFOMUX_PATCH_SHORT_LAST_WINDOW
        t.n_short_windows = whisper_infomux_n_short_windows(state);
#endif
#ifdef INFOMUX_PATCH_BATCH_GROUP
        t.n_shared_decodes = whisper_infomux_n_shared_decodes(state);
#endif
        t.available = true;
    }
#else
    (void)state;
    // Unpatched whisper.cpp reports per-call averages of the context's own state only.
    if (own_state) {
        if (whisper_timings* avg = whisper_get_timings(ctx)) {
            t.sample_ms = avg->sample_ms;
            t.encode_ms = avg->encode_ms;
            t.decode_ms = avg->decode_ms;
            t.batchd_ms = avg->batchd_ms;
            t.prompt_ms = avg->prompt_ms;
            t.n_sample = t.n_encode = t.n_decode = t.n_batchd = t.n_prompt = 1;
            t.available = true;
            delete avg;
        }
    }
#endif
    return t;
}

// A state in the model's decoder batch group for one call (patch 0011).
class GroupMembership {
public:
    GroupMembership(whisper_state* state, whisper_infomux_group* group) {
#ifdef INFOMUX_PATCH_BATCH_GROUP
        if (state != nullptr && group != nullptr && whisper_infomux_state_set_group(state, group)) {
            state_ = state;
        }
#else
        (void)state;
        (void)group;
#endif
    }
    ~GroupMembership() {
#ifdef INFOMUX_PATCH_BATCH_GROUP
        if (state_ != nullptr) whisper_infomux_state_set_group(state_, nullptr);
#endif
    }
    GroupMembership(const GroupMembership&) = delete;
    GroupMembership& operator=(const GroupMembership&) = delete;

private:
    whisper_state* state_ = nullptr;
};

}  // namespace

void ContextDeleter::operator()(whisper_context* ctx) const { whisper_free(ctx); }
void StateDeleter::operator()(whisper_state* state) const { whisper_free_state(state); }

// Holds a state of the pool for one call.
class Model::Lease {
public:
    Lease(Model& model, bool need_own_state)
        : model_(model), slot_(model.acquire(need_own_state)) {}
    ~Lease() { model_.release(slot_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    int index() const { return slot_; }
    Slot& slot() { return *model_.slots_[static_cast<size_t>(slot_)]; }

private:
    Model& model_;
    int slot_;
};

Model::Model(const std::string& path, const ModelParams& params) {
    whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = params.use_gpu;
    cp.flash_attn = params.flash_attn;
    cp.gpu_device = params.gpu_device;
    cp.dtw_token_timestamps = false;
#ifdef INFOMUX_PATCH_ENCODER_BF16
    if (params.encoder_bf16) cp.infomux_encoder_wtype = GGML_TYPE_BF16;
#endif
    ctx_.reset(whisper_init_from_file_with_params(path.c_str(), cp));
    if (!ctx_) throw EngineFailure("whisper.cpp could not load the model file " + path);
    info_.is_multilingual = whisper_is_multilingual(ctx_.get()) != 0;
    info_.n_vocab = whisper_n_vocab(ctx_.get());
    info_.token_eot = whisper_token_eot(ctx_.get());
    info_.token_beg = whisper_token_beg(ctx_.get());
    info_.model_type = whisper_model_type_readable(ctx_.get());
    info_.ftype = whisper_model_ftype(ctx_.get());
#ifdef INFOMUX_PATCH_ENCODER_BF16
    // whisper.cpp converts only an f16 file's matrices (ftype 1: mostly f16)
    info_.encoder_bf16 = params.encoder_bf16 && info_.ftype == 1;
#endif
    auto own = std::make_unique<Slot>();
    own->state = default_state(ctx_.get());
    slots_.push_back(std::move(own));
#ifdef INFOMUX_PATCH_BATCH_GROUP
    batch_group_ = whisper_infomux_group_init(ctx_.get());
#endif
}

Model::~Model() { shut_down(); }

// Refuses new calls, waits for the running ones, then frees everything.
void Model::shut_down() {
    std::unique_lock<std::mutex> lock(pool_mutex_);
    closed_ = true;
    pool_cv_.wait(lock, [this] { return running_ == 0; });
    slots_.clear();  // the states before the context they were made from
#ifdef INFOMUX_PATCH_BATCH_GROUP
    whisper_infomux_group_free(batch_group_);
#endif
    batch_group_ = nullptr;
    ctx_.reset();
    std::lock_guard<std::mutex> vad_lock(tail_vad_mutex_);
    tail_vad_.reset();
}

bool Model::inside_own_call() const {
    return std::find(t_active_models.begin(), t_active_models.end(),
                     static_cast<const void*>(this)) != t_active_models.end();
}

void Model::close() {
    if (inside_own_call()) {
        throw std::logic_error("close() was called from inside a transcription of this model");
    }
    shut_down();
}

int Model::n_states() const {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    return static_cast<int>(slots_.size());
}

int Model::n_busy() const {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    return running_;
}

int Model::acquire(bool need_own_state) {
    std::unique_lock<std::mutex> lock(pool_mutex_);
    for (;;) {
        if (closed_) throw std::logic_error("the model is closed");
        if (need_own_state) {
            if (!slots_[0]->busy) {
                slots_[0]->busy = true;
                ++running_;
                return 0;
            }
        } else {
            for (size_t i = 0; i < slots_.size(); ++i) {
                if (!slots_[i]->busy) {
                    slots_[i]->busy = true;
                    ++running_;
                    return static_cast<int>(i);
                }
            }
            // none free: another state for this call, on the same weights
            whisper_state* state = whisper_init_state(ctx_.get());
            if (state == nullptr) throw EngineFailure("whisper.cpp could not create a state");
            auto slot = std::make_unique<Slot>();
            slot->state = state;
            slot->owned.reset(state);
            slot->busy = true;
            slots_.push_back(std::move(slot));
            ++running_;
            return static_cast<int>(slots_.size() - 1);
        }
        pool_cv_.wait(lock);
    }
}

void Model::release(int slot) {
    {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        slots_[static_cast<size_t>(slot)]->busy = false;
        --running_;
    }
    pool_cv_.notify_all();
}

TranscribeResult Model::transcribe(const float* samples, size_t n_samples,
                                   const DecodeParams& params, Hooks& hooks) {
    if (inside_own_call()) {
        throw std::logic_error("transcribe() was called from inside a transcription of this model");
    }
    if (n_samples > static_cast<size_t>(INT32_MAX)) {
        throw std::invalid_argument("audio is too long for one call (more than 2^31 samples)");
    }
    const int n = static_cast<int>(n_samples);
    const int n_threads = std::max(1, params.n_threads);
    if (params.offset_ms < 0) {
        throw std::invalid_argument("offset_ms must be 0 or more");
    }
    if (params.vad && params.vad_model_path.empty()) {
        throw std::invalid_argument("vad needs the path of a Silero VAD model");
    }
    if (!params.language.empty() && params.language != "auto" &&
        whisper_lang_id(params.language.c_str()) < 0) {
        throw std::invalid_argument("unknown language code '" + params.language + "'");
    }

    // whisper.cpp's own VAD runs on the context's state only (whisper_full), and caches
    // the VAD model there: a call with another VAD model would silently reuse the first.
    Lease lease(*this, params.vad);
    ActiveCall active(this);
    Slot& slot = lease.slot();
    if (params.vad) {
        if (!slot.vad_model.empty() && slot.vad_model != params.vad_model_path) {
            throw std::invalid_argument("this model already runs whisper.cpp's VAD with " +
                                        slot.vad_model + "; load another Model to use " +
                                        params.vad_model_path);
        }
        slot.vad_model = params.vad_model_path;
    }
    whisper_context* c = ctx_.get();
    whisper_state* state = slot.state;  // nullptr: the context's own (unpatched build)

    TranscribeResult result;
    result.state_slot = lease.index();

    // Language: English-only models always speak "en"; otherwise detect it on the
    // first 30 s so that the probability can be reported.
    std::string language = params.language;
    if (!info_.is_multilingual) {
        language = "en";
    } else if (language.empty() || language == "auto") {
        language.clear();
        if (n >= kMinSamples) {
            const int n_first = std::min(n, 30 * kSampleRate);
            const int rc = state ? whisper_pcm_to_mel_with_state(c, state, samples, n_first, n_threads)
                                 : whisper_pcm_to_mel(c, samples, n_first, n_threads);
            if (rc != 0) throw EngineFailure("whisper.cpp failed to compute the mel spectrogram");
            std::vector<float> probs(static_cast<size_t>(whisper_lang_max_id() + 1), 0.0f);
            const int id = state ? whisper_lang_auto_detect_with_state(c, state, 0, n_threads, probs.data())
                                 : whisper_lang_auto_detect(c, 0, n_threads, probs.data());
            if (id < 0) throw EngineFailure("whisper.cpp failed to detect the language");
            language = whisper_lang_str(id);
            result.language_probability = probs[static_cast<size_t>(id)];
        }
    }
    result.language = language;
    if (language.empty() || n < kMinSamples) return result;  // too short: nothing to transcribe

    CallbackData cb{&hooks};
    cb.samples = samples;
    cb.n_samples = n;
    cb.tail_vad = params.tail_vad_model.empty() ? nullptr : tail_vad(params.tail_vad_model);
    cb.tail_max_cs = std::max(0, params.tail_max_ms / 10);
    whisper_full_params fp = make_full_params(params, language, &cb);
    reset_timings(c, state);
    GroupMembership membership(state, params.batch_decoder ? batch_group_ : nullptr);
    const int rc = (params.vad || state == nullptr) ? whisper_full(c, fp, samples, n)
                                                    : whisper_full_with_state(c, state, fp, samples, n);
    if (hooks.aborted()) throw Aborted();
    if (rc != 0) {
        throw EngineFailure("whisper.cpp inference failed (whisper_full returned " +
                            std::to_string(rc) + ")");
    }

    hooks.report_progress(100);

    ResultReader reader{c, state};
    const int n_segments = reader.n_segments();
    result.segments.reserve(static_cast<size_t>(n_segments));
    for (int i = 0; i < n_segments; ++i) result.segments.push_back(reader.segment(i));
    const int lang = reader.lang_id();
    if (lang >= 0) result.language = whisper_lang_str(lang);
    result.timings = read_timings(c, state, lease.index() == 0);
    result.tail_skipped_s = cb.tail_skipped_s;
    return result;
}

VadModel* Model::tail_vad(const std::string& path) {
    std::lock_guard<std::mutex> lock(tail_vad_mutex_);
    if (!tail_vad_ || tail_vad_path_ != path) {
        tail_vad_ = std::make_unique<VadModel>(path, 1);
        tail_vad_path_ = path;
    }
    return tail_vad_.get();
}

VadModel::VadModel(const std::string& path, int n_threads) {
    whisper_vad_context_params vp = whisper_vad_default_context_params();
    vp.n_threads = std::max(1, n_threads);
    vp.use_gpu = false;
    ctx_ = whisper_vad_init_from_file_with_params(path.c_str(), vp);
    if (ctx_ == nullptr) throw EngineFailure("whisper.cpp could not load the VAD model " + path);
}

VadModel::~VadModel() { close(); }

void VadModel::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ctx_) {
        whisper_vad_free(ctx_);
        ctx_ = nullptr;
    }
}

std::vector<SpeechSpan> VadModel::speech(const float* samples, size_t n_samples,
                                         const VadParams& params) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ctx_) throw std::logic_error("the VAD model is closed");
    if (n_samples > static_cast<size_t>(INT32_MAX)) {
        throw std::invalid_argument("audio is too long for one call (more than 2^31 samples)");
    }
    std::vector<SpeechSpan> spans;
    if (n_samples == 0) return spans;
    whisper_vad_params vp = whisper_vad_default_params();
    vp.threshold = params.threshold;
    vp.min_speech_duration_ms = params.min_speech_ms;
    vp.min_silence_duration_ms = params.min_silence_ms;
    vp.max_speech_duration_s = params.max_speech_s > 0 ? params.max_speech_s : FLT_MAX;
    vp.speech_pad_ms = params.speech_pad_ms;
    whisper_vad_segments* segments =
        whisper_vad_segments_from_samples(ctx_, vp, samples, static_cast<int>(n_samples));
    if (segments == nullptr) throw EngineFailure("whisper.cpp's VAD failed");
    const int count = whisper_vad_segments_n_segments(segments);
    spans.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
        spans.push_back(SpeechSpan{whisper_vad_segments_get_segment_t0(segments, i) / 100.0,
                                   whisper_vad_segments_get_segment_t1(segments, i) / 100.0});
    }
    whisper_vad_free_segments(segments);
    return spans;
}

std::string whisper_version() { return ::whisper_version(); }
std::string system_info() { return whisper_print_system_info(); }

std::vector<std::string> backend_names() {
    std::vector<std::string> names;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        names.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    return names;
}

int lang_max_id() { return whisper_lang_max_id(); }
std::string lang_str(int id) {
    const char* s = whisper_lang_str(id);
    return s ? s : "";
}
int lang_id(const std::string& lang) { return whisper_lang_id(lang.c_str()); }

bool set_all_logits(bool all) {
#ifdef INFOMUX_PATCH_LOGITS
    whisper_infomux_set_all_logits(all);
    return true;
#else
    (void)all;
    return false;
#endif
}

bool set_eager_mel(bool eager) {
#ifdef INFOMUX_PATCH_WINDOW_MEL
    whisper_infomux_set_eager_mel(eager);
    return true;
#else
    (void)eager;
    return false;
#endif
}

bool set_reference_mel(bool reference) {
#ifdef INFOMUX_PATCH_MEL_SUMS
    whisper_infomux_set_reference_mel(reference);
    return true;
#else
    (void)reference;
    return false;
#endif
}

}  // namespace infomux
