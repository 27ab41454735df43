// config.json number fields (models/config_json.h): only JSON numbers, and for integer fields only
// whole numbers that fit. Found by the config fuzz harness (tests/fuzz/fuzz_config.cpp): 1e30 in
// an integer field was converted to int64 unchecked (undefined behaviour), and 2.5 layers or
// `true` heads were silently truncated to 2 and 1.
#include <doctest/doctest.h>

#include <string>

#include "core/error.h"
#include "models/bert.h"
#include "models/esm.h"

using namespace pe;

namespace {

std::string error_of_esm(const std::string& text) {
  try {
    EsmConfig::from_json_text(text, "cfg.json");
  } catch (const pe::Error& e) {
    return e.what();
  }
  FAIL("expected pe::Error for " << text);
  return {};
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("fuzz regression: config.json integer fields take only whole numbers that fit") {
    CHECK(contains(error_of_esm(R"({"vocab_size": 1e30})"),
                   "config cfg.json: field 'vocab_size' is 1e+30, expected an integer of at most 64 bits"));
    CHECK(contains(error_of_esm(R"({"num_hidden_layers": 2.5})"),
                   "config cfg.json: field 'num_hidden_layers' is 2.5, expected an integer"));
    CHECK(contains(error_of_esm(R"({"hidden_size": 18446744073709551615})"),
                   "field 'hidden_size' is 18446744073709551615, expected an integer of at most 64 bits"));
    CHECK(contains(error_of_esm(R"({"num_attention_heads": true})"),
                   "field 'num_attention_heads' is true, expected a number"));
    CHECK(contains(error_of_esm(R"({"rope_theta": "10000"})"), "field 'rope_theta' is \"10000\", expected a number"));
    CHECK(contains(error_of_esm(R"({"vocab_size": -1e300})"), "field 'vocab_size' is -1e+300, expected an integer"));
    // Range checks still name the field for integers that do fit.
    CHECK(contains(error_of_esm(R"({"vocab_size": -3})"), "field 'vocab_size' is -3, must be in [1, "));

    // Whole numbers written as floats are still read (as before), and so are plain integers.
    const EsmConfig c = EsmConfig::from_json_text(R"({"hidden_size": 64.0, "num_attention_heads": 4, "intermediate_size": 128,
                                                     "rope_theta": 10000})",
                                                  "cfg.json");
    CHECK(c.hidden_size == 64);
    CHECK(c.num_heads == 4);
    CHECK(c.rope_theta == 10000.0);
    // A loaded config survives its own to_json.
    CHECK(EsmConfig::from_json_text(c.to_json(), "again").to_json() == c.to_json());

    try {
      BertConfig::from_json_text(R"({"type_vocab_size": 2.000001})", "bert.json");
      FAIL("expected pe::Error");
    } catch (const pe::Error& e) {
      CHECK(contains(e.what(), "config bert.json: field 'type_vocab_size' is 2.000001, expected an integer"));
    }
    const BertConfig b = BertConfig::from_json_text(R"({"type_vocab_size": 2, "layer_norm_eps": 1e-12})", "bert.json");
    CHECK(b.type_vocab_size == 2);
  }
}
