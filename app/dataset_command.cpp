#include "app/dataset_command.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/dataset.h"
#include "app/plot.h"
#include "data/text_io.h"
#include "models/checkpoint.h"

namespace pe {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g %%", v * 100);
  return b;
}

json read_manifest(const std::string& path) {
  std::ifstream f(path);
  PE_CHECK(f.good(), path, ": cannot open");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    PE_FAIL(path, ": not JSON: ", e.what());
  }
}

std::string buckets_line(const json& dist) {
  std::string s;
  for (const auto& name : IdentityDistribution::bucket_names()) {
    if (!s.empty()) s += ", ";
    s += name + " " + std::to_string(dist.at("buckets").at(name).get<std::size_t>());
  }
  return s;
}

// A histogram as a step line: counts per 2 % bin against identity in %.
PlotSeries steps(const std::string& name, const json& hist) {
  PlotSeries s;
  s.name = name;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    const double c = hist[i].get<double>();
    s.x.insert(s.x.end(), {2.0 * double(i), 2.0 * double(i + 1)});
    s.y.insert(s.y.end(), {c, c});
  }
  return s;
}

}  // namespace

std::string split_filter_summary(const std::string& manifest_path) {
  const json m = read_manifest(manifest_path);
  if (!m.contains("split_filter")) return "";
  const json& f = m.at("split_filter");
  if (!f.value("enabled", false)) return "split: cluster split only, no homology filter (test proteins may have close training homologs)\n";
  const std::size_t cand = f.at("test_candidates"), ident = f.at("removed_identical"), hom = f.at("removed_homolog");
  std::string s = "split filter: a test protein is dropped when a training protein reaches " +
                  pct(f.at("identity").get<double>()) + " identity over " + pct(f.at("coverage").get<double>()) +
                  " of either protein (mmseqs easy-search -s " + json(f.at("sensitivity")).dump() +
                  ", survivors again at -e 10) or has the same sequence\n";
  s += "  removed " + std::to_string(ident + hom) + " of " + std::to_string(cand) + " test candidates (" +
       std::to_string(ident) + " identical, " + std::to_string(hom) + " homologs); " +
       std::to_string(f.at("test_after_filter").get<std::size_t>()) + " remain before length filter and subset\n";
  s += "  highest identity to train, candidates: " + buckets_line(f.at("distribution_candidates")) + "\n";
  s += "  highest identity to train, test file:  " + buckets_line(f.at("distribution_test_file")) + "\n";
  return s;
}

std::string write_split_histogram(const std::string& manifest_path) {
  const json m = read_manifest(manifest_path);
  if (!m.contains("split_filter") || !m.at("split_filter").value("enabled", false)) return "";
  const json& f = m.at("split_filter");
  const double thr = f.at("identity").get<double>() * 100;
  PlotPanel lin, lg;
  lin.title = "count per 2 % bin; x = identity %";
  lg.title = "log count; x = identity %";
  lg.log_y = true;
  for (PlotPanel* p : {&lin, &lg}) {
    p->series.push_back(steps("cluster split", f.at("distribution_candidates").at("histogram_2pct")));
    p->series.push_back(steps("test file", f.at("distribution_test_file").at("histogram_2pct")));
    double top = 1;
    for (double y : p->series[0].y) top = std::max(top, y);
    p->series.push_back({"threshold " + pct(thr / 100), {thr, thr}, {p->log_y ? 1.0 : 0.0, top}});
  }
  const std::string png = (fs::path(manifest_path).parent_path() / "split_identity.png").string();
  write_plot_png(png, {lin, lg},
                 "Test proteins by highest identity to train (no hit: " +
                     std::to_string(f.at("distribution_candidates").at("no_hit").get<std::size_t>()) + ")");
  return png;
}

std::string describe_split(const std::string& test_path) {
  const std::string manifest = (fs::path(test_path).parent_path() / "manifest.json").string();
  if (!file_exists(manifest))
    return "split: no manifest.json beside " + test_path +
           ": homology to training unknown (check with `protst dataset --check-split TRAIN TEST`)";
  json m;
  try {
    m = read_manifest(manifest);
  } catch (const Error&) {
    return "split: " + manifest + " is unreadable";
  }
  const std::string dir = fs::path(test_path).parent_path().string();
  if (!m.contains("split_filter"))
    return "split: " + dir + ": cluster split built before the homology filter (test proteins may have close training homologs)";
  const json& f = m.at("split_filter");
  if (!f.value("enabled", false))
    return "split: " + dir + ": cluster split without homology filter (test proteins may have close training homologs)";
  return "split: " + dir + ": held out below " + pct(f.at("identity").get<double>()) + " identity to training over " +
         pct(f.at("coverage").get<double>()) + " of either protein (mmseqs -s " + json(f.at("sensitivity")).dump() +
         "; " + std::to_string(f.at("removed_identical").get<std::size_t>() + f.at("removed_homolog").get<std::size_t>()) +
         " leaky test candidates removed)";
}

void run_dataset(DatasetCommandOptions o) {
  if (o.strict) {
    o.go.split_identity = kStrictSplitIdentity;
    o.go.split_sensitivity = kStrictSplitSensitivity;
  }
  if (!o.check_train.empty() || !o.check_test.empty()) {
    PE_CHECK(!o.check_train.empty() && !o.check_test.empty(), "--check-split needs TRAIN and TEST files");
    ReadStats st_train, st_test;
    const auto train = read_pairs(o.check_train, o.descriptions, st_train);
    const auto test = read_pairs(o.check_test, o.descriptions, st_test);
    const double thr = o.go.split_identity > 0 ? o.go.split_identity : GoDatasetOptions{}.split_identity;
    Mmseqs mm = prepare_mmseqs(o.go.cache_dir, o.go.progress);
    mm.threads = o.go.threads;
    const std::string work = (fs::absolute(o.go.cache_dir) / "check-split").string();
    // -e 10: the identity and coverage decide, not an e-value that depends on the training set's size.
    std::fprintf(stderr, "searching %zu test against %zu train sequences (mmseqs easy-search -s %g -e 10)\n", test.size(),
                 train.size(), o.go.split_sensitivity);
    const SplitCheckReport rep =
        check_split(mm, train, test, work, thr, {o.go.split_coverage, o.go.split_sensitivity, 10});
    fs::remove_all(work);
    std::printf("check-split: %s (%zu) vs %s (%zu): %zu test entries have a training protein at >= %s identity "
                "over >= %s of either protein, or the same sequence\n",
                o.check_test.c_str(), rep.test, o.check_train.c_str(), rep.train, rep.leaky.size(), pct(thr).c_str(),
                pct(o.go.split_coverage).c_str());
    std::printf("  highest identity to train: ");
    for (std::size_t i = 0; i < rep.distribution.buckets.size(); ++i)
      std::printf("%s%s %zu", i ? ", " : "", IdentityDistribution::bucket_names()[i].c_str(), rep.distribution.buckets[i]);
    std::printf("\n");
    std::string tsv = "test_id\ttest_line\tclosest_train\tidentity\ttest_coverage\ttrain_coverage\tidentical\n";
    for (const auto& [r, h] : rep.leaky) {
      char b[96];
      std::snprintf(b, sizeof b, "\t%.3f\t%.3f\t%.3f\t%d", h.identity, h.qcov, h.tcov, h.identical ? 1 : 0);
      tsv += r.id + "\t" + std::to_string(r.line) + "\t" + h.target + b + "\n";
    }
    const std::size_t show = std::min<std::size_t>(rep.leaky.size(), 20);
    for (std::size_t i = 0; i < show; ++i) {
      const auto& [r, h] = rep.leaky[i];
      std::printf("  leaky: %s:%zu %s -> %s (identity %.3f%s)\n", o.check_test.c_str(), r.line, r.id.c_str(),
                  h.target.c_str(), h.identity, h.identical ? ", same sequence" : "");
    }
    if (rep.leaky.size() > show) std::printf("  ... %zu more%s\n", rep.leaky.size() - show, o.report.empty() ? " (--report FILE lists all)" : "");
    if (!o.report.empty()) {
      write_text_atomic(o.report, tsv);
      std::printf("  all leaky entries: %s\n", o.report.c_str());
    }
    return;
  }
  GoDatasetResult r = build_go_dataset(o.go);
  std::printf("%s: %zu train, %zu test pairs%s\n  %s\n  %s\n", r.out_dir.c_str(), r.train_pairs, r.test_pairs,
              r.cached ? " (cached)" : "", r.train_path.c_str(), r.test_path.c_str());
  std::printf("%s", split_filter_summary(r.manifest_path).c_str());
  const std::string png = write_split_histogram(r.manifest_path);
  if (!png.empty()) std::printf("  table: %s/split_identity.tsv, histogram: %s\n", r.out_dir.c_str(), png.c_str());
}

}  // namespace pe
