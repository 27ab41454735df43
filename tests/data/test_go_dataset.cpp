// GO dataset: the cluster split and subsets on synthetic clusters (no network), the manifest
// cache, and — only when PE_GO_DATASET_CACHE names a cache folder — the real build from Debian
// packages (downloads ~310 MB on the first run).
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/go_dataset.h"
#include "data/jsonl.h"

namespace fs = std::filesystem;
using namespace pe;
using pe::testing::TempDir;

namespace {


// 3000 clusters "R<i>" with 1 to 6 members ("R<i>" itself and "R<i>_m<k>"), as mmseqs writes them.
struct Synthetic {
  std::string tsv;
  std::map<std::string, std::string> rep_of;
  std::vector<ProteinRecord> records;
};

Synthetic make_synthetic(const TempDir& t, std::size_t clusters = 3000) {
  Synthetic s;
  s.tsv = (t.dir / "clu_cluster.tsv").string();
  std::ofstream f(s.tsv);
  for (std::size_t i = 0; i < clusters; ++i) {
    const std::string rep = "R" + std::to_string(i);
    const std::size_t size = 1 + (i * 7) % 6;
    for (std::size_t k = 0; k < size; ++k) {
      const std::string m = k == 0 ? rep : rep + "_m" + std::to_string(k);
      f << rep << '\t' << m << '\n';
      s.rep_of[m] = rep;
      s.records.push_back({m, "MKV", "Molecular function: x.", 0});
    }
  }
  return s;
}

std::set<std::string> ids(const std::vector<ProteinRecord>& v) {
  std::set<std::string> s;
  for (const auto& r : v) s.insert(r.id);
  return s;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("go_dataset: stable hash is pinned (changing it would silently change the split)") {
  CHECK(stable_hash("P31946") == 0x7944db80e38157c1ULL);
  CHECK(stable_hash("") == 0xefd01f60ba992926ULL);
  CHECK(stable_hash("P31946", kSubsetSalt) == 0xec6826467ff3f62eULL);
}

TEST_CASE("go_dataset: whole clusters go to one side deterministically near the target fraction") {
  TempDir t("godata");
  Synthetic s = make_synthetic(t);
  const auto member_to_rep = read_clusters(s.tsv);
  REQUIRE(member_to_rep.size() == s.records.size());

  for (double frac : {0.05, 0.2}) {
    INFO("fraction " << frac);
    std::vector<ProteinRecord> train, test;
    split_by_cluster(std::vector<ProteinRecord>(s.records), member_to_rep, frac, train, test);
    CHECK(train.size() + test.size() == s.records.size());

    // Every cluster is entirely on one side.
    std::map<std::string, std::set<char>> sides;
    for (const auto& r : train) sides[s.rep_of[r.id]].insert('T');
    for (const auto& r : test) sides[s.rep_of[r.id]].insert('V');
    CHECK(sides.size() == 3000);
    std::size_t test_clusters = 0;
    for (const auto& [rep, side] : sides) {
      CHECK(side.size() == 1);
      test_clusters += side.count('V');
    }
    // 3000 clusters: the binomial standard deviation is 0.004 (5 %) and 0.007 (20 %).
    const double cluster_frac = static_cast<double>(test_clusters) / 3000.0;
    CHECK(cluster_frac > frac - 0.025);
    CHECK(cluster_frac < frac + 0.025);
    const double pair_frac = static_cast<double>(test.size()) / static_cast<double>(s.records.size());
    CHECK(pair_frac > frac - 0.04);
    CHECK(pair_frac < frac + 0.04);

    // Same split from a reversed input; output keeps the input order.
    std::vector<ProteinRecord> rev(s.records.rbegin(), s.records.rend()), train2, test2;
    split_by_cluster(std::move(rev), member_to_rep, frac, train2, test2);
    CHECK(ids(train2) == ids(train));
    CHECK(ids(test2) == ids(test));
    CHECK(test2.front().id == test.back().id);
  }
}

TEST_CASE("go_dataset: cluster table and split errors") {
  TempDir t("godata");
  const std::string bad = (t.dir / "bad.tsv").string();
  std::ofstream(bad) << "R1\tR1\nR1 R2\n";
  CHECK_THROWS_WITH_AS(read_clusters(bad), doctest::Contains((bad + ":2: expected representative<TAB>member").c_str()), pe::Error);
  const std::string dup = (t.dir / "dup.tsv").string();
  std::ofstream(dup) << "R1\tR1\nR2\tR2\nR2\tR1\n";
  CHECK_THROWS_WITH_AS(read_clusters(dup), doctest::Contains((dup + ":3: R1 is listed in two clusters").c_str()), pe::Error);

  std::vector<ProteinRecord> train, test;
  CHECK_THROWS_WITH_AS(split_by_cluster({{"X9", "MK", "t", 0}}, {{"R1", "R1"}}, 0.05, train, test),
                       doctest::Contains("X9 is in no cluster"), pe::Error);
}

TEST_CASE("go_dataset: subsets are deterministic and keep the input order") {
  TempDir t("godata");
  const Synthetic s = make_synthetic(t, 500);
  std::vector<ProteinRecord> a = s.records, b(s.records.rbegin(), s.records.rend());
  keep_subset(a, 100);
  keep_subset(b, 100);
  REQUIRE(a.size() == 100);
  CHECK(ids(a) == ids(b));
  // Input order kept: ids of `a` appear in the order of s.records.
  std::size_t pos = 0;
  for (const auto& r : a) {
    while (pos < s.records.size() && s.records[pos].id != r.id) ++pos;
    CHECK(pos < s.records.size());
  }
  // Representatives are not favoured or avoided: the subset hash is independent of the split hash.
  std::size_t reps = 0;
  for (const auto& r : a) reps += s.rep_of.at(r.id) == r.id;
  CHECK(reps > 10);
  std::vector<ProteinRecord> all = s.records;
  keep_subset(all, 0);
  CHECK(all.size() == s.records.size());
}

TEST_CASE("go_dataset: options and default names and the manifest cache") {
  GoDatasetOptions o;
  CHECK(go_dataset_default_name(o) == "pairs");
  o.max_seq_len = 1024;
  o.subset_train = 2000;
  o.subset_test = 200;
  CHECK(go_dataset_default_name(o) == "pairs_maxlen1024_sub2000x200");
  o.test_fraction = 0.1;
  o.subset_test = 0;
  CHECK(go_dataset_default_name(o) == "pairs_maxlen1024_sub2000xall_test0.1");

  GoDatasetOptions badf;
  badf.test_fraction = 1.5;
  CHECK_THROWS_WITH_AS(build_go_dataset(badf), doctest::Contains("test_fraction 1.5 must be in (0, 1)"), pe::Error);

  // A finished build with the same options is reused without any download or tool run (the
  // cache folder has no packages, so anything else would fail).
  TempDir t("godata");
  GoDatasetOptions opt;
  opt.cache_dir = t.dir.string();
  opt.progress = false;
  const fs::path out = t.dir / go_dataset_default_name(opt);
  fs::create_directories(out);
  write_jsonl((out / "train.jsonl").string(), {{"P1", "MK", "a", 0}, {"P2", "MK", "b", 0}});
  write_jsonl((out / "test.jsonl").string(), {{"P3", "MK", "c", 0}});
  const nlohmann::json manifest = {{"options", nlohmann::json::parse(go_dataset_options_json(opt))},
                                   {"counts", {{"train_pairs", 2}, {"test_pairs", 1}}}};
  std::ofstream((out / "manifest.json").string()) << manifest.dump(2);
  const auto res = build_go_dataset(opt);
  CHECK(res.cached);
  CHECK(res.train_pairs == 2);
  CHECK(res.test_pairs == 1);
  CHECK(res.train_path == (out / "train.jsonl").string());
}

TEST_CASE("go_dataset: a failing apt-get download says what to do") {
  // A stand-in apt-get that fails like apt does without package lists, first in PATH.
  TempDir t("godata");
  const fs::path bin = t.dir / "bin";
  fs::create_directories(bin);
  {
    std::ofstream f(bin / "apt-get");
    f << "#!/bin/sh\necho 'E: Unable to locate package metastudent-data' >&2\nexit 100\n";
  }
  fs::permissions(bin / "apt-get", fs::perms::owner_all);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  GoDatasetOptions opt;
  opt.cache_dir = (t.dir / "cache").string();
  opt.progress = false;
  std::string msg;
  try {
    build_go_dataset(opt);
  } catch (const pe::Error& e) {
    msg = e.what();
  }
  setenv("PATH", old_path.c_str(), 1);
  CHECK(msg.find("`apt-get download metastudent-data emboss-data mmseqs2 libgzstream0` failed (exit 100)") != std::string::npos);
  CHECK(msg.find("E: Unable to locate package metastudent-data") != std::string::npos);  // log tail
  CHECK(msg.find("Run `apt-get update`") != std::string::npos);
  CHECK(msg.find(opt.cache_dir + "/debs") != std::string::npos);
  CHECK(fs::is_empty(fs::path(opt.cache_dir) / "debs"));  // nothing half-downloaded left behind
}

TEST_CASE("go_dataset: real build from Debian packages (set PE_GO_DATASET_CACHE to run)") {
  const char* cache = std::getenv("PE_GO_DATASET_CACHE");
  if (!cache || !*cache) {
    MESSAGE("PE_GO_DATASET_CACHE not set; real GO dataset build skipped");
    return;
  }
  GoDatasetOptions opt;
  opt.cache_dir = cache;
  const auto t0 = std::chrono::steady_clock::now();
  const GoDatasetResult res = build_go_dataset(opt);
  const double first = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("full build: " << res.train_pairs << " train, " << res.test_pairs << " test pairs in "
                         << first << " s, cached: " << res.cached);

  std::ifstream mf(res.manifest_path);
  const auto m = nlohmann::json::parse(mf);
  const auto& c = m.at("counts");
  CHECK(c.at("proteins_union").get<std::size_t>() == 516371);  // DATA.md
  CHECK(c.at("dropped_bad_residue").get<std::size_t>() < 100);
  CHECK(res.train_pairs + res.test_pairs > 500000);
  const double test_frac = static_cast<double>(res.test_pairs) / static_cast<double>(res.train_pairs + res.test_pairs);
  CHECK(test_frac > 0.03);
  CHECK(test_frac < 0.07);
  CHECK(c.at("clusters").get<std::size_t>() > 100000);

  // No cluster on both sides: check against the cluster table.
  const auto member_to_rep =
      read_clusters((fs::path(cache) / "cluster-id0.5-c0.8" / "clu_cluster.tsv").string());
  std::set<std::string> test_reps;
  const auto test = read_jsonl(res.test_path);
  CHECK(test.size() == res.test_pairs);
  for (const auto& r : test) test_reps.insert(member_to_rep.at(r.id));
  JsonlReader train(res.train_path);
  ProteinRecord r;
  std::size_t n = 0, leaks = 0;
  while (train.next(r)) {
    ++n;
    leaks += test_reps.count(member_to_rep.at(r.id));
    if (n == 1) {
      const bool go_text_start = r.text.rfind("Molecular function: ", 0) == 0 ||
                                 r.text.rfind("Biological process: ", 0) == 0 ||
                                 r.text.rfind("Cellular component: ", 0) == 0;
      CHECK(go_text_start);
    }
  }
  CHECK(n == res.train_pairs);
  CHECK(leaks == 0);

  // A second call with the same options returns at once.
  const auto t1 = std::chrono::steady_clock::now();
  const GoDatasetResult again = build_go_dataset(opt);
  CHECK(again.cached);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() < 2.0);

  // The quick-start subset reuses packages and clusters.
  GoDatasetOptions small = opt;
  small.max_seq_len = 512;
  small.subset_train = 2000;
  small.subset_test = 200;
  const GoDatasetResult sub = build_go_dataset(small);
  CHECK(sub.train_pairs == 2000);
  CHECK(sub.test_pairs == 200);
  for (const auto& p : read_jsonl(sub.test_path)) CHECK(p.seq.size() <= 512);
}

}  // TEST_SUITE
