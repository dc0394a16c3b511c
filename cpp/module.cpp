// infomux._whisper: the pybind11 binding over engine.hpp.
//
// Rules kept here: the GIL is released around model loading and the whole of
// inference; callbacks take it only to call Python; a Python exception raised in
// a callback (or a signal handler, e.g. KeyboardInterrupt) aborts inference and
// is re-raised in the caller once whisper_full has returned (as itself, before any
// error of whisper.cpp's); no C++ exception ever unwinds through whisper.cpp;
// whisper.cpp/ggml log lines go to the Python logger "infomux.whisper", filtered by
// level before the GIL is taken, and the last ERROR line of a failed call is added to
// its exception.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine.hpp"
#include "ggml.h"
#include "whisper.h"

namespace py = pybind11;
using namespace pybind11::literals;

#ifndef INFOMUX_VERSION
#define INFOMUX_VERSION "0.0.0"
#endif
#ifndef INFOMUX_BUILD_OPTIONS
#define INFOMUX_BUILD_OPTIONS ""
#endif
#ifndef INFOMUX_WHISPER_ORIGIN
#define INFOMUX_WHISPER_ORIGIN ""
#endif
#ifndef INFOMUX_PATCHES
#define INFOMUX_PATCHES "none"
#endif

namespace {

// ---------------------------------------------------------------------------
// Logging: whisper.cpp and ggml -> logging.getLogger("infomux.whisper")
// ---------------------------------------------------------------------------
std::atomic<int> g_log_min_level{GGML_LOG_LEVEL_WARN};
thread_local int g_last_log_level = GGML_LOG_LEVEL_INFO;

int python_level(int ggml_level) {
    switch (ggml_level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        case GGML_LOG_LEVEL_INFO: return 20;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        default: return 20;
    }
}

bool python_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// The last ERROR line whisper.cpp logged on this thread (shown in the failure's message
// even when the logger would not print it).
thread_local std::string g_last_error;

std::string strip_newlines(const char* text) {
    std::string message(text);
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
    return message;
}

void log_to_python(ggml_log_level level, const char* text, void*) {
    int lvl = static_cast<int>(level);
    if (lvl == GGML_LOG_LEVEL_CONT) lvl = g_last_log_level;
    g_last_log_level = lvl;
    if (text == nullptr) return;
    // Our own encoder_begin callback ends a call this way (an abort, or a speechless
    // tail): not an error.
    if (std::strstr(text, "encoder_begin_callback returned false") != nullptr) return;
    if (lvl == GGML_LOG_LEVEL_ERROR) {
        std::string line = strip_newlines(text);
        if (!line.empty()) g_last_error = line;
    }
    if (lvl < g_log_min_level.load(std::memory_order_relaxed)) return;
    if (!Py_IsInitialized() || python_finalizing()) return;
    std::string message = strip_newlines(text);
    if (message.empty()) return;
    py::gil_scoped_acquire gil;
    try {
        py::module_::import("logging")
            .attr("getLogger")("infomux.whisper")
            .attr("log")(python_level(lvl), "%s", message);
    } catch (py::error_already_set& err) {
        err.discard_as_unraisable("infomux._whisper log callback");
    }
}

// Python logging level -> lowest ggml level that is forwarded.
void set_log_level(int py_level) {
    int min_level;
    if (py_level <= 10) min_level = GGML_LOG_LEVEL_DEBUG;
    else if (py_level <= 20) min_level = GGML_LOG_LEVEL_INFO;
    else if (py_level <= 30) min_level = GGML_LOG_LEVEL_WARN;
    else if (py_level <= 40) min_level = GGML_LOG_LEVEL_ERROR;
    else min_level = GGML_LOG_LEVEL_CONT + 1;  // nothing
    g_log_min_level.store(min_level, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Records -> Python tuples (the typed dataclasses live in infomux.engine)
// ---------------------------------------------------------------------------
py::tuple segment_to_python(const infomux::SegmentRecord& seg) {
    py::list tokens(seg.tokens.size());
    for (size_t j = 0; j < seg.tokens.size(); ++j) {
        const auto& t = seg.tokens[j];
        tokens[j] = py::make_tuple(t.id, py::bytes(t.text), t.p, t.t0, t.t1);
    }
    return py::make_tuple(seg.t0, seg.t1, py::bytes(seg.text), seg.no_speech_prob, tokens);
}

// The engine reads float32 mono samples in place: refuse anything else before C++.
void check_samples(const py::array& samples) {
    if (!samples.dtype().is(py::dtype::of<float>())) {
        throw py::type_error("samples must be a float32 array, got " +
                             std::string(py::str(samples.dtype())));
    }
    if (samples.ndim() != 1) {
        throw py::value_error("samples must be 1-D (mono), got " +
                              std::to_string(samples.ndim()) + " dimensions");
    }
    if (!(samples.flags() & py::array::c_style)) {
        throw py::value_error("samples must be C-contiguous");
    }
}

// ggml's own quantizers (the reference ones: ggml_quantize_chunk), for the converter.
py::bytes quantize(const py::array& values, const std::string& type_name) {
    check_samples(values);
    static const std::pair<const char*, ggml_type> kTypes[] = {
        {"q8_0", GGML_TYPE_Q8_0}, {"q5_1", GGML_TYPE_Q5_1}, {"q5_0", GGML_TYPE_Q5_0},
        {"q4_1", GGML_TYPE_Q4_1}, {"q4_0", GGML_TYPE_Q4_0}};
    ggml_type type = GGML_TYPE_COUNT;
    for (const auto& [name, t] : kTypes) {
        if (type_name == name) type = t;
    }
    if (type == GGML_TYPE_COUNT) {
        throw py::value_error("unknown quantization type '" + type_name +
                              "'; choose from q8_0, q5_1, q5_0, q4_1, q4_0");
    }
    const auto n = static_cast<int64_t>(values.shape(0));
    const int64_t block = ggml_blck_size(type);
    if (n % block != 0) {
        throw py::value_error("the number of values must be a multiple of " + std::to_string(block));
    }
    std::string out(ggml_row_size(type, n), '\0');
    const auto* src = static_cast<const float*>(values.data());
    {
        py::gil_scoped_release release;
        // one row per block keeps each row's size far below int limits
        ggml_quantize_chunk(type, src, out.data(), 0, n / block, block, nullptr);
    }
    return py::bytes(out);
}

// Hooks that reach Python. Every Python call happens with the GIL taken here and
// any exception is stashed, which aborts inference at the next poll.
class PyHooks final : public infomux::Hooks {
public:
    PyHooks(py::object on_segment, py::object on_progress, py::object should_abort)
        : on_segment_(std::move(on_segment)),
          on_progress_(std::move(on_progress)),
          should_abort_(std::move(should_abort)) {}

    bool wants_segments() const override { return !on_segment_.is_none(); }

    void on_segments(std::vector<infomux::SegmentRecord> segments) override {
        if (pending_) return;
        py::gil_scoped_acquire gil;
        try {
            for (const auto& seg : segments) on_segment_(segment_to_python(seg));
        } catch (...) {
            stash_current();
        }
    }

    void on_progress(int percent) override {
        if (pending_ || on_progress_.is_none()) return;
        py::gil_scoped_acquire gil;
        try {
            on_progress_(percent);
        } catch (...) {
            stash_current();
        }
    }

    // Re-raises a stashed Python exception, if any (GIL held by the caller).
    void raise_pending() {
        if (pending_) {
            py::error_already_set err = std::move(*pending_);
            pending_.reset();
            throw err;
        }
    }

    bool cancelled() const { return cancelled_; }

    // Keeps the exception being handled (GIL held) as a Python exception: a Python one
    // as itself, any C++ one (bad_alloc, a cast error) as RuntimeError. Nothing unwinds
    // through whisper.cpp, which is not exception-safe.
    void stash_current() {
        try {
            throw;
        } catch (py::error_already_set& err) {
            pending_.emplace(std::move(err));
        } catch (const std::exception& exc) {
            PyErr_SetString(PyExc_RuntimeError,
                            (std::string("error in an infomux callback: ") + exc.what()).c_str());
            pending_.emplace();
        } catch (...) {
            PyErr_SetString(PyExc_RuntimeError, "unknown C++ error in an infomux callback");
            pending_.emplace();
        }
    }

protected:
    bool check_abort() override {
        if (pending_) return true;
        // Taking the GIL after every graph node would cost; poll Python at most
        // every 50 ms, which keeps Ctrl-C and cancel() well under a second.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_poll_ < std::chrono::milliseconds(50)) return false;
        last_poll_ = now;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
            pending_.emplace();  // fetches the exception the signal handler raised
            return true;
        }
        if (!should_abort_.is_none()) {
            try {
                if (py::bool_(should_abort_())) {
                    cancelled_ = true;
                    return true;
                }
            } catch (...) {
                stash_current();
                return true;
            }
        }
        return false;
    }

private:
    py::object on_segment_, on_progress_, should_abort_;
    std::optional<py::error_already_set> pending_;
    bool cancelled_ = false;
    std::chrono::steady_clock::time_point last_poll_{};
};

// The Python-visible model: owns an infomux::Model.
class PyModel {
public:
    PyModel(const std::string& path, bool use_gpu, bool flash_attn, int gpu_device,
            bool encoder_bf16) {
        infomux::ModelParams params;
        params.use_gpu = use_gpu;
        params.flash_attn = flash_attn;
        params.gpu_device = gpu_device;
        params.encoder_bf16 = encoder_bf16;
        py::gil_scoped_release release;
        model_ = std::make_unique<infomux::Model>(path, params);
    }

    py::dict transcribe(const py::array& samples, const infomux::DecodeParams& params,
                        py::object on_segment, py::object on_progress, py::object should_abort) {
        check_samples(samples);
        // The buffer is used in place: no copy. `samples` keeps it alive.
        const auto* data = static_cast<const float*>(samples.data());
        const auto n = static_cast<size_t>(samples.shape(0));

        PyHooks hooks(std::move(on_segment), std::move(on_progress), std::move(should_abort));
        infomux::Model& engine = model();
        infomux::TranscribeResult result;
        bool aborted = false;
        std::exception_ptr failure;
        std::string native_error;
        {
            py::gil_scoped_release release;
            g_last_error.clear();
            try {
                result = engine.transcribe(data, n, params, hooks);
            } catch (const infomux::Aborted&) {
                aborted = true;
            } catch (...) {
                failure = std::current_exception();
                native_error = g_last_error;
            }
        }
        // A callback's own exception comes first, as itself.
        hooks.raise_pending();
        if (aborted) {
            throw AbortedError(hooks.cancelled() ? "transcription cancelled"
                                                 : "transcription aborted");
        }
        if (failure) {
            try {
                std::rethrow_exception(failure);
            } catch (const infomux::EngineFailure& exc) {
                std::string message = exc.what();
                if (!native_error.empty()) message += ": " + native_error;
                throw EngineFailureError(message);
            }
        }

        py::list segments(result.segments.size());
        for (size_t i = 0; i < result.segments.size(); ++i) {
            segments[i] = segment_to_python(result.segments[i]);
        }
        return py::dict(
            "segments"_a = segments, "language"_a = result.language,
            "language_probability"_a =
                result.language_probability < 0 ? py::object(py::none())
                                                : py::object(py::float_(result.language_probability)),
            "timings"_a = timings_to_python(result.timings), "state_slot"_a = result.state_slot,
            "tail_skipped_s"_a = result.tail_skipped_s);
    }

    // Per-call averages under the keys job.json has always had, plus totals and counts.
    static py::dict timings_to_python(const infomux::Timings& t) {
        py::dict out;
        if (!t.available) return out;
        const auto avg = [](double total, int count) { return count > 0 ? total / count : 0.0; };
        out["sample_ms"] = avg(t.sample_ms, t.n_sample);
        out["encode_ms"] = avg(t.encode_ms, t.n_encode);
        out["decode_ms"] = avg(t.decode_ms, t.n_decode);
        out["batchd_ms"] = avg(t.batchd_ms, t.n_batchd);
        out["prompt_ms"] = avg(t.prompt_ms, t.n_prompt);
#ifdef INFOMUX_PATCH_STATE_TIMINGS
        out["mel_total_ms"] = t.mel_ms;
        out["sample_total_ms"] = t.sample_ms;
        out["encode_total_ms"] = t.encode_ms;
        out["decode_total_ms"] = t.decode_ms;
        out["batchd_total_ms"] = t.batchd_ms;
        out["prompt_total_ms"] = t.prompt_ms;
        out["sample_calls"] = t.n_sample;
        out["encode_calls"] = t.n_encode;
        out["decode_calls"] = t.n_decode;
        out["batchd_calls"] = t.n_batchd;
        out["prompt_calls"] = t.n_prompt;
        out["fallbacks"] = t.n_fallbacks;
        out["short_window_calls"] = t.n_short_windows;
        out["shared_decode_calls"] = t.n_shared_decodes;
#endif
        return out;
    }

    infomux::Model& model() {
        if (!model_ || model_->closed()) throw py::value_error("the model is closed");
        return *model_;
    }

    void close() {
        if (!model_) return;
        py::gil_scoped_release release;  // waits for calls running on other threads
        model_->close();
    }

    class AbortedError : public std::runtime_error {
    public:
        using std::runtime_error::runtime_error;
    };
    class EngineFailureError : public std::runtime_error {
    public:
        using std::runtime_error::runtime_error;
    };

private:
    std::unique_ptr<infomux::Model> model_;
};

// Silero VAD: speech spans (seconds) of a whole float32 buffer.
class PyVadModel {
public:
    PyVadModel(const std::string& path, int n_threads) {
        py::gil_scoped_release release;
        try {
            vad_ = std::make_unique<infomux::VadModel>(path, n_threads);
        } catch (const infomux::EngineFailure& exc) {
            throw PyModel::EngineFailureError(exc.what());
        }
    }

    std::vector<std::pair<double, double>> speech(const py::array& samples,
                                                  const infomux::VadParams& params) {
        if (!vad_) throw py::value_error("the VAD model is closed");
        check_samples(samples);
        const auto* data = static_cast<const float*>(samples.data());
        const auto n = static_cast<size_t>(samples.shape(0));
        std::vector<infomux::SpeechSpan> spans;
        std::string failure;
        {
            py::gil_scoped_release release;
            try {
                spans = vad_->speech(data, n, params);
            } catch (const infomux::EngineFailure& exc) {
                failure = exc.what();
            }
        }
        if (!failure.empty()) throw PyModel::EngineFailureError(failure);
        std::vector<std::pair<double, double>> out;
        out.reserve(spans.size());
        for (const auto& span : spans) out.emplace_back(span.start, span.end);
        return out;
    }

    void close() {
        if (!vad_) return;
        py::gil_scoped_release release;
        vad_.reset();
    }

private:
    std::unique_ptr<infomux::VadModel> vad_;
};

}  // namespace

PYBIND11_MODULE(_whisper, m) {
    m.doc() = "infomux's binding to whisper.cpp (use infomux.engine, the typed wrapper).";
    m.attr("__version__") = INFOMUX_VERSION;
    m.attr("BUILD_OPTIONS") = INFOMUX_BUILD_OPTIONS;
    m.attr("WHISPER_ORIGIN") = INFOMUX_WHISPER_ORIGIN;
    m.attr("SAMPLE_RATE") = WHISPER_SAMPLE_RATE;
    m.attr("PATCHES") = INFOMUX_PATCHES;

    py::register_exception<PyModel::AbortedError>(m, "AbortedError", PyExc_RuntimeError);
    py::register_exception<PyModel::EngineFailureError>(m, "EngineFailure", PyExc_RuntimeError);

    whisper_log_set(log_to_python, nullptr);

    m.def("whisper_version", &infomux::whisper_version, "Version of the linked whisper.cpp.");
    m.def("system_info", &infomux::system_info, "whisper.cpp's system info (SIMD features, backends).");
    m.def("backend_names", &infomux::backend_names, "Names of the registered ggml backends.");
    m.def("lang_max_id", &infomux::lang_max_id, "Largest language id.");
    m.def("lang_str", &infomux::lang_str, "id"_a, "Language code of an id ('' if unknown).");
    m.def("lang_id", &infomux::lang_id, "lang"_a, "Id of a language code (-1 if unknown).");
    m.def("set_log_level", &set_log_level, "level"_a,
          "Forward native log lines at this Python logging level and above.");
    m.def("quantize", &quantize, "values"_a, "type"_a,
          "Quantize float32 values (a multiple of 32) with ggml's reference quantizer; the raw "
          "ggml blocks.");
    m.def("set_all_logits", &infomux::set_all_logits, "all"_a,
          "Patch 0001's switch: True projects every token onto the vocabulary, as unpatched "
          "whisper.cpp does. Returns False if this build lacks the patch.");
    m.def("set_eager_mel", &infomux::set_eager_mel, "eager"_a,
          "Patch 0009's switch: True computes the whole input's log-mel spectrogram before "
          "decoding, as unpatched whisper.cpp does. Returns False if this build lacks the patch.");
    m.def("set_reference_mel", &infomux::set_reference_mel, "reference"_a,
          "Patch 0013's switch: True computes the spectrogram's DFTs and mel sums one term after "
          "the other, as unpatched whisper.cpp does. Returns False if this build lacks the patch.");

    py::class_<infomux::VadParams>(m, "VadParams")
        .def(py::init<>())
        .def_readwrite("threshold", &infomux::VadParams::threshold)
        .def_readwrite("min_speech_ms", &infomux::VadParams::min_speech_ms)
        .def_readwrite("min_silence_ms", &infomux::VadParams::min_silence_ms)
        .def_readwrite("max_speech_s", &infomux::VadParams::max_speech_s)
        .def_readwrite("speech_pad_ms", &infomux::VadParams::speech_pad_ms);

    py::class_<PyVadModel>(m, "VadModel")
        .def(py::init<const std::string&, int>(), "path"_a, "n_threads"_a = 1,
             "Load a ggml Silero VAD model (validate the file first).")
        .def("speech", &PyVadModel::speech, "samples"_a, "params"_a,
             "Speech spans (start, end) in seconds of 16 kHz mono float32 samples.")
        .def("close", &PyVadModel::close, "Free the native VAD model.");

    py::class_<infomux::DecodeParams>(m, "DecodeParams")
        .def(py::init<>())
        .def_readwrite("language", &infomux::DecodeParams::language)
        .def_readwrite("translate", &infomux::DecodeParams::translate)
        .def_readwrite("n_threads", &infomux::DecodeParams::n_threads)
        .def_readwrite("beam_size", &infomux::DecodeParams::beam_size)
        .def_readwrite("best_of", &infomux::DecodeParams::best_of)
        .def_readwrite("temperature", &infomux::DecodeParams::temperature)
        .def_readwrite("temperature_inc", &infomux::DecodeParams::temperature_inc)
        .def_readwrite("initial_prompt", &infomux::DecodeParams::initial_prompt)
        .def_readwrite("prompt_tokens", &infomux::DecodeParams::prompt_tokens)
        .def_readwrite("token_timestamps", &infomux::DecodeParams::token_timestamps)
        .def_readwrite("offset_ms", &infomux::DecodeParams::offset_ms)
        .def_readwrite("short_last_window", &infomux::DecodeParams::short_last_window)
        .def_readwrite("max_len", &infomux::DecodeParams::max_len)
        .def_readwrite("split_on_word", &infomux::DecodeParams::split_on_word)
        .def_readwrite("no_context", &infomux::DecodeParams::no_context)
        .def_readwrite("suppress_blank", &infomux::DecodeParams::suppress_blank)
        .def_readwrite("suppress_nst", &infomux::DecodeParams::suppress_nst)
        .def_readwrite("max_text_ctx", &infomux::DecodeParams::max_text_ctx)
        .def_readwrite("vad", &infomux::DecodeParams::vad)
        .def_readwrite("vad_model_path", &infomux::DecodeParams::vad_model_path)
        .def_readwrite("vad_threshold", &infomux::DecodeParams::vad_threshold)
        .def_readwrite("vad_min_speech_ms", &infomux::DecodeParams::vad_min_speech_ms)
        .def_readwrite("vad_min_silence_ms", &infomux::DecodeParams::vad_min_silence_ms)
        .def_readwrite("vad_speech_pad_ms", &infomux::DecodeParams::vad_speech_pad_ms)
        .def_readwrite("tail_vad_model", &infomux::DecodeParams::tail_vad_model)
        .def_readwrite("tail_max_ms", &infomux::DecodeParams::tail_max_ms)
        .def_readwrite("batch_decoder", &infomux::DecodeParams::batch_decoder);

    py::class_<PyModel>(m, "Model")
        .def(py::init<const std::string&, bool, bool, int, bool>(), "path"_a, "use_gpu"_a = true,
             "flash_attn"_a = true, "gpu_device"_a = 0, "encoder_bf16"_a = false,
             "Load a ggml model file (validate it first: whisper.cpp aborts on some malformed files).")
        .def("transcribe", &PyModel::transcribe, "samples"_a, "params"_a,
             "on_segment"_a = py::none(), "on_progress"_a = py::none(), "should_abort"_a = py::none(),
             "Transcribe 16 kHz mono float32 samples (used without a copy).")
        .def("close", &PyModel::close, "Free the native model.")
        .def_property_readonly("closed", [](PyModel& self) {
            try {
                self.model();
                return false;
            } catch (const py::value_error&) {
                return true;
            }
        })
        .def_property_readonly("is_multilingual", [](PyModel& self) { return self.model().info().is_multilingual; })
        .def_property_readonly("n_vocab", [](PyModel& self) { return self.model().info().n_vocab; })
        .def_property_readonly("token_eot", [](PyModel& self) { return self.model().info().token_eot; })
        .def_property_readonly("token_beg", [](PyModel& self) { return self.model().info().token_beg; })
        .def_property_readonly("model_type", [](PyModel& self) { return self.model().info().model_type; })
        .def_property_readonly("ftype", [](PyModel& self) { return self.model().info().ftype; })
        .def_property_readonly("encoder_bf16", [](PyModel& self) { return self.model().info().encoder_bf16; })
        .def_property_readonly("n_states", [](PyModel& self) { return self.model().n_states(); },
                               "whisper_states created so far (one per concurrent call).")
        .def_property_readonly("n_busy", [](PyModel& self) { return self.model().n_busy(); },
                               "Calls running on the model now.");
}
