#include "decoders/text_metrics.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace pe {

namespace {

// ---------------------------------------------------------------- UTF-8 helpers

// Decodes the code point at s[i]; sets n to its byte length. An invalid byte decodes as -1, length 1.
int32_t decode_at(const std::string& s, std::size_t i, std::size_t& n) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t k = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + i,
                                              static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (k <= 0) {
    n = 1;
    return -1;
  }
  n = static_cast<std::size_t>(k);
  return cp;
}

void append_utf8(int32_t cp, std::string& out) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

// Python's str.isspace() (Unicode 14; the set has not changed for many versions).
bool py_space(int32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Python's str.split() without arguments.
std::vector<std::string> py_split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t n = 1;
    const int32_t cp = decode_at(s, i, n);
    if (cp >= 0 && py_space(cp)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(s, i, n);
    }
    i += n;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Python's str.rstrip() without arguments.
std::string py_rstrip(const std::string& s) {
  std::size_t keep = 0, i = 0;
  while (i < s.size()) {
    std::size_t n = 1;
    const int32_t cp = decode_at(s, i, n);
    i += n;
    if (!(cp >= 0 && py_space(cp))) keep = i;
  }
  return s.substr(0, keep);
}

// Python's str.replace(from, to): non-overlapping, left to right.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// The properties of Python's Final_Sigma rule (CPython's _PyUnicode_IsCaseIgnorable/_IsCased), as
// Unicode defines them: Case_Ignorable = categories Mn Me Cf Lm Sk plus the Word_Break MidLetter,
// MidNumLet and Single_Quote characters; Cased = Lu Ll Lt plus Other_Lowercase/Other_Uppercase (only
// those that are not case-ignorable matter, as the rule skips case-ignorable ones first).
bool case_ignorable(int32_t cp) {
  switch (cp) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
      return true;
    default:
      break;
  }
  if (cp < 0x80) return cp == 0x5E || cp == 0x60;  // ^ ` (Sk); the rest of ASCII is not
  const auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
         c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

bool cased(int32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
  if (cp == 0xAA || cp == 0xBA || (cp >= 0x2160 && cp <= 0x217F) || (cp >= 0x24B6 && cp <= 0x24E9) ||
      (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
    return true;
  const auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

// ---------------------------------------------------------------- BLEU statistics

// n-gram counts of orders 1..4, keyed by the tokens joined with single spaces (tokens contain no
// whitespace, so the key is unambiguous), one map per order.
using NgramCounts = std::array<std::unordered_map<std::string, std::int64_t>, 4>;

NgramCounts count_ngrams(const std::vector<std::string>& toks) {
  NgramCounts c;
  for (std::size_t n = 1; n <= 4; ++n) {
    for (std::size_t i = 0; i + n <= toks.size(); ++i) {
      std::string key = toks[i];
      for (std::size_t k = 1; k < n; ++k) {
        key += ' ';
        key += toks[i + k];
      }
      ++c[n - 1][key];
    }
  }
  return c;
}

struct SegmentStats {
  std::int64_t sys_len = 0, ref_len = 0;
  std::array<std::int64_t, 4> counts{}, totals{};
};

SegmentStats segment_stats(const std::string& hyp, const std::string& ref, bool lowercase) {
  const std::vector<std::string> h = tokenize_13a(hyp, lowercase);
  const std::vector<std::string> r = tokenize_13a(ref, lowercase);
  SegmentStats st;
  st.sys_len = static_cast<std::int64_t>(h.size());
  st.ref_len = static_cast<std::int64_t>(r.size());
  const NgramCounts hc = count_ngrams(h), rc = count_ngrams(r);
  for (std::size_t n = 0; n < 4; ++n) {
    for (const auto& [gram, cnt] : hc[n]) {
      st.totals[n] += cnt;
      const auto it = rc[n].find(gram);
      if (it != rc[n].end()) st.counts[n] += std::min(cnt, it->second);
    }
  }
  return st;
}

// ---------------------------------------------------------------- Porter stemmer (nltk)

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// nltk's _consonant_flags: a 'y' is a consonant at the start or after a vowel.
std::vector<bool> consonant_flags(const std::string& w) {
  std::vector<bool> f(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (is_vowel(w[i]))
      f[i] = false;
    else if (w[i] == 'y')
      f[i] = i == 0 ? true : !f[i - 1];
    else
      f[i] = true;
  }
  return f;
}

bool is_consonant(const std::string& w, std::size_t i) { return consonant_flags(w.substr(0, i + 1))[i]; }

// The number of "vc" transitions in the consonant/vowel pattern.
int measure(const std::string& stem) {
  const std::vector<bool> f = consonant_flags(stem);
  int m = 0;
  for (std::size_t i = 1; i < f.size(); ++i)
    if (!f[i - 1] && f[i]) ++m;
  return m;
}

bool contains_vowel(const std::string& stem) {
  const std::vector<bool> f = consonant_flags(stem);
  return std::any_of(f.begin(), f.end(), [](bool c) { return !c; });
}

bool ends_with(const std::string& w, const std::string& suf) {
  return w.size() >= suf.size() && w.compare(w.size() - suf.size(), suf.size(), suf) == 0;
}

std::string drop(const std::string& w, std::size_t n) { return w.substr(0, w.size() - n); }

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// *o, with nltk's extension for two-letter stems (vowel + consonant).
bool ends_cvc(const std::string& w) {
  const std::size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

enum class Cond { None, MGt0, MGt1, MGt1SorT, LogiNltk };

struct Rule {
  const char* suffix;
  const char* replacement;
  Cond cond;
};

bool holds(Cond c, const std::string& stem, const std::string& word) {
  switch (c) {
    case Cond::None: return true;
    case Cond::MGt0: return measure(stem) > 0;
    case Cond::MGt1: return measure(stem) > 1;
    case Cond::MGt1SorT: return measure(stem) > 1 && !stem.empty() && (stem.back() == 's' || stem.back() == 't');
    case Cond::LogiNltk: return measure(word.substr(0, word.size() - 3)) > 0;
  }
  return false;
}

// nltk's _apply_rule_list: the first rule whose suffix matches decides (applied or not).
std::string apply_rules(const std::string& word, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (ends_with(word, r.suffix)) {
      const std::string stem = drop(word, std::char_traits<char>::length(r.suffix));
      return holds(r.cond, stem, word) ? stem + r.replacement : word;
    }
  }
  return word;
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  return apply_rules(w, {{"sses", "ss", Cond::None}, {"ies", "i", Cond::None}, {"ss", "ss", Cond::None},
                         {"s", "", Cond::None}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string s;
  bool ok = false;
  for (const char* suf : {"ed", "ing"}) {
    if (ends_with(w, suf)) {
      s = drop(w, std::char_traits<char>::length(suf));
      if (contains_vowel(s)) {
        ok = true;
        break;
      }
    }
  }
  if (!ok) return w;
  // at -> ate, bl -> ble, iz -> ize, double consonant (not l s z) -> single, (m=1 and *o) -> +e.
  if (ends_with(s, "at")) return s + "e";
  if (ends_with(s, "bl")) return s + "e";
  if (ends_with(s, "iz")) return s + "e";
  if (ends_double_consonant(s)) {
    const char last = s.back();
    return (last != 'l' && last != 's' && last != 'z') ? drop(s, 2) + last : s;
  }
  return (measure(s) == 1 && ends_cvc(s)) ? s + "e" : s;
}

std::string step1c(const std::string& w) {
  if (ends_with(w, "y")) {
    const std::string stem = drop(w, 1);
    return (stem.size() > 1 && is_consonant(stem, stem.size() - 1)) ? stem + "i" : w;
  }
  return w;
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && measure(drop(w, 4)) > 0) return step2(drop(w, 4) + "al");
  static const std::vector<Rule> rules = {
      {"ational", "ate", Cond::MGt0}, {"tional", "tion", Cond::MGt0}, {"enci", "ence", Cond::MGt0},
      {"anci", "ance", Cond::MGt0},   {"izer", "ize", Cond::MGt0},    {"bli", "ble", Cond::MGt0},
      {"alli", "al", Cond::MGt0},     {"entli", "ent", Cond::MGt0},   {"eli", "e", Cond::MGt0},
      {"ousli", "ous", Cond::MGt0},   {"ization", "ize", Cond::MGt0}, {"ation", "ate", Cond::MGt0},
      {"ator", "ate", Cond::MGt0},    {"alism", "al", Cond::MGt0},    {"iveness", "ive", Cond::MGt0},
      {"fulness", "ful", Cond::MGt0}, {"ousness", "ous", Cond::MGt0}, {"aliti", "al", Cond::MGt0},
      {"iviti", "ive", Cond::MGt0},   {"biliti", "ble", Cond::MGt0},  {"fulli", "ful", Cond::MGt0},
      {"logi", "log", Cond::LogiNltk}};
  return apply_rules(w, rules);
}

std::string step3(const std::string& w) {
  static const std::vector<Rule> rules = {{"icate", "ic", Cond::MGt0}, {"ative", "", Cond::MGt0},
                                          {"alize", "al", Cond::MGt0}, {"iciti", "ic", Cond::MGt0},
                                          {"ical", "ic", Cond::MGt0},  {"ful", "", Cond::MGt0},
                                          {"ness", "", Cond::MGt0}};
  return apply_rules(w, rules);
}

std::string step4(const std::string& w) {
  static const std::vector<Rule> rules = {
      {"al", "", Cond::MGt1},   {"ance", "", Cond::MGt1}, {"ence", "", Cond::MGt1},    {"er", "", Cond::MGt1},
      {"ic", "", Cond::MGt1},   {"able", "", Cond::MGt1}, {"ible", "", Cond::MGt1},    {"ant", "", Cond::MGt1},
      {"ement", "", Cond::MGt1}, {"ment", "", Cond::MGt1}, {"ent", "", Cond::MGt1},    {"ion", "", Cond::MGt1SorT},
      {"ou", "", Cond::MGt1},   {"ism", "", Cond::MGt1},  {"ate", "", Cond::MGt1},     {"iti", "", Cond::MGt1},
      {"ous", "", Cond::MGt1},  {"ive", "", Cond::MGt1},  {"ize", "", Cond::MGt1}};
  return apply_rules(w, rules);
}

std::string step5a(const std::string& w) {
  if (ends_with(w, "e")) {
    const std::string stem = drop(w, 1);
    const int m = measure(stem);
    if (m > 1) return stem;
    if (m == 1 && !ends_cvc(stem)) return stem;
  }
  return w;
}

std::string step5b(const std::string& w) {
  if (ends_with(w, "ll")) return measure(drop(w, 1)) > 1 ? drop(w, 1) : w;
  return w;
}

}  // namespace

// ---------------------------------------------------------------- tokenisers

std::string python_lower(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += (b >= 'A' && b <= 'Z') ? static_cast<char>(b + 32) : static_cast<char>(b);
      ++i;
      continue;
    }
    std::size_t n = 1;
    const int32_t cp = decode_at(s, i, n);
    if (cp < 0) {
      out += s[i];
    } else if (cp == 0x130) {
      out += 'i';
      append_utf8(0x307, out);
    } else if (cp == 0x3A3) {
      // Final_Sigma: preceded by a cased letter (skipping case-ignorables) and not followed by one.
      std::size_t j = i;
      int32_t prev = -1;
      while (j > 0) {  // step back one code point at a time
        std::size_t k = j - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        std::size_t m = 1;
        prev = decode_at(s, k, m);
        j = k;
        if (!(prev >= 0 && case_ignorable(prev))) break;
        prev = -1;
      }
      bool final_sigma = prev >= 0 && cased(prev);
      if (final_sigma) {
        std::size_t k = i + n;
        int32_t next = -1;
        while (k < s.size()) {
          std::size_t m = 1;
          next = decode_at(s, k, m);
          k += m;
          if (!(next >= 0 && case_ignorable(next))) break;
          next = -1;
        }
        final_sigma = !(next >= 0 && cased(next));
      }
      append_utf8(final_sigma ? 0x3C2 : 0x3C3, out);
    } else {
      append_utf8(utf8proc_tolower(cp), out);
    }
    i += n;
  }
  return out;
}

std::vector<std::string> tokenize_13a(const std::string& line_in, bool lowercase) {
  std::string line = py_rstrip(lowercase ? python_lower(line_in) : line_in);
  line = replace_all(line, "<skipped>", "");
  line = replace_all(line, "-\n", "");
  line = replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    line = replace_all(line, "&quot;", "\"");
    line = replace_all(line, "&amp;", "&");
    line = replace_all(line, "&lt;", "<");
    line = replace_all(line, "&gt;", ">");
  }
  // a. [{-~[-` -&(-+:-@/] -> " \1 "
  std::string a;
  a.reserve(line.size() * 2 + 2);
  a += ' ';
  for (const char ch : line) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool split = (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
                       (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
    if (split) {
      a += ' ';
      a += ch;
      a += ' ';
    } else {
      a += ch;
    }
  }
  a += ' ';
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto dot_comma = [](char c) { return c == '.' || c == ','; };
  // b. ([^0-9])([.,]) -> "\1 \2 "
  std::string b;
  b.reserve(a.size() * 2);
  for (std::size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && !digit(a[i]) && dot_comma(a[i + 1])) {
      b += a[i];
      b += ' ';
      b += a[i + 1];
      b += ' ';
      i += 2;
    } else {
      b += a[i++];
    }
  }
  // c. ([.,])([^0-9]) -> " \1 \2"
  std::string c;
  c.reserve(b.size() * 2);
  for (std::size_t i = 0; i < b.size();) {
    if (i + 1 < b.size() && dot_comma(b[i]) && !digit(b[i + 1])) {
      c += ' ';
      c += b[i];
      c += ' ';
      c += b[i + 1];
      i += 2;
    } else {
      c += b[i++];
    }
  }
  // d. ([0-9])(-) -> "\1 \2 "
  std::string d;
  d.reserve(c.size() * 2);
  for (std::size_t i = 0; i < c.size();) {
    if (i + 1 < c.size() && digit(c[i]) && c[i + 1] == '-') {
      d += c[i];
      d += " - ";
      i += 2;
    } else {
      d += c[i++];
    }
  }
  return py_split(d);
}

std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer) {
  std::vector<std::string> toks;
  std::string cur;
  const auto flush = [&] {
    if (!cur.empty()) toks.push_back(std::move(cur));
    cur.clear();
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      if ((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9'))
        cur += static_cast<char>(b);
      else if (b >= 'A' && b <= 'Z')
        cur += static_cast<char>(b + 32);
      else
        flush();
      ++i;
      continue;
    }
    std::size_t n = 1;
    const int32_t cp = decode_at(text, i, n);
    if (cp == 0x212A) {  // KELVIN SIGN lower-cases to "k"
      cur += 'k';
    } else if (cp == 0x130) {  // lower-cases to "i" + U+0307, which is a separator
      cur += 'i';
      flush();
    } else {
      flush();
    }
    i += n;
  }
  flush();
  if (use_stemmer)
    for (std::string& t : toks)
      if (t.size() > 3) t = porter_stem(t);
  return toks;
}

std::string porter_stem(const std::string& word) {
  static const std::unordered_map<std::string, std::string> pool = {
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},  {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  const auto it = pool.find(word);
  if (it != pool.end()) return it->second;
  if (word.size() <= 2) return word;
  std::string s = step1a(word);
  s = step1b(s);
  s = step1c(s);
  s = step2(s);
  s = step3(s);
  s = step4(s);
  s = step5a(s);
  s = step5b(s);
  return s;
}

// ---------------------------------------------------------------- BLEU

BleuScore bleu_from_stats(const std::array<std::int64_t, 4>& counts, const std::array<std::int64_t, 4>& totals,
                          std::int64_t sys_len, std::int64_t ref_len, bool effective_order) {
  BleuScore r;
  r.counts = counts;
  r.totals = totals;
  r.sys_len = sys_len;
  r.ref_len = ref_len;
  r.bp = 1.0;
  if (sys_len < ref_len)
    r.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
  if (std::all_of(counts.begin(), counts.end(), [](std::int64_t c) { return c == 0; })) return r;  // score 0

  double smooth_mteval = 1.0;
  int eff_order = 4;
  for (int n = 1; n <= 4; ++n) {
    if (totals[n - 1] == 0) break;
    if (effective_order) eff_order = n;
    if (counts[n - 1] == 0) {
      smooth_mteval *= 2.0;
      r.precisions[n - 1] = 100.0 / (smooth_mteval * static_cast<double>(totals[n - 1]));
    } else {
      r.precisions[n - 1] = 100.0 * static_cast<double>(counts[n - 1]) / static_cast<double>(totals[n - 1]);
    }
  }
  double log_sum = 0.0;  // sacrebleu's my_log: log(0) is floored to -9999999999
  for (int n = 0; n < eff_order; ++n)
    log_sum += r.precisions[n] == 0.0 ? -9999999999.0 : std::log(r.precisions[n]);
  r.score = r.bp * std::exp(log_sum / eff_order);
  return r;
}

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs, bool lowercase) {
  PE_CHECK(!hyps.empty(), "corpus_bleu: no hypotheses");
  PE_CHECK(hyps.size() == refs.size(), "corpus_bleu: ", hyps.size(), " hypotheses but ", refs.size(), " references");
  std::array<std::int64_t, 4> counts{}, totals{};
  std::int64_t sys_len = 0, ref_len = 0;
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    const SegmentStats st = segment_stats(hyps[i], refs[i], lowercase);
    sys_len += st.sys_len;
    ref_len += st.ref_len;
    for (std::size_t n = 0; n < 4; ++n) {
      counts[n] += st.counts[n];
      totals[n] += st.totals[n];
    }
  }
  return bleu_from_stats(counts, totals, sys_len, ref_len, /*effective_order=*/false);
}

BleuScore sentence_bleu(const std::string& hyp, const std::string& ref, bool lowercase, bool effective_order) {
  const SegmentStats st = segment_stats(hyp, ref, lowercase);
  return bleu_from_stats(st.counts, st.totals, st.sys_len, st.ref_len, effective_order);
}

// ---------------------------------------------------------------- ROUGE-L

std::size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

RougeScore rouge_l(const std::string& hyp, const std::string& ref, bool use_stemmer) {
  const std::vector<std::string> h = rouge_tokenize(hyp, use_stemmer);
  const std::vector<std::string> r = rouge_tokenize(ref, use_stemmer);
  RougeScore s;
  if (h.empty() || r.empty()) return s;
  const double lcs = static_cast<double>(lcs_length(r, h));
  s.precision = lcs / static_cast<double>(h.size());
  s.recall = lcs / static_cast<double>(r.size());
  // rouge_score.scoring.fmeasure, evaluated in the same order.
  s.fmeasure = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

double mean_rouge_l_f1(const std::vector<std::string>& hyps, const std::vector<std::string>& refs, bool use_stemmer) {
  PE_CHECK(!hyps.empty(), "mean_rouge_l_f1: no hypotheses");
  PE_CHECK(hyps.size() == refs.size(), "mean_rouge_l_f1: ", hyps.size(), " hypotheses but ", refs.size(),
           " references");
  double sum = 0.0;
  for (std::size_t i = 0; i < hyps.size(); ++i) sum += rouge_l(hyps[i], refs[i], use_stemmer).fmeasure;
  return sum / static_cast<double>(hyps.size());
}

// ---------------------------------------------------------------- GO-term recall

TermRecall term_recall(const std::string& hyp, const std::vector<std::string>& term_names, bool use_stemmer) {
  const std::vector<std::string> h = rouge_tokenize(hyp, use_stemmer);
  TermRecall r;
  for (const std::string& name : term_names) {
    const std::vector<std::string> t = rouge_tokenize(name, use_stemmer);
    if (t.empty()) continue;
    ++r.total;
    if (std::search(h.begin(), h.end(), t.begin(), t.end()) != h.end()) ++r.found;
  }
  r.recall = r.total ? static_cast<double>(r.found) / static_cast<double>(r.total) : 0.0;
  return r;
}

}  // namespace pe
