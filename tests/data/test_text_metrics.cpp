// Text-generation metrics (decoders/text_metrics.h): BLEU and ROUGE-L worked out by hand, then every
// value that scripts/make_text_metric_fixtures.py recorded from sacrebleu, rouge-score and nltk in
// tests/fixtures/text_metrics/cases.json (tokens, sentence and corpus BLEU, ROUGE-L P/R/F, stems).
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "decoders/text_metrics.h"

using pe::BleuScore;
using pe::RougeScore;
using Tokens = std::vector<std::string>;

namespace {

const std::string kFixture = std::string(PE_SOURCE_DIR) + "/tests/fixtures/text_metrics/cases.json";

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(kFixture);
    REQUIRE_MESSAGE(in.good(), "cannot open fixture ", kFixture);
    return nlohmann::json::parse(in);
  }();
  return j;
}

// BLEU on the 0-100 scale: 1e-9 relative (plus 1e-12 absolute for values at 0).
bool bleu_close(double got, double want) { return std::abs(got - want) <= 1e-9 * std::abs(want) + 1e-12; }
bool rouge_close(double got, double want) { return std::abs(got - want) <= 1e-12; }

std::string join(const Tokens& t) {
  std::string s;
  for (const std::string& x : t) s += (s.empty() ? "" : " | ") + x;
  return s;
}

// Compares a BleuScore with one of the fixture's BLEU objects (counts etc. only when recorded).
void check_bleu(const BleuScore& got, const nlohmann::json& want, const std::string& what) {
  INFO(what);
  CHECK_MESSAGE(bleu_close(got.score, want.at("score").get<double>()), "score ", got.score, " want ",
                want.at("score").get<double>());
  CHECK_MESSAGE(bleu_close(got.bp, want.at("bp").get<double>()), "bp ", got.bp, " want ", want.at("bp").get<double>());
  for (int n = 0; n < 4; ++n)
    CHECK_MESSAGE(bleu_close(got.precisions[n], want.at("precisions")[n].get<double>()), "precision ", n + 1, ": ",
                  got.precisions[n], " want ", want.at("precisions")[n].get<double>());
  if (want.contains("counts")) {
    for (int n = 0; n < 4; ++n) {
      CHECK(got.counts[n] == want.at("counts")[n].get<std::int64_t>());
      CHECK(got.totals[n] == want.at("totals")[n].get<std::int64_t>());
    }
    CHECK(got.sys_len == want.at("sys_len").get<std::int64_t>());
    CHECK(got.ref_len == want.at("ref_len").get<std::int64_t>());
  }
}

void check_rouge(const RougeScore& got, const nlohmann::json& want, const std::string& what) {
  INFO(what);
  CHECK_MESSAGE(rouge_close(got.precision, want.at("p").get<double>()), "P ", got.precision);
  CHECK_MESSAGE(rouge_close(got.recall, want.at("r").get<double>()), "R ", got.recall);
  CHECK_MESSAGE(rouge_close(got.fmeasure, want.at("f").get<double>()), "F ", got.fmeasure);
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("text metrics: BLEU worked by hand") {
    // hyp "the cat sat on the mat", ref "the cat is on the mat" (13a leaves both as 6 words).
    //   1-grams: the x2, cat, sat, on, mat; the ref has the x2, cat, on, mat  -> 5/6
    //   2-grams: the cat | cat sat | sat on | on the | the mat  -> 3/5 (the cat, on the, the mat)
    //   3-grams: the cat sat | cat sat on | sat on the | on the mat -> 1/4 (on the mat)
    //   4-grams: 0/3 -> 'exp' smoothing: first order without a match gets 100 / (2 * 3)
    //   BP = 1 (6 = 6); BLEU = (500/6 * 60 * 25 * 100/6)^(1/4) = (75e6/36)^(1/4) = 37.9918...
    const BleuScore s = pe::corpus_bleu({"the cat sat on the mat"}, {"the cat is on the mat"});
    CHECK(s.counts == std::array<std::int64_t, 4>{5, 3, 1, 0});
    CHECK(s.totals == std::array<std::int64_t, 4>{6, 5, 4, 3});
    CHECK(s.precisions[0] == doctest::Approx(500.0 / 6));
    CHECK(s.precisions[1] == doctest::Approx(60.0));
    CHECK(s.precisions[2] == doctest::Approx(25.0));
    CHECK(s.precisions[3] == doctest::Approx(100.0 / 6));
    CHECK(s.bp == 1.0);
    CHECK(s.score == doctest::Approx(std::pow(75e6 / 36, 0.25)).epsilon(1e-12));
    CHECK(s.score == doctest::Approx(37.99178428257963).epsilon(1e-12));

    // Brevity: hyp "the cat" (2 words) against the 6-word ref: BP = exp(1 - 6/2) = e^-2. Both 1- and
    // 2-grams match fully, no 3- or 4-gram exists: corpus BLEU (effective order off) is 0, sentence
    // BLEU (effective order on: mean over orders 1-2 only) is e^-2 * 100 = 13.53.
    const BleuScore c = pe::corpus_bleu({"the cat"}, {"the cat is on the mat"});
    CHECK(c.bp == doctest::Approx(std::exp(-2.0)).epsilon(1e-15));
    CHECK(c.score == 0.0);
    const BleuScore e = pe::sentence_bleu("the cat", "the cat is on the mat");
    CHECK(e.score == doctest::Approx(100 * std::exp(-2.0)).epsilon(1e-12));
    CHECK(pe::sentence_bleu("the cat", "the cat is on the mat", false, /*effective_order=*/false).score == 0.0);

    // Clipping: "the the the the" matches "the" at most twice (the ref's count).
    const BleuScore k = pe::sentence_bleu("the the the the", "the cat on the mat");
    CHECK(k.counts[0] == 2);
    CHECK(k.totals[0] == 4);
    // Identical text scores 100; no matching word scores 0; case matters unless lowercase.
    CHECK(pe::corpus_bleu({"ATP binding; protein kinase activity"}, {"ATP binding; protein kinase activity"}).score ==
          doctest::Approx(100.0));
    CHECK(pe::corpus_bleu({"Lorem ipsum dolor sit"}, {"protein kinase activity here"}).score == 0.0);
    CHECK(pe::corpus_bleu({"KINASE ACTIVITY OF THE"}, {"kinase activity of the"}).score == 0.0);
    CHECK(pe::corpus_bleu({"KINASE ACTIVITY OF THE"}, {"kinase activity of the"}, true).score == doctest::Approx(100.0));
    // Statistics are summed over the corpus before the score: two halves differ from the mean.
    const BleuScore two = pe::corpus_bleu({"the cat sat on the mat", "the cat"},
                                          {"the cat is on the mat", "the cat is on the mat"});
    CHECK(two.sys_len == 8);
    CHECK(two.ref_len == 12);
    CHECK(two.bp == doctest::Approx(std::exp(1.0 - 12.0 / 8.0)).epsilon(1e-15));

    CHECK_THROWS_AS(pe::corpus_bleu({}, {}), pe::Error);
    CHECK_THROWS_AS(pe::corpus_bleu({"a"}, {"a", "b"}), pe::Error);
  }

  TEST_CASE("text metrics: 13a and rouge tokenisation by hand") {
    CHECK(pe::tokenize_13a("Has a mass of 5.2 kDa.") == Tokens{"Has", "a", "mass", "of", "5.2", "kDa", "."});
    CHECK(pe::tokenize_13a("ATP-binding (EC 2.7.11.1), 1,000 aa; 5-10") ==
          Tokens{"ATP-binding", "(", "EC", "2.7.11.1", ")", ",", "1,000", "aa", ";", "5", "-", "10"});
    CHECK(pe::tokenize_13a("5'-3' exonuclease &amp; <skipped>pro-\ntein") ==
          Tokens{"5'-3'", "exonuclease", "&", "protein"});
    CHECK(pe::tokenize_13a("ΟΔΟΣ Σ", true) == Tokens{"οδος", "σ"});  // final sigma only word-finally
    CHECK(pe::tokenize_13a("  \t\n").empty());
    CHECK(pe::python_lower("İK") == "i\xcc\x87k");  // U+0130 -> i + U+0307 (Kelvin sign is not here)
    CHECK(pe::rouge_tokenize("ATP-binding 5.2 kDa; α-helix İ\u212A") ==
          Tokens{"atp", "binding", "5", "2", "kda", "helix", "i", "k"});
    CHECK(pe::rouge_tokenize("Kinases binding activities", true) == Tokens{"kinas", "bind", "activ"});
    CHECK(pe::rouge_tokenize("the sky dies", true) == Tokens{"the", "sky", "die"});  // tokens <= 3 chars not stemmed
    CHECK(pe::porter_stem("phosphorylation") == "phosphoryl");
  }

  TEST_CASE("text metrics: ROUGE-L worked by hand") {
    // ref "the cat is on the mat", hyp "on the mat the cat". The LCS table (rows: ref, columns: hyp)
    // ends in 3: "on the mat" (hyp 1-3 = ref 4-6); "the cat" (2) cannot be extended, since after
    // ref's "the cat" the hyp has nothing left that the ref has in order. P = 3/5, R = 3/6,
    // F = 2 * 0.6 * 0.5 / 1.1 = 6/11.
    const RougeScore s = pe::rouge_l("on the mat the cat", "the cat is on the mat");
    CHECK(s.precision == doctest::Approx(0.6).epsilon(1e-15));
    CHECK(s.recall == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(s.fmeasure == doctest::Approx(6.0 / 11).epsilon(1e-15));
    CHECK(pe::lcs_length({"a", "b", "c", "b", "d", "a", "b"}, {"b", "d", "c", "a", "b", "a"}) == 4);  // CLRS: b c b a
    // Case and punctuation do not matter; an empty side scores 0.
    const RougeScore same = pe::rouge_l("ATP-binding, Protein KINASE.", "atp binding protein kinase");
    CHECK(same.fmeasure == 1.0);
    const RougeScore empty = pe::rouge_l("", "kinase");
    CHECK(empty.precision == 0.0);
    CHECK(empty.recall == 0.0);
    CHECK(empty.fmeasure == 0.0);
    CHECK(pe::rouge_l("--", "kinase").fmeasure == 0.0);
    // Stemming joins inflections: "binds proteins" vs "binding protein".
    CHECK(pe::rouge_l("binds proteins", "binding protein").fmeasure == 0.0);
    CHECK(pe::rouge_l("binds proteins", "binding protein", true).fmeasure == 1.0);
    CHECK(pe::mean_rouge_l_f1({"on the mat the cat", "x"}, {"the cat is on the mat", "x"}) ==
          doctest::Approx((6.0 / 11 + 1.0) / 2).epsilon(1e-15));
    CHECK_THROWS_AS(pe::mean_rouge_l_f1({}, {}), pe::Error);
    CHECK_THROWS_AS(pe::mean_rouge_l_f1({"a"}, {}), pe::Error);
  }

  TEST_CASE("text metrics: term recall counts whole-word names") {
    const std::string hyp = "An ATP-binding protein with Protein Kinase activity; binds kinases.";
    // hyp tokens: an atp binding protein with protein kinase activity binds kinases
    const pe::TermRecall r = pe::term_recall(hyp, {"ATP binding", "protein kinase activity", "metal ion binding",
                                                   "Kinase", "", "--", "bind", "activity protein"});
    // found: atp binding, protein kinase activity, kinase; not: metal ion binding, bind (a prefix of
    // "binds"/"binding", not a word), "activity protein" (not adjacent in this order); "" and "--"
    // have no token and are not counted.
    CHECK(r.found == 3);
    CHECK(r.total == 6);
    CHECK(r.recall == doctest::Approx(0.5));
    // With the stemmer "bind" (= stem of binds/binding) is found too.
    const pe::TermRecall s = pe::term_recall(hyp, {"bind", "kinase activities", "metal ion binding"}, true);
    CHECK(s.found == 2);
    CHECK(s.total == 3);
    const pe::TermRecall none = pe::term_recall(hyp, {});
    CHECK(none.total == 0);
    CHECK(none.recall == 0.0);
    CHECK(pe::term_recall("", {"ATP binding"}).recall == 0.0);
    CHECK(pe::term_recall("Binds ATP; no binding", {"ATP binding"}).found == 0);
  }

  TEST_CASE("text metrics: tokenisers equal sacrebleu - rouge-score - nltk on the fixture strings") {
    const nlohmann::json& j = fixture();
    int n = 0;
    for (const auto& t : j.at("tokenize")) {
      const std::string text = t.at("text").get<std::string>();
      INFO("text: [", text, "]");
      const Tokens tok13a = t.at("tok_13a").get<Tokens>();
      const Tokens rouge = t.at("tok_rouge").get<Tokens>();
      CHECK_MESSAGE(pe::tokenize_13a(text) == tok13a, join(pe::tokenize_13a(text)));
      CHECK_MESSAGE(pe::tokenize_13a(text, true) == t.value("tok_13a_lc", tok13a), join(pe::tokenize_13a(text, true)));
      CHECK_MESSAGE(pe::rouge_tokenize(text) == rouge, join(pe::rouge_tokenize(text)));
      CHECK_MESSAGE(pe::rouge_tokenize(text, true) == t.value("tok_rouge_stem", rouge), join(pe::rouge_tokenize(text, true)));
      if (t.contains("py_lower")) CHECK(pe::python_lower(text) == t.at("py_lower").get<std::string>());
      ++n;
    }
    CHECK(n >= 100);
    int stems = 0;
    for (const auto& ws : j.at("stems")) {
      const std::string w = ws[0].get<std::string>();
      INFO("word: ", w);
      CHECK(pe::porter_stem(w) == ws[1].get<std::string>());
      ++stems;
    }
    CHECK(stems >= 150);
  }

  TEST_CASE("text metrics: sentence BLEU and ROUGE-L equal sacrebleu and rouge-score on every case") {
    const nlohmann::json& j = fixture();
    int n = 0;
    for (const auto& c : j.at("cases")) {
      const std::string name = c.at("name").get<std::string>();
      const std::string hyp = c.at("hyp").get<std::string>(), ref = c.at("ref").get<std::string>();
      check_bleu(pe::sentence_bleu(hyp, ref), c.at("sentence_bleu"), name + ": sentence_bleu");
      check_bleu(pe::sentence_bleu(hyp, ref, /*lowercase=*/true), c.at("sentence_bleu_lc"), name + ": lowercase");
      check_bleu(pe::sentence_bleu(hyp, ref, false, /*effective_order=*/false), c.at("sentence_bleu_no_eff"),
                 name + ": effective order off");
      check_rouge(pe::rouge_l(hyp, ref), c.at("rougeL"), name + ": rougeL");
      check_rouge(pe::rouge_l(hyp, ref, /*use_stemmer=*/true), c.at("rougeL_stem"), name + ": rougeL stemmed");
      ++n;
    }
    CHECK(n >= 60);
  }

  TEST_CASE("text metrics: corpus BLEU and mean ROUGE-L equal sacrebleu and rouge-score on every subset") {
    const nlohmann::json& j = fixture();
    std::vector<std::string> hyps, refs;
    for (const auto& c : j.at("cases")) {
      hyps.push_back(c.at("hyp").get<std::string>());
      refs.push_back(c.at("ref").get<std::string>());
    }
    int n = 0;
    for (const auto& s : j.at("corpus_bleu")) {
      std::vector<std::string> h, r;
      for (const auto& i : s.at("indices")) {
        h.push_back(hyps.at(i.get<std::size_t>()));
        r.push_back(refs.at(i.get<std::size_t>()));
      }
      const bool lc = s.at("lowercase").get<bool>();
      check_bleu(pe::corpus_bleu(h, r, lc), s.at("bleu"),
                 "corpus " + s.at("name").get<std::string>() + (lc ? " lowercase" : ""));
      ++n;
    }
    CHECK(n >= 20);
    CHECK(rouge_close(pe::mean_rouge_l_f1(hyps, refs), j.at("mean_rougeL_f").get<double>()));
    CHECK(rouge_close(pe::mean_rouge_l_f1(hyps, refs, true), j.at("mean_rougeL_stem_f").get<double>()));
  }
}
