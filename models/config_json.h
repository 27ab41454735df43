#pragma once
// Reading Hugging Face config.json files: parse errors and wrongly typed fields name the file and key.
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

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
  template <typename T>
  void get(const char* key, T& field) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    try {
      j_[key].get_to(field);
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

}  // namespace pe
