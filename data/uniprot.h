#pragma once
// Streaming reader for UniProtKB flat files (uniprot_sprot.dat, .dat.gz; the "Swiss-Prot format").
//
// Lines read (everything else is ignored):
//   ID  entry name            AC  accessions; the first one becomes ProteinRecord::id
//   DE  "RecName: Full=..."   (first one; "SubName: Full=" for TrEMBL entries without a RecName)
//   GN  "Name=..."            OS  organism (may span lines)
//   CC  "-!- FUNCTION:" blocks with their "CC       " continuation lines (several blocks are joined)
//   KW  keywords              DR  "GO; GO:id; F|P|C:name; evidence."
//   SQ  "SEQUENCE n AA; ... crc CRC64;" followed by residue lines;   //  ends the entry.
// Evidence tags "{ECO:...}" are removed from every text field.
//
// Text template (fields chosen by UniProtOptions::fields; an empty field is left out):
//   "Name: <DE>. Gene: <GN>. Organism: <OS>. Function: <CC FUNCTION> Keywords: <k1>; <k2>.
//    Molecular function: a; b. Biological process: c. Cellular component: d."
// The default fields are name, function, keywords and GO (see go_text() in records.h for the GO
// part: names sorted and de-duplicated within each aspect).
//
// Entries left out (counted in ReadStats with "file:line: ..." of the entry, or pe::Error in
// strict mode): no ID line, no AC line, no SQ line, residues before SQ, a residue that is not an
// upper-case letter, residue count different from the SQ length, no residues at all ("0 AA"),
// CRC64 different from the SQ line's checksum, an entry not closed by "//" (truncated file, or a
// new ID before "//"), and —
// for next(ProteinRecord&) only — an entry whose chosen fields give an empty text.
// A file without any entry (empty or blank) is an error: pe::Error "path: empty file".
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "data/records.h"

namespace pe {

class LineReader;

// Text fields, combined as a bit mask.
enum UniProtField : unsigned {
  kUpName = 1u << 0,
  kUpGene = 1u << 1,
  kUpOrganism = 1u << 2,
  kUpFunction = 1u << 3,
  kUpKeywords = 1u << 4,
  kUpGo = 1u << 5,
};
constexpr unsigned kUpDefaultFields = kUpName | kUpFunction | kUpKeywords | kUpGo;

// Parses a comma-separated list of "name,gene,organism,function,keywords,go" (or "default",
// "all") into a field mask. Throws pe::Error on an unknown name.
unsigned parse_uniprot_fields(const std::string& list);

struct GoAnnotation {
  std::string id;    // "GO:0005737"
  char aspect = 0;   // 'F' molecular function, 'P' biological process, 'C' cellular component
  std::string name;  // "cytoplasm"
};

struct UniProtEntry {
  std::string accession;   // first AC
  std::string entry_name;  // ID, e.g. "1433B_HUMAN"
  std::string name;        // DE RecName Full=
  std::string gene;        // GN Name=
  std::string organism;    // OS, without the final '.'
  std::string function;    // CC -!- FUNCTION text, evidence tags removed
  std::vector<std::string> keywords;
  std::vector<GoAnnotation> go;
  std::string seq;
  std::size_t line = 0;  // line of the ID line
};

struct UniProtOptions {
  unsigned fields = kUpDefaultFields;
  bool strict = false;  // throw pe::Error at the first bad entry instead of counting it
};

// Builds the description of an entry from the chosen fields (template above).
std::string uniprot_text(const UniProtEntry& e, unsigned fields = kUpDefaultFields);

// CRC64 as printed on UniProt SQ lines (ISO 3309 polynomial, reflected, initial value 0),
// as 16 upper-case hex digits.
std::string uniprot_crc64(const std::string& seq);

class UniProtReader {
 public:
  explicit UniProtReader(const std::string& path, UniProtOptions opt = {});
  ~UniProtReader();

  // Next valid entry with all parsed fields. False at the end of the file.
  bool next_entry(UniProtEntry& e);
  // Next valid entry as a protein–text pair (text from options.fields; empty text is a skip).
  bool next(ProteinRecord& rec);

  const ReadStats& stats() const { return stats_; }

 private:
  bool read_raw(UniProtEntry& e);  // next entry without defects; false at end of input
  void skip(const std::string& reason, std::size_t line, const std::string& msg);

  std::unique_ptr<LineReader> in_;
  UniProtOptions opt_;
  ReadStats stats_;
  std::string line_;
  bool seen_any_ = false;  // a non-blank line was read
};

// Reads the whole file. `stats` (optional) receives the counts and skip reasons.
std::vector<ProteinRecord> read_uniprot(const std::string& path, const UniProtOptions& opt = {},
                                        ReadStats* stats = nullptr);

}  // namespace pe
