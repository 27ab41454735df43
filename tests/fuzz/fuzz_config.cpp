// Hugging Face config.json files (models/config_json.h): EsmConfig and BertConfig from_json_text, and
// the tokenizer switches of tokenizer_config.json (BertOptions::from_json). A config that loads must
// survive its own to_json() unchanged.
#include <nlohmann/json.hpp>

#include "data/tokenizer_bert.h"
#include "models/bert.h"
#include "models/esm.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  bool esm_ok = false, bert_ok = false;
  pe::EsmConfig esm;
  pe::BertConfig bert;
  try {
    esm = pe::EsmConfig::from_json_text(text, "fuzz/config.json");
    esm_ok = true;
  } catch (const pe::Error&) {
  }
  try {
    bert = pe::BertConfig::from_json_text(text, "fuzz/config.json");
    bert_ok = true;
  } catch (const pe::Error&) {
  }
  // Round trip outside the try blocks: a pe::Error here escapes and is a finding.
  if (esm_ok) {
    const pe::EsmConfig again = pe::EsmConfig::from_json_text(esm.to_json(), "fuzz/esm round trip");
    PE_FUZZ_ASSERT(again.to_json() == esm.to_json());
  }
  if (bert_ok) {
    const pe::BertConfig again = pe::BertConfig::from_json_text(bert.to_json(), "fuzz/bert round trip");
    PE_FUZZ_ASSERT(again.to_json() == bert.to_json());
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    try {
      const pe::BertOptions o = pe::BertOptions::from_json(j, "fuzz/tokenizer_config.json");
      const pe::BertOptions again = pe::BertOptions::from_json(o.to_json(), "fuzz/options round trip");
      PE_FUZZ_ASSERT(again.lower_case == o.lower_case && again.strip_accents == o.strip_accents &&
                     again.tokenize_chinese_chars == o.tokenize_chinese_chars);
    } catch (const pe::Error&) {
    }
  }
  return 0;
}
