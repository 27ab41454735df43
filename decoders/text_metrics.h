#pragma once
// Text-generation metrics for the "describe" arm (issue #12): corpus BLEU-4 computed like sacrebleu,
// ROUGE-L computed like Google's rouge-score, and the GO-term recall of a generated description.
// Depends on nothing of the engine (it lives in the protst_data library). Strings are UTF-8.
//
// Parity: tests/data/test_text_metrics.cpp compares every function here with values that
// scripts/make_text_metric_fixtures.py recorded from sacrebleu 2.6.0 and rouge-score 0.1.2 (nltk
// 3.10.4 for the Porter stemmer) in tests/fixtures/text_metrics/cases.json.
//
// ---------------------------------------------------------------- BLEU tokenisation ("13a")
// sacrebleu's default tokenizer (Tokenizer13a, the tokenisation of WMT's mteval-v13a.pl), preceded by
// what sacrebleu's BLEU._preprocess_segment does to every hypothesis and reference line:
//   0. lowercase (only with lowercase=true): Python's str.lower(), i.e. the full Unicode lower-case
//      mapping: U+0130 (capital I with dot) becomes "i" + U+0307, a capital sigma becomes the final
//      sigma U+03C2 at the end of a word (Unicode's Final_Sigma rule) and U+03C3 elsewhere, every
//      other code point its simple lower case (utf8proc's table). Checked once against Python 3.11
//      (Unicode 14) on every code point, alone and around a sigma: equal for all code points that
//      Unicode 14 assigns (utf8proc 2.8 knows Unicode 15: 111 code points new in 15 have their
//      Unicode-15 properties here, which only changes whether a sigma next to them counts as final);
//   1. strip trailing whitespace (Python's str.rstrip(): the 29 Unicode whitespace code points of
//      str.isspace(), e.g. \t \n \v \f \r, U+001C..U+001F, space, U+0085, U+00A0, U+2000..U+200A);
//   2. delete "<skipped>", delete "-\n" (a hyphen at a line break joins the two parts), replace every
//      remaining "\n" by a space;
//   3. if the line contains '&': replace "&quot;" by '"', then "&amp;" by '&', then "&lt;" by '<',
//      then "&gt;" by '>' (one pass each, in this order);
//   4. pad with one space on each side, then four regular-expression substitutions, each one pass
//      from left to right over non-overlapping matches (Python re.sub):
//      a. every character of  { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
//         gets a space on both sides (NOT split here: letters, digits, ' , - . and all non-ASCII);
//      b. a '.' or ',' preceded by a non-digit is split off:   "([^0-9])([.,])" -> "\1 \2 ";
//      c. a '.' or ',' followed by a non-digit is split off:   "([.,])([^0-9])" -> " \1 \2";
//      d. a '-' preceded by a digit is split off:               "([0-9])(-)"     -> "\1 \2 ";
//   5. split on whitespace (Python's str.split(): the same 29 code points), dropping empty tokens.
// So "5.2 kDa" -> [5.2, kDa]; "kinase." -> [kinase, .]; "1,000" stays one token; "ATP-binding" and
// "5'-end" stay whole (hyphen and apostrophe inside words are kept); "5-10" -> [5, -, 10];
// "(EC 2.7.11.1)" -> [(, EC, 2.7.11.1, )]; non-ASCII letters (Greek, accents) are kept untouched.
// Works on bytes where that gives the same result as on code points (it does for valid UTF-8: every
// pattern character is ASCII); invalid UTF-8 bytes are kept as they are (Python would reject them).
//
// ---------------------------------------------------------------- ROUGE tokenisation
// rouge-score's DefaultTokenizer (rouge_score/tokenize.py): Python's str.lower(), then every run of
// characters outside [a-z0-9] becomes a separator, so the tokens are the maximal runs of ASCII
// lower-case letters and digits ("5.2 kDa" -> [5, 2, kda]; "ATP-binding" -> [atp, binding]; "α-helix"
// -> [helix]; Greek and accented letters vanish). Only three kinds of code points lower-case into
// that alphabet: A-Z, U+212A (Kelvin sign -> "k") and U+0130 (-> "i" followed by a separator).
// With use_stemmer, every token longer than 3 characters is replaced by its Porter stem as nltk's
// PorterStemmer (default mode NLTK_EXTENSIONS, the one rouge-score uses) computes it.
//
// Conventions: ROUGE-L with use_stemmer=false is rouge_scorer.RougeScorer(['rougeL']) exactly;
// Prot2Text-style papers often pass use_stemmer=True, which porter_stem reproduces (the fixtures'
// words, and once all 24,422 [a-z0-9] words of the BERT vocabulary and the UniProt fixture texts,
// equal nltk 3.10.4). Always say which one a reported number used.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pe {

// ---------------------------------------------------------------- tokenisers

// Python's str.lower() of a UTF-8 string (full mapping with U+0130 and Final_Sigma, see above).
std::string python_lower(const std::string& s);

// sacrebleu's BLEU preprocessing + 13a tokenisation of one line (steps 0-5 above).
std::vector<std::string> tokenize_13a(const std::string& line, bool lowercase = false);

// rouge-score's default tokenizer (optionally with nltk's Porter stemmer on tokens longer than 3).
std::vector<std::string> rouge_tokenize(const std::string& text, bool use_stemmer = false);

// nltk PorterStemmer().stem(word) (mode NLTK_EXTENSIONS) for an ASCII lower-case word.
std::string porter_stem(const std::string& word);

// ---------------------------------------------------------------- BLEU

// sacrebleu's BLEUScore: score and precisions on the 0-100 scale.
struct BleuScore {
  double score = 0.0;                    // BLEU, 0-100
  std::array<double, 4> precisions{};    // n-gram precisions in percent (smoothed as sacrebleu does)
  std::array<std::int64_t, 4> counts{};  // matched (clipped) n-grams, n = 1..4
  std::array<std::int64_t, 4> totals{};  // hypothesis n-grams, n = 1..4
  double bp = 0.0;                       // brevity penalty
  std::int64_t sys_len = 0;              // hypothesis tokens
  std::int64_t ref_len = 0;              // reference tokens
};

// Corpus BLEU-4 with one reference per hypothesis (hyps[i] against refs[i]), exactly
// sacrebleu.corpus_bleu(hyps, [refs]) with its defaults: 13a tokenisation, case-sensitive unless
// lowercase, n-grams 1-4 with uniform weights, counts clipped by the reference, statistics summed
// over the corpus before the score is taken, brevity penalty exp(1 - ref_len/sys_len) when
// sys_len < ref_len (0 when sys_len is 0), smoothing 'exp' (the k-th order with no match gets
// precision 100 / (2^k * total), k counting such orders), effective order off (an order with no
// hypothesis n-gram at all has precision 0 and makes the score 0), and score 0 when no n-gram of
// any order matches. Throws on an empty corpus (sacrebleu fails too) or different list sizes.
BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs,
                      bool lowercase = false);

// Sentence BLEU as sacrebleu.sentence_bleu(hyp, [ref]): the same with effective_order=true by default
// (orders beyond the longest n-gram the hypothesis has are left out of the geometric mean).
BleuScore sentence_bleu(const std::string& hyp, const std::string& ref, bool lowercase = false,
                        bool effective_order = true);

// The score from summed statistics (sacrebleu's BLEU.compute_bleu, smoothing 'exp').
BleuScore bleu_from_stats(const std::array<std::int64_t, 4>& counts, const std::array<std::int64_t, 4>& totals,
                          std::int64_t sys_len, std::int64_t ref_len, bool effective_order = false);

// ---------------------------------------------------------------- ROUGE-L

struct RougeScore {
  double precision = 0.0;  // LCS / hypothesis tokens
  double recall = 0.0;     // LCS / reference tokens
  double fmeasure = 0.0;   // 2 P R / (P + R), 0 when P + R = 0
};

// rouge_scorer.RougeScorer(['rougeL'], use_stemmer).score(target=ref, prediction=hyp)['rougeL']:
// LCS of the token sequences; all three 0 when either side has no token. Scores on the 0-1 scale.
RougeScore rouge_l(const std::string& hyp, const std::string& ref, bool use_stemmer = false);

// Length of the longest common subsequence of two token sequences.
std::size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b);

// Mean ROUGE-L F1 over the pairs (what Prot2Text reports as ROUGE-L). Throws on an empty corpus or
// different list sizes.
double mean_rouge_l_f1(const std::vector<std::string>& hyps, const std::vector<std::string>& refs,
                       bool use_stemmer = false);

// ---------------------------------------------------------------- GO-term recall

struct TermRecall {
  std::size_t found = 0;  // names that occur in the hypothesis
  std::size_t total = 0;  // names that have at least one token (the others are not counted)
  double recall = 0.0;    // found / total, 0 when total is 0
};

// How many of the reference term names (e.g. the true GO terms' names) the hypothesis names: a name
// counts as found when its rouge tokens (rouge_tokenize, same use_stemmer) occur as a contiguous run
// of the hypothesis's rouge tokens, i.e. a whole-word, case-insensitive match after the same
// normalisation: "ATP binding" is found in "An ATP-binding protein." but not in "Binds ATP; no
// binding" (the two tokens must be adjacent), "kinase" not in "kinases" (unless use_stemmer).
// Duplicate names count as often as they are given.
TermRecall term_recall(const std::string& hyp, const std::vector<std::string>& term_names,
                       bool use_stemmer = false);

}  // namespace pe
