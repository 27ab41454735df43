// Accession -> text description files for FASTA input (TSV or JSONL; read_descriptions in
// data/fasta.h), lenient and strict.
#include "data/fasta.h"

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "fuzz.tsv");
  try {
    pe::ReadStats stats;
    const auto desc = pe::read_descriptions(f.path(), stats, /*strict=*/false);
    for (const auto& [acc, text] : desc) PE_FUZZ_ASSERT(!acc.empty() && !text.empty());
  } catch (const pe::Error&) {
  }
  try {
    pe::ReadStats stats;
    (void)pe::read_descriptions(f.path(), stats, /*strict=*/true);
  } catch (const pe::Error&) {
  }
  return 0;
}
