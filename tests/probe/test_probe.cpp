// probe/: predictors on synthetic tasks whose labels are known functions of the features (issue #13's
// done-when), fusion on a task that needs both modalities, determinism, task construction from GO
// annotations and user files, and the cluster check on the real quick-start split when it is built.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/go_dataset.h"
#include "data/jsonl.h"
#include "probe/suite.h"
#include "probe/tasks.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

FeatureMatrix gaussian(int64_t rows, int64_t cols, Generator& gen) {
  FeatureMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.v.resize(size_t(rows * cols));
  for (auto& x : m.v) x = float(gen.normal());
  return m;
}

// Random unit directions, one per term.
std::vector<std::vector<double>> directions(int64_t k, int64_t d, Generator& gen) {
  std::vector<std::vector<double>> w(static_cast<size_t>(k), std::vector<double>(static_cast<size_t>(d)));
  for (auto& v : w)
    for (auto& x : v) x = gen.normal();
  return w;
}

double dot(const FeatureMatrix& x, int64_t i, const std::vector<double>& w) {
  double s = 0;
  for (int64_t c = 0; c < x.cols; ++c) s += x.v[size_t(i * x.cols + c)] * w[size_t(c)];
  return s;
}

// Multi-label: term k is on when w_k . x > 0, x being the sequence features for terms in
// `from_seq` and the text features otherwise.
ProbeLabels halfspace_labels(const FeatureMatrix& seq, const FeatureMatrix& text,
                             const std::vector<std::vector<double>>& w, const std::vector<bool>& from_seq) {
  ProbeLabels l;
  l.n = seq.rows;
  l.k = int64_t(w.size());
  l.y.resize(size_t(l.n * l.k));
  for (int64_t i = 0; i < l.n; ++i)
    for (int64_t k = 0; k < l.k; ++k)
      l.y[size_t(i * l.k + k)] = dot(from_seq[size_t(k)] ? seq : text, i, w[size_t(k)]) > 0;
  return l;
}

struct Synthetic {
  ProbeLabels train, test;
  EncoderFeatures enc;
};

Synthetic make_task(uint64_t seed, int64_t n_train, int64_t n_test, int64_t d, const std::vector<bool>& from_seq) {
  Generator gen(seed);
  Synthetic s;
  s.enc.name = "synthetic";
  s.enc.seq_train = gaussian(n_train, d, gen);
  s.enc.seq_test = gaussian(n_test, d, gen);
  s.enc.text_train = gaussian(n_train, d, gen);
  s.enc.text_test = gaussian(n_test, d, gen);
  auto w = directions(int64_t(from_seq.size()), d, gen);
  s.train = halfspace_labels(s.enc.seq_train, s.enc.text_train, w, from_seq);
  s.test = halfspace_labels(s.enc.seq_test, s.enc.text_test, w, from_seq);
  return s;
}

const ProbeRow& row(const std::vector<ProbeRow>& rows, const std::string& predictor) {
  for (const auto& r : rows)
    if (r.predictor == predictor) return r;
  FAIL("no row ", predictor);
  return rows.front();
}
double fmax_of(const std::vector<ProbeRow>& rows, const std::string& p) { return row(rows, p).metrics.at("fmax").mean; }
double aupr_of(const std::vector<ProbeRow>& rows, const std::string& p) { return row(rows, p).metrics.at("aupr").mean; }

ProbeRunOptions quick_options() {
  ProbeRunOptions o;
  o.seeds = {0};
  o.predictor.epochs = 60;
  o.predictor.batch_size = 64;
  o.predictor.lr = 3e-3;
  o.mlp_hidden = 64;
  o.stacking_folds = 3;
  return o;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("probe: labels a simple function of one modality are learned near-perfectly by every predictor seeing it") {
    for (bool seq_side : {true, false}) {
      CAPTURE(seq_side);
      Synthetic s = make_task(seq_side ? 11 : 12, 600, 300, 8, std::vector<bool>(4, seq_side));
      std::vector<ProbeRow> rows = run_probe(s.train, s.test, {s.enc}, quick_options());
      const std::string m = seq_side ? "seq" : "text", other = seq_side ? "text" : "seq";
      for (const std::string& p : {m + " linear", m + " MLP", std::string("early fusion MLP"),
                                  std::string("late fusion average"), std::string("late fusion stacking")}) {
        CAPTURE(p);
        CHECK(fmax_of(rows, p) > 0.9);
        CHECK(aupr_of(rows, p) > 0.9);
      }
      // The uninformative modality and the label-frequency baseline stay far below.
      CHECK(aupr_of(rows, other + " MLP") < 0.75);
      CHECK(aupr_of(rows, "label-frequency") < 0.6);
    }
  }

  TEST_CASE("probe: single-label task from one modality (softmax) is near-perfect - accuracy and macro-F1 reported") {
    Generator gen(5);
    const int64_t d = 6, C = 3;
    Synthetic s;
    s.enc.name = "synthetic";
    s.enc.seq_train = gaussian(600, d, gen);
    s.enc.seq_test = gaussian(300, d, gen);
    auto w = directions(C, d, gen);
    auto labels = [&](const FeatureMatrix& x) {
      ProbeLabels l;
      l.n = x.rows;
      l.k = C;
      l.multi_label = false;
      l.y.assign(size_t(l.n * C), 0);
      for (int64_t i = 0; i < l.n; ++i) {
        int64_t best = 0;
        for (int64_t c = 1; c < C; ++c)
          if (dot(x, i, w[size_t(c)]) > dot(x, i, w[size_t(best)])) best = c;
        l.cls.push_back(best);
        l.y[size_t(i * C + best)] = 1;
      }
      return l;
    };
    s.train = labels(s.enc.seq_train);
    s.test = labels(s.enc.seq_test);
    std::vector<ProbeRow> rows = run_probe(s.train, s.test, {s.enc}, quick_options());
    for (const char* p : {"seq linear", "seq MLP"}) {
      CAPTURE(p);
      CHECK(row(rows, p).metrics.at("accuracy").mean > 0.9);
      CHECK(row(rows, p).metrics.at("macro_f1").mean > 0.9);
    }
    CHECK(row(rows, "label-frequency").metrics.at("accuracy").mean < 0.6);
    CHECK(probe_markdown_table(rows, true).find("macro-F1") != std::string::npos);
  }

  TEST_CASE("probe: on a task that needs both modalities - early and late fusion beat either unimodal predictor") {
    // Terms 0-2 depend on the sequence features, terms 3-5 on the text features.
    Synthetic s = make_task(21, 600, 300, 8, {true, true, true, false, false, false});
    std::vector<ProbeRow> rows = run_probe(s.train, s.test, {s.enc}, quick_options());
    const double uni_f = std::max(fmax_of(rows, "seq MLP"), fmax_of(rows, "text MLP"));
    const double uni_a = std::max(aupr_of(rows, "seq MLP"), aupr_of(rows, "text MLP"));
    for (const char* p : {"early fusion MLP", "late fusion average", "late fusion stacking"}) {
      CAPTURE(p);
      CHECK(fmax_of(rows, p) > uni_f + 0.05);
      CHECK(aupr_of(rows, p) > uni_a + 0.1);
    }
    CHECK(aupr_of(rows, "late fusion stacking") > 0.9);
  }

  TEST_CASE("probe: an interaction (XOR) of the two modalities is learned by early fusion only") {
    Generator gen(31);
    const int64_t d = 4;
    Synthetic s;
    s.enc.name = "synthetic";
    s.enc.seq_train = gaussian(800, d, gen);
    s.enc.seq_test = gaussian(400, d, gen);
    s.enc.text_train = gaussian(800, d, gen);
    s.enc.text_test = gaussian(400, d, gen);
    // One term: on when the first sequence feature and the first text feature differ in sign.
    auto labels = [](const FeatureMatrix& a, const FeatureMatrix& b) {
      ProbeLabels l;
      l.n = a.rows;
      l.k = 1;
      for (int64_t i = 0; i < l.n; ++i) l.y.push_back((a.v[size_t(i * a.cols)] > 0) != (b.v[size_t(i * b.cols)] > 0));
      return l;
    };
    s.train = labels(s.enc.seq_train, s.enc.text_train);
    s.test = labels(s.enc.seq_test, s.enc.text_test);
    std::vector<ProbeRow> rows = run_probe(s.train, s.test, {s.enc}, quick_options());
    // Half the proteins are positive: chance AUPR is about 0.5.
    CHECK(aupr_of(rows, "early fusion MLP") > 0.9);
    CHECK(aupr_of(rows, "seq MLP") < 0.65);
    CHECK(aupr_of(rows, "text MLP") < 0.65);
    CHECK(aupr_of(rows, "early fusion MLP") >
          std::max(aupr_of(rows, "late fusion average"), aupr_of(rows, "late fusion stacking")) + 0.2);
  }

  TEST_CASE("probe: predictors are deterministic per seed and differ across seeds - mean and std over seeds") {
    Synthetic s = make_task(41, 200, 100, 6, {true, false});
    PredictorOptions o;
    o.hidden = 16;
    o.epochs = 5;
    o.seed = 3;
    std::vector<double> a = fit_predict(s.enc.seq_train, s.train, s.enc.seq_test, o);
    std::vector<double> b = fit_predict(s.enc.seq_train, s.train, s.enc.seq_test, o);
    CHECK(a == b);
    o.seed = 4;
    std::vector<double> c = fit_predict(s.enc.seq_train, s.train, s.enc.seq_test, o);
    CHECK(a != c);
    ProbeRunOptions ro = quick_options();
    ro.seeds = {0, 1, 2};
    ro.predictor.epochs = 3;
    EncoderFeatures seq_only = s.enc;
    seq_only.text_train = FeatureMatrix{};
    seq_only.text_test = FeatureMatrix{};
    int64_t fits = 0, total = 0;
    ro.progress = [&](int64_t done, int64_t t, const std::string&) {
      fits = done;
      total = t;
    };
    std::vector<ProbeRow> rows = run_probe(s.train, s.test, {seq_only}, ro);
    CHECK(total == probe_fit_count({seq_only}, ro));
    CHECK(fits == total);
    CHECK(total == 6);
    const ProbeMetric& m = row(rows, "seq MLP").metrics.at("fmax");
    REQUIRE(m.values.size() == 3);
    double mean = (m.values[0] + m.values[1] + m.values[2]) / 3;
    CHECK(m.mean == doctest::Approx(mean));
    double var = 0;
    for (double v : m.values) var += (v - mean) * (v - mean);
    CHECK(m.std == doctest::Approx(std::sqrt(var / 2)));
    CHECK(row(rows, "label-frequency").metrics.at("fmax").std == 0.0);
  }

  TEST_CASE("probe: terms without positives in test are reported - never divided by zero") {
    ProbeLabels test;
    test.n = 2;
    test.k = 3;
    test.y = {1, 0, 0, 0, 1, 0};  // term 2 has no positive
    ProbeEval e = evaluate_scores({0.9, 0.1, 0.5, 0.2, 0.8, 0.4}, test);
    CHECK(e.terms_without_positives == 1);
    CHECK(std::isfinite(e.values.at("fmax")));
    CHECK(std::isfinite(e.values.at("aupr")));
  }
}

TEST_SUITE("data") {
  TEST_CASE("probe: GO tasks keep terms with enough training proteins - the CC text holds MF and BP names only") {
    GoAnnotations go;
    go.names = {{"GO:1", "kinase activity"}, {"GO:2", "signal transduction"}, {"GO:3", "nucleus"},
                {"GO:4", "cytoplasm"}, {"GO:5", "membrane"}};
    go.terms["A"] = {{{"GO:1"}, {"GO:2"}, {"GO:3", "GO:4"}}};
    go.terms["B"] = {{{"GO:1"}, {}, {"GO:3"}}};
    go.terms["C"] = {{{}, {}, {"GO:3", "GO:5"}}};  // no MF/BP: no text for the multimodal task
    go.terms["D"] = {{{}, {"GO:2"}, {"GO:4"}}};
    go.terms["T1"] = {{{"GO:1"}, {}, {"GO:4"}}};
    go.terms["T2"] = {{{}, {"GO:2"}, {"GO:5"}}};
    go.terms["T3"] = {{{"GO:1"}, {}, {}}};  // no CC: not in the CC tasks
    std::vector<ProteinRecord> train = {{"A", "MKV", "", 0}, {"B", "MKL", "", 0}, {"C", "MAA", "", 0}, {"D", "MCC", "", 0}};
    std::vector<ProteinRecord> test = {{"T1", "MKK", "", 0}, {"T2", "MLL", "", 0}, {"T3", "MVV", "", 0}};
    ProbeTask cc = build_go_task("go-cc", train, test, go, 2);
    CHECK(cc.terms == std::vector<std::string>{"GO:3", "GO:4"});  // GO:5 has one training protein
    CHECK(cc.train.size() == 4);
    CHECK(cc.test.size() == 2);
    CHECK(cc.dropped_test == 1);
    CHECK(cc.test.labels == std::vector<uint8_t>{0, 1, 0, 0});  // T2's GO:5 is not a kept term
    CHECK(cc.test_terms_without_positives == 1);
    CHECK(cc.train.texts.empty());

    ProbeTask mm = build_go_task("go-cc-multimodal", train, test, go, 2);
    CHECK(mm.multimodal);
    CHECK(mm.train.ids == std::vector<std::string>{"A", "B", "D"});
    CHECK(mm.dropped_train == 1);
    CHECK(mm.train.texts[0] == "Molecular function: kinase activity. Biological process: signal transduction.");
    for (const auto& side : {mm.train, mm.test})
      for (const auto& t : side.texts)
        for (const char* cc_name : {"nucleus", "cytoplasm", "membrane", "Cellular component"})
          CHECK(t.find(cc_name) == std::string::npos);

    ProbeTask mf = build_go_task("go-mf", train, test, go, 1);
    CHECK(mf.terms == std::vector<std::string>{"GO:1"});
    CHECK(mf.test.ids == std::vector<std::string>{"T1", "T3"});
    CHECK_THROWS_WITH_AS(build_go_task("go-xx", train, test, go, 1), doctest::Contains("unknown GO task"), Error);
    CHECK_THROWS_WITH_AS(build_go_task("go-cc", train, test, go, 9), doctest::Contains("--min-train-proteins"), Error);
  }

  TEST_CASE("probe: user tasks from a TSV of labels - single- and multi-label - errors name file and line") {
    TempDir tmp("probe_files");
    std::vector<ProteinRecord> recs = {{"p1", "MKV", "", 0}, {"p2", "MKL", "", 0}, {"p3", "MAA", "", 0},
                                       {"p4", "MCC", "", 0}, {"p5", "MDD", "", 0}};
    write(tmp.dir.string() + "/single.tsv", "id\tsplit\tlabels\np1\ttrain\tenzyme\np2\ttrain\treceptor\np3\ttrain\tenzyme\n"
                                   "p4\ttest\treceptor\np5\ttest\ttoxin\n");
    ProbeTask s = build_file_task(recs, tmp.dir.string() + "/single.tsv", false, 1);
    CHECK_FALSE(s.multi_label);
    CHECK(s.terms == std::vector<std::string>{"enzyme", "receptor"});
    CHECK(s.train.classes == std::vector<int64_t>{0, 1, 0});
    CHECK(s.test.ids == std::vector<std::string>{"p4"});  // toxin never occurs in train
    CHECK(s.dropped_test == 1);
    write(tmp.dir.string() + "/multi.tsv", "p1\ttrain\ta;b\np2\ttrain\tb\np3\ttrain\ta\np4\ttest\tb;c\n");
    ProbeTask m = build_file_task(recs, tmp.dir.string() + "/multi.tsv", false, 2);
    CHECK(m.multi_label);
    CHECK(m.terms == std::vector<std::string>{"a", "b"});
    CHECK(m.test.labels == std::vector<uint8_t>{0, 1});
    write(tmp.dir.string() + "/bad.tsv", "p1\ttrain\ta\np9\ttest\ta\n");
    CHECK_THROWS_WITH_AS(build_file_task(recs, tmp.dir.string() + "/bad.tsv", false, 1), doctest::Contains("bad.tsv:2"), Error);
    write(tmp.dir.string() + "/bad2.tsv", "p1\tvalid\ta\n");
    CHECK_THROWS_WITH_AS(build_file_task(recs, tmp.dir.string() + "/bad2.tsv", false, 1), doctest::Contains("bad2.tsv:1"), Error);
  }

  TEST_CASE("probe: user task rows with split auto go where the cluster assignment says - errors without one") {
    TempDir tmp("probe_auto");
    std::vector<ProteinRecord> recs = {{"p1", "MKV", "", 0}, {"p2", "MKL", "", 0}, {"p3", "MAA", "", 0},
                                       {"p4", "MCC", "", 0}, {"p5", "MDD", "", 0}};
    const std::string tsv = tmp.dir.string() + "/auto.tsv";
    write(tsv, "id\tsplit\tlabels\np1\tauto\ta\np2\tauto\tb\np3\ttrain\ta\np4\tauto\tb\np5\ttest\ta\n");
    CHECK(labels_auto_split_ids(tsv) == std::vector<std::string>{"p1", "p2", "p4"});
    std::unordered_map<std::string, bool> to_test = {{"p1", false}, {"p2", false}, {"p4", true}};
    ProbeTask t = build_file_task(recs, tsv, false, 1, &to_test);
    CHECK(t.train.ids == std::vector<std::string>{"p1", "p2", "p3"});
    CHECK(t.test.ids == std::vector<std::string>{"p4", "p5"});
    CHECK_THROWS_WITH_AS(build_file_task(recs, tsv, false, 1), doctest::Contains("auto.tsv:2"), Error);
    to_test.erase("p4");
    CHECK_THROWS_WITH_AS(build_file_task(recs, tsv, false, 1, &to_test), doctest::Contains("auto.tsv:5"), Error);
    write(tmp.dir.string() + "/given.tsv", "p1\ttrain\ta\np2\ttest\ta\n");
    CHECK(labels_auto_split_ids(tmp.dir.string() + "/given.tsv").empty());
  }

  TEST_CASE("probe: the cluster check finds a test protein sharing a training cluster") {
    std::unordered_map<std::string, std::string> rep = {{"a", "a"}, {"b", "a"}, {"c", "c"}, {"d", "d"}};
    ClusterCheck ok = check_cluster_disjoint({"a", "c"}, {"d"}, rep);
    CHECK(ok.test_sharing_cluster == 0);
    ClusterCheck leak = check_cluster_disjoint({"a", "c"}, {"b", "d", "zz"}, rep);
    CHECK(leak.test_sharing_cluster == 1);
    CHECK(leak.missing == 1);
    REQUIRE(leak.examples.size() == 1);
    CHECK(leak.examples[0] == "b ~ a (cluster a)");
  }

  TEST_CASE("probe: no test protein of the quick-start split shares a cluster with a training protein") {
    const std::string root = std::string(PE_SOURCE_DIR) + "/datasets/go";
    const std::string pairs = root + "/pairs_maxlen512_sub20000x1000_held50";
    const std::string clusters = root + "/cluster-id0.5-c0.8/clu_cluster.tsv";
    if (!std::filesystem::exists(pairs + "/train.jsonl") || !std::filesystem::exists(clusters)) {
      MESSAGE("[skipped] quick-start GO dataset not built (protst dataset --max-len 512 --subset-train 20000 --subset-test 1000)");
      return;
    }
    std::vector<std::string> tr, te;
    for (const auto& r : read_jsonl(pairs + "/train.jsonl")) tr.push_back(r.id);
    for (const auto& r : read_jsonl(pairs + "/test.jsonl")) te.push_back(r.id);
    ClusterCheck c = check_cluster_disjoint(tr, te, read_clusters(clusters));
    CHECK(c.train == 20000);
    CHECK(c.test == 1000);
    CHECK(c.missing == 0);
    CHECK(c.test_sharing_cluster == 0);
  }
}
