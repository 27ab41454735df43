#pragma once
// Reading Hugging Face config.json files: parse errors and wrongly typed fields name the file and key.
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace pe {

class JsonConfig {
 public:
  JsonConfig(const std::string& text, std::string source) : source_(std::move(source)) {
    try {
      j_ = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      PE_FAIL("config ", source_, ": not valid JSON: ", e.what());
    }
  }
  // Sets `field` from `key` when present and not null; keeps the default otherwise.
  // A number field takes only a JSON number (not true/false); an integer field only a whole number
  // that fits it (64.0 is accepted as 64; 64.5, 1e30 or 2^64 are errors, where a plain conversion
  // would truncate or be undefined behaviour).
  template <typename T>
  void get(const char* key, T& field) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    const nlohmann::json& v = j_[key];
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      PE_CHECK(v.is_number(), "config ", source_, ": field '", key, "' is ", v.dump(), ", expected a number");
      if constexpr (std::is_integral_v<T>) {
        field = whole_number<T>(key, v);
        return;
      }
    }
    try {
      v.get_to(field);
    } catch (const nlohmann::json::exception& e) {
      PE_FAIL("config ", source_, ": field '", key, "': ", e.what());
    }
  }
  template <typename T>
  T value(const char* key, T fallback) const {
    get(key, fallback);
    return fallback;
  }
  const std::string& source() const { return source_; }

 private:
  template <typename T>
  T whole_number(const char* key, const nlohmann::json& v) const {
    using lim = std::numeric_limits<T>;
    bool fits = false;
    if (v.is_number_unsigned()) {
      fits = v.get<uint64_t>() <= static_cast<uint64_t>(lim::max());
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      fits = lim::is_signed ? (i >= static_cast<int64_t>(lim::min()) &&
                               (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(lim::max())))
                            : (i >= 0 && static_cast<uint64_t>(i) <= static_cast<uint64_t>(lim::max()));
    } else {
      // A float: whole and inside T's range [min, 2^digits) (powers of two, exact as doubles).
      const double d = v.get<double>();
      const double lo = static_cast<double>(lim::min()), hi_excl = std::ldexp(1.0, lim::digits);
      PE_CHECK(std::isfinite(d) && std::floor(d) == d && d >= lo && d < hi_excl, "config ", source_, ": field '", key,
               "' is ", v.dump(), ", expected an integer of at most ", lim::digits + lim::is_signed, " bits");
      return static_cast<T>(d);
    }
    PE_CHECK(fits, "config ", source_, ": field '", key, "' is ", v.dump(), ", expected an integer of at most ",
             lim::digits + lim::is_signed, " bits");
    return v.get<T>();
  }

  nlohmann::json j_;
  std::string source_;
};

// Range checks of configuration fields: `source` names the file (or option set), `key` the field.
// Sizes have generous upper bounds so that a typo fails here, before anything is allocated.
inline void check_config_int(const std::string& source, const char* key, int64_t v, int64_t lo, int64_t hi) {
  PE_CHECK(v >= lo && v <= hi, "config ", source, ": field '", key, "' is ", v, ", must be in [", lo, ", ", hi, "]");
}
inline void check_config_real(const std::string& source, const char* key, double v, double lo, double hi) {
  PE_CHECK(std::isfinite(v) && v >= lo && v <= hi, "config ", source, ": field '", key, "' is ", v,
           ", must be finite and in [", lo, ", ", hi, "]");
}
// Upper bounds shared by the model configurations (and the command-line options that set them).
constexpr int64_t kMaxHidden = 65536, kMaxLayers = 1024, kMaxVocab = int64_t(1) << 22, kMaxPositions = int64_t(1) << 20;

// The fields every transformer encoder configuration (ESM-2, BERT) shares, checked the same way.
inline void check_encoder_fields(const std::string& source, int64_t vocab_size, int64_t hidden_size, int64_t num_layers,
                                 int64_t num_heads, int64_t intermediate_size, int64_t max_position_embeddings,
                                 double layer_norm_eps, int64_t pad_token_id) {
  check_config_int(source, "vocab_size", vocab_size, 1, kMaxVocab);
  check_config_int(source, "hidden_size", hidden_size, 1, kMaxHidden);
  check_config_int(source, "num_hidden_layers", num_layers, 1, kMaxLayers);
  check_config_int(source, "num_attention_heads", num_heads, 1, hidden_size);
  PE_CHECK(hidden_size % num_heads == 0, "config ", source, ": field 'hidden_size' ", hidden_size,
           " is not a multiple of field 'num_attention_heads' ", num_heads);
  check_config_int(source, "intermediate_size", intermediate_size, 1, 4 * kMaxHidden);
  check_config_int(source, "max_position_embeddings", max_position_embeddings, 1, kMaxPositions);
  check_config_real(source, "layer_norm_eps", layer_norm_eps, 0, 1);
  check_config_int(source, "pad_token_id", pad_token_id, 0, vocab_size - 1);
}

}  // namespace pe
