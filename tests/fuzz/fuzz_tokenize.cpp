// The tokenizers on untrusted text (descriptions and sequences come from user files): BERT's basic
// tokenizer and WordPiece (data/tokenizer_bert.h) with a small fixed vocabulary, and the ESM-2
// sequence encoder (data/tokenizer_esm.h).
#include "data/tokenizer_bert.h"
#include "data/tokenizer_esm.h"

#include "tests/fuzz/fuzz_common.h"

namespace {
const pe::BertTokenizer& tokenizer(int k) {
  static const std::vector<std::string> vocab = {
      "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "e", "i", "n", "o", "p", "r", "s", "t",
      "##a", "##e", "##i", "##n", "##s", "##t", "##ing", "pro", "##tein", "protein", "the", "of", ".", ",",
      "é", "##é", "σ", "中", "##σ", "kinase", "atp", "-", "(", ")"};
  auto make = [](bool lower, int strip, bool cjk) {
    pe::BertOptions o;
    o.lower_case = lower;
    o.strip_accents = strip;
    o.tokenize_chinese_chars = cjk;
    return pe::BertTokenizer(vocab, "fuzz vocab", o);
  };
  static const pe::BertTokenizer toks[4] = {make(true, -1, true), make(false, -1, true), make(true, 0, false),
                                            make(false, 1, true)};
  return toks[k & 3];
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const int k = size ? data[0] : 0;
  try {
    const pe::BertTokenizer& tok = tokenizer(k);
    (void)pe::bert_basic_tokenize(text, false, tok.options());
    const std::vector<int32_t> ids = tok.encode(text, 0);
    PE_FUZZ_ASSERT(ids.size() >= 2 && ids.front() == tok.cls_id() && ids.back() == tok.sep_id());
    for (int32_t id : ids) PE_FUZZ_ASSERT(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
    (void)tok.decode(ids, k & 4);
    const std::vector<int32_t> capped = tok.encode(text, 2 + (k >> 4));
    PE_FUZZ_ASSERT(capped.size() <= static_cast<size_t>(2 + (k >> 4)) && capped.back() == tok.sep_id());
  } catch (const pe::Error&) {
  }
  try {
    const std::vector<int32_t> ids = pe::esm::encode(text, 0);
    PE_FUZZ_ASSERT(ids.size() >= 2 && ids.front() == pe::esm::kCls && ids.back() == pe::esm::kEos);
    (void)pe::esm::decode(ids, k & 1);
    const size_t cap = 2 + static_cast<size_t>(k >> 3);
    const std::vector<int32_t> capped = pe::esm::encode(text, cap);
    PE_FUZZ_ASSERT(capped.size() <= cap && capped.back() == pe::esm::kEos);
  } catch (const pe::Error&) {
  }
  return 0;
}
