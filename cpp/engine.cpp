#include "engine.hpp"

#include <algorithm>
#include <cfloat>

#include "ggml-backend.h"
#include "whisper.h"

namespace infomux {

namespace {

constexpr int kSampleRate = WHISPER_SAMPLE_RATE;

// Reads results either from an explicit state (inside callbacks) or from the
// context's own state (after whisper_full returns).
struct ResultReader {
    whisper_context* ctx;
    whisper_state* state;  // nullptr: the context's state

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
};

struct CallbackData {
    Hooks* hooks;
    whisper_context* ctx;
};

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

bool on_encoder_begin(whisper_context*, whisper_state*, void* user_data) {
    return !static_cast<CallbackData*>(user_data)->hooks->poll_abort();
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
    fp.offset_ms = 0;
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

}  // namespace

void ContextDeleter::operator()(whisper_context* ctx) const { whisper_free(ctx); }

Model::Model(const std::string& path, const ModelParams& params) {
    whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = params.use_gpu;
    cp.flash_attn = params.flash_attn;
    cp.gpu_device = params.gpu_device;
    cp.dtw_token_timestamps = false;
    ctx_.reset(whisper_init_from_file_with_params(path.c_str(), cp));
    if (!ctx_) throw std::runtime_error("whisper.cpp could not load the model file " + path);
}

whisper_context* Model::ctx() const {
    if (!ctx_) throw std::logic_error("the model is closed");
    return ctx_.get();
}

void Model::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    ctx_.reset();
}

bool Model::is_multilingual() const { return whisper_is_multilingual(ctx()) != 0; }
int Model::n_vocab() const { return whisper_n_vocab(ctx()); }
int Model::token_eot() const { return whisper_token_eot(ctx()); }
std::string Model::model_type() const { return whisper_model_type_readable(ctx()); }
int Model::ftype() const { return whisper_model_ftype(ctx()); }

TranscribeResult Model::transcribe(const float* samples, size_t n_samples,
                                   const DecodeParams& params, Hooks& hooks) {
    std::lock_guard<std::mutex> lock(mutex_);
    whisper_context* c = ctx();
    TranscribeResult result;
    if (n_samples > static_cast<size_t>(INT32_MAX)) {
        throw std::invalid_argument("audio is too long for one call (more than 2^31 samples)");
    }
    const int n = static_cast<int>(n_samples);

    // Language: English-only models always speak "en"; otherwise detect it on the
    // first 30 s so that the probability can be reported.
    std::string language = params.language;
    if (!whisper_is_multilingual(c)) {
        language = "en";
    } else if (language.empty() || language == "auto") {
        language.clear();
        if (n >= kSampleRate) {
            const int n_first = std::min(n, 30 * kSampleRate);
            if (whisper_pcm_to_mel(c, samples, n_first, std::max(1, params.n_threads)) != 0) {
                throw std::runtime_error("whisper.cpp failed to compute the mel spectrogram");
            }
            std::vector<float> probs(static_cast<size_t>(whisper_lang_max_id() + 1), 0.0f);
            const int id = whisper_lang_auto_detect(c, 0, std::max(1, params.n_threads), probs.data());
            if (id < 0) throw std::runtime_error("whisper.cpp failed to detect the language");
            language = whisper_lang_str(id);
            result.language_probability = probs[static_cast<size_t>(id)];
        }
    } else if (whisper_lang_id(language.c_str()) < 0) {
        throw std::invalid_argument("unknown language code '" + language + "'");
    }
    result.language = language;
    if (language.empty()) return result;  // too short to detect: nothing to transcribe

    CallbackData cb{&hooks, c};
    whisper_full_params fp = make_full_params(params, language, &cb);
    whisper_reset_timings(c);
    const int rc = whisper_full(c, fp, samples, n);
    if (hooks.aborted()) throw Aborted();
    if (rc != 0) {
        throw std::runtime_error("whisper.cpp inference failed (whisper_full returned " +
                                 std::to_string(rc) + ")");
    }

    hooks.report_progress(100);

    ResultReader reader{c, nullptr};
    const int n_segments = reader.n_segments();
    result.segments.reserve(static_cast<size_t>(n_segments));
    for (int i = 0; i < n_segments; ++i) result.segments.push_back(reader.segment(i));
    const int lang = whisper_full_lang_id(c);
    if (lang >= 0) result.language = whisper_lang_str(lang);

    if (whisper_timings* t = whisper_get_timings(c)) {
        result.timings = Timings{t->sample_ms, t->encode_ms, t->decode_ms, t->batchd_ms, t->prompt_ms};
        delete t;
    }
    return result;
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

}  // namespace infomux
