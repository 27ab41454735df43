#include "data/tokenizer_esm.h"

#include <algorithm>

#include "core/error.h"

namespace pe::esm {

namespace {

constexpr std::array<std::string_view, kVocabSize> kAlphabet = {
    "<cls>", "<pad>", "<eos>", "<unk>",                                                           // 0-3
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C",  // 4-23
    "X", "B", "U", "Z", "O", ".", "-",                                                            // 24-30
    "<null_1>", "<mask>"};                                                                        // 31-32

// Single-character token ids indexed by (upper-cased) ASCII byte; kUnk elsewhere.
struct CharTable {
  std::array<int32_t, 128> id{};
  CharTable() {
    id.fill(kUnk);
    for (int32_t i = 0; i < kVocabSize; ++i)
      if (kAlphabet[i].size() == 1) id[static_cast<unsigned char>(kAlphabet[i][0])] = i;
  }
};
const CharTable kChars;

bool is_special(int32_t id) { return kAlphabet[id].size() > 1; }  // the <...> tokens

// Length of the UTF-8 sequence starting with byte `b` (1 for invalid lead bytes, so that every
// byte is consumed exactly once).
size_t utf8_len(unsigned char b) {
  if (b >= 0xF0 && b <= 0xF4) return 4;
  if (b >= 0xE0) return b <= 0xEF ? 3 : 1;
  if (b >= 0xC2) return 2;
  return 1;
}

}  // namespace

const std::array<std::string_view, kVocabSize>& alphabet() { return kAlphabet; }

int32_t token_id(std::string_view token) {
  for (int32_t i = 0; i < kVocabSize; ++i)
    if (kAlphabet[i] == token) return i;
  return -1;
}

std::vector<int32_t> encode(std::string_view seq, size_t max_len) {
  PE_CHECK(max_len == 0 || max_len >= 2, "esm::encode: max_len ", max_len, " leaves no room for <cls> and <eos>");
  const size_t max_residues = max_len == 0 ? seq.size() : max_len - 2;
  std::vector<int32_t> ids;
  ids.reserve(std::min(seq.size(), max_residues) + 2);
  ids.push_back(kCls);
  size_t residues = 0;
  bool in_unknown_run = false;  // the last token was <unk> for unknown characters, with no space since
  for (size_t i = 0; i < seq.size() && residues < max_residues;) {
    const unsigned char c = static_cast<unsigned char>(seq[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      in_unknown_run = false;
      ++i;
      continue;
    }
    int32_t id = kUnk;
    size_t len = 1;
    bool spelled = false;
    if (c == '<') {
      // A special token written out in full; otherwise the '<' alone is unknown.
      const size_t close = seq.find('>', i);
      if (close != std::string_view::npos) {
        const int32_t sid = token_id(seq.substr(i, close - i + 1));
        if (sid >= 0) {
          id = sid;
          len = close - i + 1;
          spelled = true;
        }
      }
    } else if (c < 128) {
      id = kChars.id[(c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c];
    } else {
      len = std::min(utf8_len(c), seq.size() - i);  // a code point, not a byte
    }
    i += len;
    if (id == kUnk && !spelled) {
      // As HF's EsmTokenizer: a run of unknown characters is one <unk>.
      if (in_unknown_run) continue;
      in_unknown_run = true;
    } else {
      in_unknown_run = false;
    }
    ids.push_back(id);
    ++residues;
  }
  ids.push_back(kEos);
  return ids;
}

std::string decode(const std::vector<int32_t>& ids, bool skip_special) {
  std::string out;
  for (int32_t id : ids) {
    PE_CHECK(id >= 0 && id < kVocabSize, "esm::decode: token id ", id, " outside the 33-token alphabet");
    if (skip_special && is_special(id)) continue;
    out += kAlphabet[id];
  }
  return out;
}

}  // namespace pe::esm
