// JSON Lines protein–text reader (data/jsonl.h).
#include "data/jsonl.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "fuzz.jsonl");
  try {
    pe::JsonlReader r(f.path());
    pe::ProteinRecord rec;
    while (r.next(rec)) {
      PE_FUZZ_ASSERT(!rec.id.empty() && !rec.seq.empty() && !rec.text.empty());
      PE_FUZZ_ASSERT(pe::first_bad_residue(rec.seq) == std::string::npos);
    }
    (void)r.stats().summary();
  } catch (const pe::Error&) {
  }
  return 0;
}
