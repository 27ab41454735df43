#include "data/tokenizer_bert.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <queue>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace pe {

namespace {

// ---------------------------------------------------------------- Unicode helpers

using u32vec = std::vector<int32_t>;  // code points

void append_utf8(int32_t cp, std::string& out) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string to_utf8(const u32vec& cps) {
  std::string out;
  out.reserve(cps.size());
  for (int32_t cp : cps) append_utf8(cp, out);
  return out;
}

// Decodes UTF-8; each invalid byte becomes U+FFFD (which the cleaning step then drops).
u32vec from_utf8(std::string_view s) {
  u32vec out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) {
      cp = 0xFFFD;
      n = 1;
    }
    out.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return out;
}

// NFC or NFD of a code point sequence, via utf8proc (which works on UTF-8).
u32vec normalize(const u32vec& cps, bool compose) {
  const std::string s = to_utf8(cps);
  utf8proc_uint8_t* out = nullptr;
  const int options = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  PE_CHECK(n >= 0, "bert tokenizer: Unicode normalisation failed: ", utf8proc_errmsg(n));
  u32vec r = from_utf8(std::string_view(reinterpret_cast<const char*>(out), static_cast<size_t>(n)));
  std::free(out);
  return r;
}

utf8proc_category_t category(int32_t cp) { return static_cast<utf8proc_category_t>(utf8proc_category(cp)); }

// HF `_is_control`: category C* except \t \n \r.
bool is_control(int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
         c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN;
}

// HF `_is_whitespace`.
bool is_whitespace(int32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || category(cp) == UTF8PROC_CATEGORY_ZS;
}

// What Python's str.split() still splits on after cleaning (Zs is already ' '): line and paragraph separators.
bool is_split_space(int32_t cp) {
  if (cp == ' ') return true;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

// HF `_is_punctuation`: all non-alphanumeric printable ASCII, and Unicode P*.
bool is_punct(int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

// HF `_is_chinese_char`: the CJK Unified Ideographs blocks.
bool is_cjk(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Lower-case of one word, as HF's default (Rust) BertTokenizer does: the simple per-character
// mapping, so a capital sigma always becomes U+03C3 (never the word-final U+03C2 that Python's
// str.lower() and the slow tokenizer give). U+0130 becomes a plain "i" here; the full mapping adds
// U+0307, which accent stripping removes anyway.
void lower_word(u32vec& w) {
  for (int32_t& cp : w) cp = utf8proc_tolower(cp);
}

const char* const kSpecials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// Length of the special token spelled at the start of `s`, or 0.
size_t special_at(std::string_view s) {
  for (const char* sp : kSpecials) {
    const std::string_view t(sp);
    if (s.substr(0, t.size()) == t) return t.size();
  }
  return 0;
}

// Step 4 of the pipeline for one whitespace-delimited word: lower-case, strip accents, split
// punctuation. With keep_special, a word that is exactly a special token is kept whole (HF never_split).
void finish_word(u32vec& w, bool keep_special, const BertOptions& opt, std::vector<std::string>& out) {
  if (keep_special && !w.empty() && w[0] == '[') {
    std::string s = to_utf8(w);
    if (special_at(s) == s.size()) {
      out.push_back(std::move(s));
      return;
    }
  }
  if (opt.lower_case) lower_word(w);
  if (opt.strips_accents() && std::any_of(w.begin(), w.end(), [](int32_t cp) { return cp >= 0x80; })) {
    u32vec nfd = normalize(w, /*compose=*/false);
    w.clear();
    for (int32_t cp : nfd)
      if (category(cp) != UTF8PROC_CATEGORY_MN) w.push_back(cp);
  }
  std::string cur;
  for (int32_t cp : w) {
    if (is_punct(cp)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      out.emplace_back();
      append_utf8(cp, out.back());
    } else {
      append_utf8(cp, cur);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
}

// The whole basic tokenizer for pure-ASCII text, where NFC/NFD and case mapping are trivial.
void basic_tokenize_ascii(std::string_view text, bool lower_case, std::vector<std::string>& out) {
  std::string cur;
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else if (c < 32 || c == 127) {
      // control character: removed without splitting the word
    } else if (is_punct(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      out.emplace_back(1, static_cast<char>(c));
    } else {
      cur.push_back(static_cast<char>((lower_case && c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
}

// Steps 1-4 on text that holds no spelled-out special token.
void basic_tokenize_segment(std::string_view text, bool keep_special, const BertOptions& opt,
                            std::vector<std::string>& out) {
  const bool ascii =
      std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  // The fast path cannot see a special token hidden by control characters ("[MA\x01SK]").
  if (ascii && !(keep_special && text.find('[') != std::string_view::npos)) {
    basic_tokenize_ascii(text, opt.lower_case, out);
    return;
  }
  // 1-2: clean, space out CJK ideographs.
  u32vec cleaned;
  for (int32_t cp : from_utf8(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      cleaned.push_back(' ');
    } else if (opt.tokenize_chinese_chars && is_cjk(cp)) {
      cleaned.insert(cleaned.end(), {' ', cp, ' '});
    } else {
      cleaned.push_back(cp);
    }
  }
  // 3: NFC, split on whitespace; 4: per word.
  const u32vec nfc = ascii ? cleaned : normalize(cleaned, /*compose=*/true);
  u32vec word;
  for (int32_t cp : nfc) {
    if (is_split_space(cp)) {
      if (!word.empty()) finish_word(word, keep_special, opt, out);
      word.clear();
    } else {
      word.push_back(cp);
    }
  }
  if (!word.empty()) finish_word(word, keep_special, opt, out);
}

}  // namespace

std::vector<std::string> bert_basic_tokenize(std::string_view text, bool keep_special_tokens,
                                             const BertOptions& opt) {
  std::vector<std::string> out;
  if (!keep_special_tokens) {
    basic_tokenize_segment(text, false, opt, out);
    return out;
  }
  // HF first cuts the text at spelled-out special tokens (exact, case-sensitive) and tokenizes the
  // pieces between them separately.
  size_t piece = 0;
  for (size_t i = text.find('['); i != std::string_view::npos; i = text.find('[', i)) {
    const size_t n = special_at(text.substr(i));
    if (n == 0) {
      ++i;
      continue;
    }
    basic_tokenize_segment(text.substr(piece, i - piece), true, opt, out);
    out.emplace_back(text.substr(i, n));
    i += n;
    piece = i;
  }
  basic_tokenize_segment(text.substr(piece), true, opt, out);
  return out;
}

// ---------------------------------------------------------------- BertTokenizer

BertTokenizer BertTokenizer::from_file(const std::string& vocab_path, const BertOptions& options) {
  std::ifstream in(vocab_path, std::ios::binary);
  PE_CHECK(in.good(), "bert vocab '", vocab_path, "': cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PE_CHECK(!in.bad(), "bert vocab '", vocab_path, "': read error");
  // One token per line; like Python's universal newlines, "\n", "\r\n" and "\r" all end a line.
  std::vector<std::string> vocab;
  std::string line;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' || c == '\r') {
      vocab.push_back(std::move(line));
      line.clear();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      line.push_back(c);
    }
  }
  if (!line.empty()) vocab.push_back(std::move(line));
  return BertTokenizer(std::move(vocab), vocab_path, options);
}

BertOptions BertOptions::from_hf_folder(const std::string& dir) {
  BertOptions opt;
  const std::string path = dir + "/tokenizer_config.json";
  std::ifstream in(path);
  if (!in.good()) return opt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    PE_FAIL("'", path, "': not valid JSON: ", e.what());
  }
  return from_json(j, path);
}

BertOptions BertOptions::from_json(const nlohmann::json& j, const std::string& source) {
  BertOptions opt;
  PE_CHECK(j.is_object(), "'", source, "': expected a JSON object");
  auto flag = [&](const char* key, bool& out) {
    if (!j.contains(key) || j[key].is_null()) return;
    PE_CHECK(j[key].is_boolean(), "'", source, "': ", key, " must be true or false");
    out = j[key].get<bool>();
  };
  flag("do_lower_case", opt.lower_case);
  flag("tokenize_chinese_chars", opt.tokenize_chinese_chars);
  if (j.contains("strip_accents") && !j["strip_accents"].is_null()) {
    PE_CHECK(j["strip_accents"].is_boolean(), "'", source, "': strip_accents must be true, false or null");
    opt.strip_accents = j["strip_accents"].get<bool>() ? 1 : 0;
  }
  return opt;
}

nlohmann::json BertOptions::to_json() const {
  return {{"do_lower_case", lower_case},
          {"strip_accents", strip_accents < 0 ? nlohmann::json(nullptr) : nlohmann::json(strip_accents == 1)},
          {"tokenize_chinese_chars", tokenize_chinese_chars}};
}

void write_hf_tokenizer_files(const std::string& dir, const BertOptions& options, int64_t model_max_length) {
  nlohmann::ordered_json specials = {{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
                                     {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};
  nlohmann::ordered_json cfg = {{"tokenizer_class", "BertTokenizer"}};
  const nlohmann::json switches = options.to_json();
  for (const auto& [k, v] : switches.items()) cfg[k] = v;
  cfg["model_max_length"] = model_max_length;
  for (const auto& [k, v] : specials.items()) cfg[k] = v;
  const std::pair<std::string, const nlohmann::ordered_json*> files[] = {
      {dir + "/tokenizer_config.json", &cfg}, {dir + "/special_tokens_map.json", &specials}};
  for (const auto& [path, j] : files) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    PE_CHECK(out.good(), "cannot write '", path, "'");
    out << j->dump(2) << "\n";
    out.close();
    PE_CHECK(!out.fail(), "cannot write '", path, "'");
  }
}

BertTokenizer BertTokenizer::from_hf_folder(const std::string& dir) {
  return from_file(dir + "/vocab.txt", BertOptions::from_hf_folder(dir));
}

BertTokenizer::BertTokenizer(std::vector<std::string> vocab, std::string source, const BertOptions& options)
    : source_(std::move(source)), options_(options), vocab_(std::move(vocab)) {
  PE_CHECK(vocab_.size() < static_cast<size_t>(INT32_MAX), "bert vocab '", source_, "': too many tokens");
  ids_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) ids_[vocab_[i]] = static_cast<int32_t>(i);
  int32_t* slots[] = {&pad_, &unk_, &cls_, &sep_, &mask_};
  for (int k = 0; k < 5; ++k) {
    *slots[k] = token_to_id(kSpecials[k]);
    PE_CHECK(*slots[k] >= 0, "bert vocab '", source_, "': special token ", kSpecials[k], " is missing");
  }
}

int32_t BertTokenizer::token_to_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

const std::string& BertTokenizer::id_to_token(int32_t id) const {
  PE_CHECK(id >= 0 && static_cast<size_t>(id) < vocab_.size(), "bert vocab '", source_, "': token id ", id,
           " out of range [0, ", vocab_.size(), ")");
  return vocab_[id];
}

void BertTokenizer::wordpiece(const std::string& word, std::vector<int32_t>& out) const {
  // Byte offset of each code point (plus the end), since pieces are cut at code points.
  std::vector<size_t> cp_start;
  for (size_t i = 0; i < word.size(); ++i)
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) cp_start.push_back(i);
  const size_t n = cp_start.size();
  cp_start.push_back(word.size());
  if (n > kMaxCharsPerWord) {
    out.push_back(unk_);
    return;
  }
  const size_t first = out.size();
  std::string piece;
  for (size_t start = 0; start < n;) {
    int32_t found = -1;
    size_t end = n;
    for (; end > start; --end) {
      piece.assign(start > 0 ? "##" : "");
      piece.append(word, cp_start[start], cp_start[end] - cp_start[start]);
      auto it = ids_.find(piece);
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // no piece matches here: the whole word is unknown
      out.resize(first);
      out.push_back(unk_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const std::string& w : bert_basic_tokenize(text, true, options_)) wordpiece(w, ids);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) out.push_back(vocab_[id]);
  return out;
}

std::vector<int32_t> BertTokenizer::encode(std::string_view text, size_t max_len) const {
  PE_CHECK(max_len == 0 || max_len >= 2, "bert encode: max_len ", max_len, " leaves no room for [CLS] and [SEP]");
  std::vector<int32_t> ids{cls_};
  for (const std::string& w : bert_basic_tokenize(text, true, options_)) {
    wordpiece(w, ids);
    if (max_len && ids.size() >= max_len - 1) break;
  }
  if (max_len && ids.size() > max_len - 1) ids.resize(max_len - 1);
  ids.push_back(sep_);
  return ids;
}

std::string BertTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& tok = id_to_token(id);
    if (skip_special && (id == pad_ || id == cls_ || id == sep_ || id == mask_)) continue;
    if (tok.compare(0, 2, "##") == 0 && !out.empty()) {
      out.append(tok, 2, std::string::npos);
    } else {
      if (!out.empty()) out.push_back(' ');
      out += tok;
    }
  }
  // A vocabulary line that is not valid UTF-8 (vocab.txt is user input) must not make the decoded
  // text invalid: its bad bytes become U+FFFD, so JSON writers of generated text never throw.
  return to_utf8(from_utf8(out));
}

// ---------------------------------------------------------------- WordPiece trainer

namespace {

// Merge state: words as sequences of symbol ids, counts of symbols and adjacent pairs, and for each
// pair the words it (may) occur in. Merging a pair only touches the words that contain it.
class WordpieceTrainer {
 public:
  WordpieceTrainer(WordpieceMergeRule rule, uint64_t min_frequency) : rule_(rule), min_freq_(min_frequency) {}
  WordpieceTrainer(const WordpieceTrainer&) = delete;  // the heap's comparator points at this object
  WordpieceTrainer& operator=(const WordpieceTrainer&) = delete;

  int32_t intern(const std::string& s) {
    auto it = sym_id_.find(s);
    if (it != sym_id_.end()) return it->second;
    const int32_t id = static_cast<int32_t>(sym_str_.size());
    sym_id_.emplace(s, id);
    sym_str_.push_back(s);
    sym_count_.push_back(0);
    sym_pairs_.emplace_back();
    return id;
  }

  void add_word(std::vector<int32_t> syms, uint64_t freq) {
    const uint32_t w = static_cast<uint32_t>(words_.size());
    for (size_t i = 0; i < syms.size(); ++i) {
      sym_count_[syms[i]] += freq;
      if (i + 1 < syms.size()) {
        Pair& p = pairs_[pair_of(syms[i], syms[i + 1])];
        p.count += freq;
        p.words.push_back(w);
      }
    }
    words_.push_back({std::move(syms), freq, 0});
  }

  // Runs merges, appending each new piece to `vocab`, until it has `vocab_size` entries or no pair
  // is frequent enough.
  void run(std::vector<std::string>& vocab, std::unordered_set<std::string>& in_vocab, size_t vocab_size) {
    for (uint32_t p = 0; p < pairs_.size(); ++p) push(p);
    while (vocab.size() < vocab_size && !heap_.empty()) {
      const Cand top = heap_.top();
      heap_.pop();
      const Pair& p = pairs_[top.pair];
      if (top.pc != p.count || (rule_ == WordpieceMergeRule::kScore &&
                                (top.ca != sym_count_[p.a] || top.cb != sym_count_[p.b])))
        continue;  // stale: a fresher entry for this pair is (or was) in the heap
      const std::string merged = sym_str_[p.a] + sym_str_[p.b].substr(2);  // b is always a "##" piece
      merge(top.pair, intern(merged));
      if (in_vocab.insert(merged).second) vocab.push_back(merged);
    }
  }

 private:
  struct Pair {
    int32_t a, b;
    uint64_t count = 0;
    std::vector<uint32_t> words;  // may hold duplicates and words that no longer contain the pair
    uint64_t pushed = 0;          // iteration of the last push (to push once per iteration)
  };
  struct Word {
    std::vector<int32_t> syms;
    uint64_t freq;
    uint64_t seen;  // iteration that last rewrote it
  };
  // A heap entry: the counts it was scored with, so stale entries can be recognised when popped.
  struct Cand {
    uint64_t pc, ca, cb;
    uint32_t pair;
  };
  struct Worse {  // priority_queue order: true when x ranks below y
    const WordpieceTrainer* t;
    bool operator()(const Cand& x, const Cand& y) const {
      if (t->rule_ == WordpieceMergeRule::kScore) {
        // Compare pc_x/(ca_x*cb_x) with pc_y/(ca_y*cb_y) exactly, by cross-multiplying in 128 bits.
        const unsigned __int128 lx = static_cast<unsigned __int128>(x.pc) * y.ca * y.cb;
        const unsigned __int128 ly = static_cast<unsigned __int128>(y.pc) * x.ca * x.cb;
        if (lx != ly) return lx < ly;
      } else if (x.pc != y.pc) {
        return x.pc < y.pc;
      }
      const Pair& px = t->pairs_[x.pair];
      const Pair& py = t->pairs_[y.pair];
      const int ca = t->sym_str_[px.a].compare(t->sym_str_[py.a]);
      if (ca != 0) return ca > 0;  // lexicographically smaller (a, b) ranks higher
      return t->sym_str_[px.b] > t->sym_str_[py.b];
    }
  };

  uint32_t pair_of(int32_t a, int32_t b) {
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    auto it = pair_id_.find(key);
    if (it != pair_id_.end()) return it->second;
    const uint32_t id = static_cast<uint32_t>(pairs_.size());
    pair_id_.emplace(key, id);
    pairs_.push_back(Pair{a, b, 0, {}, 0});
    sym_pairs_[a].push_back(id);
    if (b != a) sym_pairs_[b].push_back(id);
    return id;
  }

  void push(uint32_t id) {
    Pair& p = pairs_[id];
    if (p.count < min_freq_ || p.pushed == iter_) return;
    p.pushed = iter_;
    heap_.push(Cand{p.count, sym_count_[p.a], sym_count_[p.b], id});
  }

  // Replaces every adjacent (a, b) by c in the words holding the pair, updating all counts, then
  // pushes fresh heap entries for every pair whose score changed.
  void merge(uint32_t pid, int32_t c) {
    ++iter_;
    const int32_t a = pairs_[pid].a, b = pairs_[pid].b;
    std::vector<uint32_t> touched;
    const std::vector<uint32_t> ws = std::move(pairs_[pid].words);
    pairs_[pid].words.clear();
    for (uint32_t w : ws) {
      Word& word = words_[w];
      if (word.seen == iter_) continue;
      word.seen = iter_;
      std::vector<int32_t>& s = word.syms;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      // Remove the word's pairs, rewrite it, add its pairs back: simple and exact for repeats (a b a b).
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint32_t q = pair_of(s[i], s[i + 1]);
        pairs_[q].count -= word.freq;
        touched.push_back(q);
      }
      std::vector<int32_t> t;
      t.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          t.push_back(c);
          sym_count_[a] -= word.freq;
          sym_count_[b] -= word.freq;
          sym_count_[c] += word.freq;
          i += 2;
        } else {
          t.push_back(s[i++]);
        }
      }
      s = std::move(t);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint32_t q = pair_of(s[i], s[i + 1]);
        pairs_[q].count += word.freq;
        if (s[i] == c || s[i + 1] == c) pairs_[q].words.push_back(w);  // only pairs with c are new here
        touched.push_back(q);
      }
    }
    for (uint32_t q : touched) push(q);
    // With the score rule, a changed symbol count changes the score of every pair holding the symbol.
    if (rule_ == WordpieceMergeRule::kScore)
      for (int32_t sym : {a, b, c})
        for (uint32_t q : sym_pairs_[sym]) push(q);
  }

  WordpieceMergeRule rule_;
  uint64_t min_freq_;
  uint64_t iter_ = 1;  // 0 marks "never" in Pair::pushed and Word::seen
  std::unordered_map<std::string, int32_t> sym_id_;
  std::vector<std::string> sym_str_;
  std::vector<uint64_t> sym_count_;
  std::vector<std::vector<uint32_t>> sym_pairs_;  // pairs in which each symbol takes part
  std::unordered_map<uint64_t, uint32_t> pair_id_;
  std::vector<Pair> pairs_;
  std::vector<Word> words_;
  std::priority_queue<Cand, std::vector<Cand>, Worse> heap_{Worse{this}};
};

}  // namespace

std::vector<std::string> train_wordpiece(const std::vector<std::string>& lines, size_t vocab_size,
                                         uint64_t min_frequency, WordpieceMergeRule rule) {
  // Word counts, in a deterministic (sorted) order.
  std::unordered_map<std::string, uint64_t> counts;
  for (const std::string& line : lines)
    for (std::string& w : bert_basic_tokenize(line)) ++counts[std::move(w)];
  std::vector<std::pair<std::string, uint64_t>> words(counts.begin(), counts.end());
  counts.clear();
  std::sort(words.begin(), words.end());

  // Split words into characters; collect the alphabet.
  std::vector<std::vector<std::string>> chars(words.size());
  std::set<std::string> alphabet;
  for (size_t i = 0; i < words.size(); ++i) {
    const u32vec cps = from_utf8(words[i].first);
    if (cps.size() > BertTokenizer::kMaxCharsPerWord) continue;
    for (int32_t cp : cps) {
      std::string ch;
      append_utf8(cp, ch);
      alphabet.insert(ch);
      chars[i].push_back(std::move(ch));
    }
  }

  std::vector<std::string> vocab(std::begin(kSpecials), std::end(kSpecials));
  for (const auto& ch : alphabet) vocab.push_back(ch);
  for (const auto& ch : alphabet) vocab.push_back("##" + ch);
  PE_CHECK(vocab.size() <= vocab_size, "train_wordpiece: vocab_size ", vocab_size, " is too small for the ",
           alphabet.size(), " distinct characters of the corpus (", vocab.size(),
           " entries with their ## forms and the 5 special tokens)");
  std::unordered_set<std::string> in_vocab(vocab.begin(), vocab.end());

  WordpieceTrainer trainer(rule, std::max<uint64_t>(min_frequency, 1));
  for (size_t i = 0; i < words.size(); ++i) {
    if (chars[i].empty()) continue;
    std::vector<int32_t> syms;
    syms.reserve(chars[i].size());
    for (size_t k = 0; k < chars[i].size(); ++k) syms.push_back(trainer.intern(k ? "##" + chars[i][k] : chars[i][k]));
    trainer.add_word(std::move(syms), words[i].second);
  }
  trainer.run(vocab, in_vocab, vocab_size);
  return vocab;
}

void write_vocab(const std::string& path, const std::vector<std::string>& vocab) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  PE_CHECK(out.good(), "write_vocab '", path, "': cannot open for writing");
  for (const std::string& t : vocab) {
    PE_CHECK(t.find_first_of("\r\n") == std::string::npos, "write_vocab '", path, "': token with a line break");
    out << t << '\n';
  }
  out.flush();
  PE_CHECK(out.good(), "write_vocab '", path, "': write failed");
}

}  // namespace pe
