// FASTA reader (data/fasta.h): plain or gzip input through LineReader.
#include "data/fasta.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "fuzz.fasta");
  try {
    pe::FastaReader r(f.path());
    pe::ProteinRecord rec;
    size_t n = 0;
    while (r.next(rec)) {
      // What the reader promises for every record it returns.
      PE_FUZZ_ASSERT(!rec.id.empty() && !rec.seq.empty());
      PE_FUZZ_ASSERT(pe::first_bad_residue(rec.seq) == std::string::npos);
      PE_FUZZ_ASSERT(rec.line > 0);
      ++n;
    }
    PE_FUZZ_ASSERT(r.stats().records == n);
    (void)r.stats().summary();
  } catch (const pe::Error&) {
  }
  (void)pe::fasta_accession(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
