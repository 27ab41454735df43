// probe/function_metrics: CAFA Fmax, micro AUPR, accuracy and macro-F1, on hand-computed cases and
// against scikit-learn / an independent numpy Fmax (fixtures by scripts/make_probe_metric_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "probe/function_metrics.h"

using namespace pe;

TEST_SUITE("data") {
  TEST_CASE("Fmax by hand: two proteins three terms") {
    // Protein 0: true {0, 1}, scores 0.9, 0.4, 0.2. Protein 1: true {2}, scores 0.3, 0.1, 0.8.
    // t in (0.30, 0.40]: p0 predicts {0, 1} (P 1, R 1), p1 predicts {2} (P 1, R 1): F = 1 at t = 0.31.
    std::vector<double> s = {0.9, 0.4, 0.2, 0.3, 0.1, 0.8};
    std::vector<uint8_t> y = {1, 1, 0, 0, 0, 1};
    FmaxResult r = fmax_protein_centric(s, y, 2, 3);
    CHECK(r.fmax == doctest::Approx(1.0));
    CHECK(r.threshold == doctest::Approx(0.31));
    CHECK(r.evaluated == 2);
    // At t = 0.85 only p0 predicts ({0}: P 1, R 0.5); p1 recall 0: P = 1, R = 0.25, F = 0.4.
    std::vector<double> s2 = {0.9, 0.2, 0.2, 0.1, 0.1, 0.1};
    FmaxResult r2 = fmax_protein_centric(s2, y, 2, 3);
    // t <= 0.1: both predict all: P = (2/3 + 1/3) / 2 = 0.5, R = 1, F = 2/3. t in (0.1, 0.2]: p0 all three
    // (P 2/3, R 1), p1 nothing (R 0): P 2/3, R 0.5, F 0.571. So Fmax = 2/3 at t = 0.01.
    CHECK(r2.fmax == doctest::Approx(2.0 / 3.0));
    CHECK(r2.threshold == doctest::Approx(0.01));
  }

  TEST_CASE("Fmax leaves unannotated proteins out and micro AUPR reports empty terms") {
    std::vector<double> s = {0.9, 0.1, 0.7, 0.7};
    std::vector<uint8_t> y = {1, 0, 0, 0};  // protein 1 has no true term; term 1 has no positive
    FmaxResult r = fmax_protein_centric(s, y, 2, 2);
    CHECK(r.evaluated == 1);
    CHECK(r.unannotated == 1);
    CHECK(r.fmax == doctest::Approx(1.0));
    AuprResult a = micro_aupr(s, y, 2, 2);
    CHECK(a.defined);
    CHECK(a.terms_without_positives == 1);
    CHECK(a.aupr == doctest::Approx(1.0));  // the one positive scores highest
    AuprResult none = micro_aupr(s, {0, 0, 0, 0}, 2, 2);
    CHECK_FALSE(none.defined);
    CHECK(std::isnan(none.aupr));
    CHECK(fmax_protein_centric(s, {0, 0, 0, 0}, 2, 2).fmax == 0.0);
  }

  TEST_CASE("micro AUPR by hand with a tie") {
    // Scores 0.9 (+), 0.5 (+), 0.5 (-), 0.1 (-): points (R 0.5, P 1), then the tie together (R 1, P 2/3).
    // AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    AuprResult a = micro_aupr({0.9, 0.5, 0.5, 0.1}, {1, 1, 0, 0}, 1, 4);
    CHECK(a.aupr == doctest::Approx(5.0 / 6.0).epsilon(1e-12));
    CHECK(a.positives == 2);
  }

  TEST_CASE("accuracy and macro F1 by hand and bad input named") {
    std::vector<int64_t> truth = {0, 0, 1, 2}, pred = {0, 1, 1, 1};
    CHECK(accuracy(pred, truth) == doctest::Approx(0.5));
    // class 0: tp 1, 2 true, 1 pred: F1 2/3. class 1: tp 1, 1 true, 3 pred: 0.5. class 2: 0. class 3 absent.
    CHECK(macro_f1(pred, truth, 4) == doctest::Approx((2.0 / 3.0 + 0.5 + 0.0) / 3.0));
    CHECK_THROWS_WITH_AS(macro_f1({0, 5}, {0, 1}, 4), doctest::Contains("outside [0, 4)"), Error);
    CHECK_THROWS_WITH_AS(fmax_protein_centric({0.1, NAN}, {1, 0}, 1, 2), doctest::Contains("term 1 is not finite"),
                         Error);
    CHECK_THROWS_WITH_AS(micro_aupr({0.1}, {1, 0}, 1, 2), doctest::Contains("expected 1 x 2"), Error);
  }

  TEST_CASE("probe metrics match scikit-learn and an independent Fmax on recorded fixtures") {
    const std::string path = std::string(PE_SOURCE_DIR) + "/tests/fixtures/probe_metrics/cases.json";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open fixture ", path);
    nlohmann::json j = nlohmann::json::parse(in);
    int checked = 0;
    for (const auto& c : j["multilabel"]) {
      const int64_t n = c["proteins"], m = c["terms"];
      std::vector<double> s = c["scores"].get<std::vector<double>>();
      std::vector<uint8_t> y;
      for (const auto& v : c["labels"]) y.push_back(uint8_t(v.get<int>()));
      if (c.contains("micro_aupr")) {
        CHECK(micro_aupr(s, y, n, m).aupr == doctest::Approx(c["micro_aupr"].get<double>()).epsilon(1e-12));
        ++checked;
      }
      if (c.contains("fmax")) {
        FmaxResult r = fmax_protein_centric(s, y, n, m);
        CHECK(r.fmax == doctest::Approx(c["fmax"].get<double>()).epsilon(1e-12));
        CHECK(r.threshold == doctest::Approx(c["fmax_threshold"].get<double>()));
        ++checked;
      }
    }
    for (const auto& c : j["single_label"]) {
      std::vector<int64_t> t = c["truth"].get<std::vector<int64_t>>(), p = c["predicted"].get<std::vector<int64_t>>();
      CHECK(accuracy(p, t) == doctest::Approx(c["accuracy"].get<double>()).epsilon(1e-12));
      CHECK(macro_f1(p, t, c["classes"].get<int64_t>()) == doctest::Approx(c["macro_f1"].get<double>()).epsilon(1e-12));
      ++checked;
    }
    CHECK(checked >= 50);
  }
}
