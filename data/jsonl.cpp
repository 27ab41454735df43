#include "data/jsonl.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/text_io.h"

namespace pe {

JsonlReader::JsonlReader(const std::string& path, JsonlOptions opt)
    : in_(std::make_unique<LineReader>(path)), opt_(std::move(opt)) {}

JsonlReader::~JsonlReader() = default;

bool JsonlReader::next(ProteinRecord& rec) {
  while (in_->next(line_)) {
    if (line_.find_first_not_of(" \t") == std::string::npos) continue;
    seen_any_ = true;
    const std::string where = in_->where();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line_);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for "1e309"
      stats_.skip("malformed JSON", where + ": malformed JSON: " + e.what(), opt_.strict);
      continue;
    }
    if (!j.is_object()) {
      stats_.skip("not an object", where + ": line is not a JSON object", opt_.strict);
      continue;
    }
    // Each required key must be a non-empty string.
    std::string fields[3];
    const std::string* keys[3] = {&opt_.id_key, &opt_.seq_key, &opt_.text_key};
    bool ok = true;
    for (int k = 0; k < 3 && ok; ++k) {
      const auto it = j.find(*keys[k]);
      if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
        const char* what = it == j.end() ? "missing" : !it->is_string() ? "not a string" : "empty";
        stats_.skip(std::string("bad \"") + *keys[k] + "\"",
                    where + ": \"" + *keys[k] + "\" is " + what, opt_.strict);
        ok = false;
      } else {
        fields[k] = it->get<std::string>();
      }
    }
    if (!ok) continue;
    const std::size_t bad = clean_sequence(fields[1]);
    if (fields[1].empty()) {  // "*": nothing is left once the stop is dropped
      stats_.skip(std::string("bad \"") + opt_.seq_key + "\"",
                  where + ": \"" + opt_.seq_key + "\" has no residues (only a stop '*')", opt_.strict);
      continue;
    }
    if (bad != std::string::npos) {
      stats_.skip("bad residue",
                  where + ": " + fields[0] + ": bad residue '" + std::string(1, fields[1][bad]) +
                      "' at position " + std::to_string(bad + 1),
                  opt_.strict);
      continue;
    }
    rec.id = std::move(fields[0]);
    rec.seq = std::move(fields[1]);
    rec.text = std::move(fields[2]);
    rec.line = in_->line_no();
    ++stats_.records;
    return true;
  }
  if (!seen_any_) PE_FAIL(in_->path(), ": empty file (no JSON lines)");
  return false;
}

std::vector<ProteinRecord> read_jsonl(const std::string& path, const JsonlOptions& opt,
                                      ReadStats* stats) {
  return read_all_records<JsonlReader>(path, opt, stats);
}

JsonlWriter::JsonlWriter(const std::string& path) : out_(std::make_unique<TextWriter>(path)) {}

JsonlWriter::~JsonlWriter() = default;

void JsonlWriter::write(const ProteinRecord& rec) {
  // Key order is fixed (id, seq, text) so equal inputs give byte-identical files.
  std::string line = "{\"id\":";
  try {
    line += nlohmann::json(rec.id).dump();
    line += ",\"seq\":";
    line += nlohmann::json(rec.seq).dump();
    line += ",\"text\":";
    line += nlohmann::json(rec.text).dump();
  } catch (const nlohmann::json::type_error& e) {
    PE_FAIL(out_->path(), ": record '", rec.id, "': ", e.what());
  }
  line += '}';
  out_->write_line(line);
  ++count_;
}

void JsonlWriter::close() { out_->close(); }

void write_jsonl(const std::string& path, const std::vector<ProteinRecord>& records) {
  JsonlWriter w(path);
  for (const auto& r : records) w.write(r);
  w.close();
}

}  // namespace pe
