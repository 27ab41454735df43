#pragma once
// Input files of the inference commands (embed, describe, design): proteins as FASTA, texts one per
// line; the kind is decided by content (gzip read transparently), the file name being only a hint.
#include <string>
#include <vector>

namespace pe {

struct InputRecord {
  std::string id;    // FASTA accession, or the line number of a text
  std::string body;  // sequence or text
};

// "protein" or "text": '>' as the first non-blank character starts FASTA; anything else is one text
// per line. requested = auto | protein | text; a request the content contradicts is refused.
std::string detect_input_kind(const std::string& path, const std::string& requested);
// Reads the records, printing the reader's summary and the first skipped records; `what` names the
// command's work in the error for an empty input ("nothing to <what>").
std::vector<InputRecord> read_inputs(const std::string& path, const std::string& kind, const char* what);

}  // namespace pe
