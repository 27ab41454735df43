// BERT vocab.txt loading (BertTokenizer::from_file, data/tokenizer_bert.h), then the loaded tokenizer
// on the same bytes read as text: every id it produces must decode.
#include "data/tokenizer_bert.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "vocab.txt");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pe::BertOptions opt;
  if (size > 0) {  // the switches from the last byte, so both casing paths are reached
    const unsigned char b = data[size - 1];
    opt.lower_case = b & 1;
    opt.strip_accents = (b >> 1) % 3 - 1;
    opt.tokenize_chinese_chars = b & 8;
  }
  try {
    const pe::BertTokenizer tok = pe::BertTokenizer::from_file(f.path(), opt);
    PE_FUZZ_ASSERT(tok.vocab_size() >= 5);
    for (int32_t id : {tok.pad_id(), tok.unk_id(), tok.cls_id(), tok.sep_id(), tok.mask_id()})
      PE_FUZZ_ASSERT(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
    const std::vector<int32_t> ids = tok.encode(text, 0);
    PE_FUZZ_ASSERT(ids.size() >= 2 && ids.front() == tok.cls_id() && ids.back() == tok.sep_id());
    for (int32_t id : ids) PE_FUZZ_ASSERT(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
    (void)tok.decode(ids, true);
    (void)tok.decode(ids, false);
    const std::vector<int32_t> capped = tok.encode(text, 8);
    PE_FUZZ_ASSERT(capped.size() <= 8 && capped.back() == tok.sep_id());
    (void)tok.tokenize(text);
  } catch (const pe::Error&) {
  }
  return 0;
}
