// The design arm's metrics (decoders/design_metrics.h) and the GO-term parser of describe's term
// recall (data/records.h go_term_names), on hand-built sequences and score matrices.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/records.h"
#include "decoders/design_metrics.h"

using namespace pe;

namespace {

// Every T-subset of the other prompts, enumerated: the share the protocol's random draws estimate.
double brute_force_share(const std::vector<std::vector<float>>& s, const std::vector<int64_t>& own, int64_t T) {
  double total = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    std::vector<size_t> others;
    for (size_t j = 0; j < s[i].size(); ++j)
      if (int64_t(j) != own[i]) others.push_back(j);
    const size_t n = others.size();
    int64_t wins = 0, subsets = 0;
    for (uint32_t mask = 0; mask < (1u << n); ++mask) {
      if (__builtin_popcount(mask) != T) continue;
      ++subsets;
      bool win = true;
      for (size_t k = 0; k < n; ++k)
        if ((mask >> k & 1u) && !(s[i][size_t(own[i])] > s[i][others[k]])) win = false;
      wins += win ? 1 : 0;
    }
    total += double(wins) / double(subsets);
  }
  return total / double(s.size());
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("arms design metrics: validity - lengths - composition") {
    CHECK(is_standard_protein("ACDEFGHIKLMNPQRSTVWY"));
    CHECK_FALSE(is_standard_protein(""));
    CHECK_FALSE(is_standard_protein("ACXD"));   // X, B, Z, U, O are not standard
    CHECK_FALSE(is_standard_protein("MKU"));
    CHECK_FALSE(is_standard_protein("mkt"));    // lower case is not a residue code here
    CHECK_FALSE(is_standard_protein(std::string("MK\0T", 4)));

    const LengthSummary l = length_summary({"A", "AA", "AAA", "AAAA"});
    CHECK(l.n == 4);
    CHECK(l.mean == doctest::Approx(2.5));
    CHECK(l.sd == doctest::Approx(std::sqrt(1.25)));
    CHECK(l.median == doctest::Approx(2.5));
    CHECK(l.p5 == doctest::Approx(1.15));  // numpy.percentile([1,2,3,4], 5)
    CHECK(l.p95 == doctest::Approx(3.85));
    CHECK(l.min == 1);
    CHECK(l.max == 4);

    CHECK(ks_statistic({1, 2, 3}, {3, 2, 1}) == 0);
    CHECK(ks_statistic({1, 2}, {5, 6}) == 1);
    CHECK(ks_statistic({1, 2, 3, 4}, {3, 4, 5, 6}) == doctest::Approx(0.5));
    CHECK_THROWS_AS(ks_statistic({}, {1}), Error);

    const auto f = residue_frequencies({"AAC", "X", "c"});  // X and lower case are not counted
    CHECK(f[0] == doctest::Approx(2.0 / 3));                 // A
    CHECK(f[1] == doctest::Approx(1.0 / 3));                 // C
    std::array<double, 20> a{}, c{};
    a[0] = 1, c[1] = 1;
    CHECK(total_variation(a, c) == doctest::Approx(1));
    CHECK(total_variation(a, a) == 0);

    const Validity v = validity({"ACD", "AXC", ""}, {"ACDA", "AC"});
    CHECK(v.sequences == 3);
    CHECK(v.valid == 1);
    CHECK(v.valid_share == doctest::Approx(1.0 / 3));
    CHECK(v.length_ks == doctest::Approx(0.5));  // {0,3,3} against {2,4}: 1/3 at 0, 1/3-1/2 at 2, 1-1/2 at 3
    CHECK(v.lengths.mean == doctest::Approx(2));
  }

  TEST_CASE("arms design metrics: global alignment identity worked by hand") {
    // Identical: every column identical; BLOSUM62 diagonal M5 K5 T5 A4 Y7 I4 A4 K5 = 39.
    Alignment same = global_alignment("MKTAYIAK", "MKTAYIAK");
    CHECK(same.identical == 8);
    CHECK(same.columns == 8);
    CHECK(same.identity == 1);
    CHECK(same.score2 == 78);
    // One substitution (Y -> W, BLOSUM62 +2): 7 of 8.
    Alignment sub = global_alignment("MKTAYIAK", "MKTAWIAK");
    CHECK(sub.identical == 7);
    CHECK(sub.columns == 8);
    CHECK(sub.score2 == 2 * (39 - 7 + 2));
    // One deletion: 9 identical of 10 columns; score (M5 K5 T5 A4 I4 A4 K5 Q5 R5) - 10 = 32.
    Alignment del = global_alignment("MKTAYIAKQR", "MKTAIAKQR");
    CHECK(del.identical == 9);
    CHECK(del.columns == 10);
    CHECK(del.identity == doctest::Approx(0.9));
    CHECK(del.score2 == 64);
    Alignment rev = global_alignment("MKTAIAKQR", "MKTAYIAKQR");
    CHECK(rev.identity == del.identity);
    CHECK(rev.score2 == del.score2);
    // A 4-residue end gap costs open 10 + 3 x 0.5 (end gaps are penalised).
    Alignment gap = global_alignment("AAAA", "");
    CHECK(gap.columns == 4);
    CHECK(gap.identical == 0);
    CHECK(gap.score2 == -23);
    CHECK(global_alignment("", "").identity == 0);
    // Affine: one gap of 3 (10 + 1) beats three separate gaps (30): "WWWAAAWWW" vs "WWWWWW".
    Alignment aff = global_alignment("WWWAAAWWW", "WWWWWW");
    CHECK(aff.columns == 9);
    CHECK(aff.identical == 6);
    CHECK(aff.score2 == 2 * (6 * 11 - 11));

    // Diversity: AAAA/AAAA identical, both against CCCC 0 (A-C scores 0, any gap costs more).
    CHECK(mean_pairwise_identity({"AAAA", "AAAA", "CCCC"}) == doctest::Approx(1.0 / 3));
    CHECK(mean_pairwise_identity({"AAAA"}) == -1);
  }

  TEST_CASE("arms design metrics: retrieval share on a hand-built score matrix") {
    // 3 proteins x 4 prompts. Row 0 beats all 3 others; row 1 beats one (0.3); row 2 ties everywhere.
    const std::vector<std::vector<float>> s = {
        {0.9f, 0.1f, 0.2f, 0.3f}, {0.5f, 0.4f, 0.3f, 0.6f}, {0.2f, 0.2f, 0.2f, 0.2f}};
    const std::vector<int64_t> own = {0, 1, 3};
    CHECK(retrieval_share(s, own, 1) == doctest::Approx((1 + 1.0 / 3 + 0) / 3));
    CHECK(retrieval_share(s, own, 2) == doctest::Approx(1.0 / 3));
    CHECK(retrieval_share(s, own, 3) == doctest::Approx(1.0 / 3));
    CHECK_THROWS_WITH_AS(retrieval_share(s, own, 4), doctest::Contains("needs at least 5 prompts"), Error);
    CHECK_THROWS_AS(retrieval_share(s, own, 0), Error);
    CHECK_THROWS_AS(retrieval_share(s, {0, 1, 4}, 1), Error);
    CHECK_THROWS_AS(retrieval_share(s, {0, 1}, 1), Error);
    // The closed form equals enumerating every draw of T other prompts, on random matrices with ties.
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
      const size_t n = 5, m = 9;
      std::vector<std::vector<float>> r(n, std::vector<float>(m));
      std::vector<int64_t> o(n);
      for (size_t i = 0; i < n; ++i) {
        for (float& x : r[i]) x = float(rng() % 7) / 7.f;
        o[i] = int64_t(rng() % m);
      }
      for (int64_t T : {1, 3, 4, 8}) {
        CAPTURE(trial);
        CAPTURE(T);
        CHECK(retrieval_share(r, o, T) == doctest::Approx(brute_force_share(r, o, T)).epsilon(1e-12));
      }
    }
  }

  TEST_CASE("arms design metrics: random baseline sequences") {
    std::array<double, 20> f{};
    f[0] = 3, f[1] = 1;  // A : C = 3 : 1 (not normalised)
    const auto a = random_sequences(200, f, {50, 60}, 11);
    REQUIRE(a.size() == 200);
    double n = 0, na = 0;
    for (const std::string& s : a) {
      CHECK((s.size() == 50 || s.size() == 60));
      for (char ch : s) {
        CHECK((ch == 'A' || ch == 'C'));
        n += 1, na += ch == 'A';
      }
    }
    CHECK(na / n == doctest::Approx(0.75).epsilon(0.03));
    CHECK(random_sequences(200, f, {50, 60}, 11) == a);  // seeded
    CHECK(random_sequences(200, f, {50, 60}, 12) != a);
    CHECK_THROWS_AS(random_sequences(1, std::array<double, 20>{}, {5}, 0), Error);
    CHECK_THROWS_AS(random_sequences(1, f, {}, 0), Error);
  }

  TEST_CASE("arms describe: GO term names parsed back from the GO text template") {
    CHECK(go_term_names(go_text({"b", "a"}, {"c"}, {"d"})) == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(go_term_names("Molecular function: 5.8S rRNA binding; ATP binding. Cellular component: cytoplasm.") ==
          std::vector<std::string>{"5.8S rRNA binding", "ATP binding", "cytoplasm"});
    // A UniProt text: keywords first, the GO part at the end.
    CHECK(go_term_names("Keywords: ATP-binding; Kinase. Molecular function: ATP binding.") ==
          std::vector<std::string>{"ATP binding"});
    CHECK(go_term_names("Biological process: DNA repair; SOS response.") ==
          std::vector<std::string>{"DNA repair", "SOS response"});
    CHECK(go_term_names("").empty());
    CHECK(go_term_names("A kinase that binds ATP.").empty());
    // A label inside a name does not start a part.
    CHECK(go_term_names("Molecular function: x.") == std::vector<std::string>{"x"});
  }
}
