#pragma once
// Reading Hugging Face config.json files: parse errors and wrongly typed fields name the file and key.
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

}  // namespace pe
