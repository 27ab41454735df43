// UniProtKB flat-file reader (data/uniprot.h): every entry with all text fields.
#include "data/uniprot.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "fuzz.dat");
  try {
    pe::UniProtReader r(f.path());
    pe::UniProtEntry e;
    while (r.next_entry(e)) {
      PE_FUZZ_ASSERT(!e.accession.empty() && !e.seq.empty());
      PE_FUZZ_ASSERT(pe::first_bad_residue(e.seq) == std::string::npos);
      for (const auto& g : e.go) PE_FUZZ_ASSERT(g.aspect == 'F' || g.aspect == 'P' || g.aspect == 'C');
      (void)pe::uniprot_text(e, pe::kUpName | pe::kUpGene | pe::kUpOrganism | pe::kUpFunction |
                                    pe::kUpKeywords | pe::kUpGo);
    }
    (void)r.stats().summary();
  } catch (const pe::Error&) {
  }
  // The protein–text path (default fields, empty texts skipped) over the same bytes.
  try {
    pe::UniProtReader r(f.path());
    pe::ProteinRecord rec;
    while (r.next(rec)) PE_FUZZ_ASSERT(!rec.text.empty());
  } catch (const pe::Error&) {
  }
  return 0;
}
