#include "app/inputs.h"

#include <cstdio>

#include "core/error.h"
#include "data/fasta.h"
#include "data/text_io.h"

namespace pe {

// protein or text, from the first non-blank character of the file (gzip read transparently): '>'
// starts a FASTA file; anything else is one text per line. The file name is only a hint: a
// disagreement is reported.
std::string detect_input_kind(const std::string& path, const std::string& requested) {
  LineReader in(path);
  std::string line;
  char first = 0;
  while (in.next(line)) {
    size_t i = line.find_first_not_of(" \t\r");
    if (i != std::string::npos) {
      first = line[i];
      break;
    }
  }
  PE_CHECK(first != 0, path, ": the input is empty");
  std::string by_content = first == '>' ? "protein" : "text";
  if (requested == "auto") {
    bool fasta_name = path.find(".fa") != std::string::npos;
    if (fasta_name && by_content == "text")
      std::fprintf(stderr, "warning: %s is named like FASTA but does not start with '>': reading one text per line\n",
                   path.c_str());
    return by_content;
  }
  PE_CHECK(requested == "protein" || requested == "text", "--kind must be protein, text or auto, got '", requested, "'");
  if (requested == "protein")
    PE_CHECK(by_content == "protein", path, ": --kind protein needs FASTA, but the first non-blank character is '",
             std::string(1, first), "', not '>'");
  return requested;
}

std::vector<InputRecord> read_inputs(const std::string& path, const std::string& kind, const char* what) {
  std::vector<InputRecord> out;
  if (kind == "protein") {
    ReadStats st;
    for (auto& r : read_fasta(path, {}, &st)) out.push_back({r.id, r.seq});
    std::printf("input: %s: %s\n", path.c_str(), st.summary().c_str());
    for (size_t i = 0; i < st.examples.size() && i < 3; ++i) std::printf("  skipped: %s\n", st.examples[i].c_str());
  } else {
    LineReader in(path);
    std::string line;
    while (in.next(line)) out.push_back({std::to_string(in.line_no()), line});
    std::printf("input: %s: %zu lines of text\n", path.c_str(), out.size());
  }
  PE_CHECK(!out.empty(), path, ": nothing to ", what);
  return out;
}

}  // namespace pe
