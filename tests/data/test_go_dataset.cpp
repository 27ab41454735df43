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
#include "data/uniprot.h"

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

// ---- planted homologs for the split filter

// Deterministic random residues (xorshift64*).
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ULL;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};
const std::string kAmino = "ACDEFGHIKLMNPQRSTVWY";

// Copy of `base` with round((1 - identity) * len) positions substituted by another residue.
std::string mutate(const std::string& base, double identity, Rng& rng) {
  std::string s = base;
  std::vector<std::size_t> pos(base.size());
  for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = i;
  for (std::size_t i = pos.size(); i > 1; --i) std::swap(pos[i - 1], pos[rng.below(i)]);
  const auto k = static_cast<std::size_t>(std::lround((1.0 - identity) * static_cast<double>(base.size())));
  for (std::size_t i = 0; i < k; ++i) {
    char c;
    do c = kAmino[rng.below(20)];
    while (c == base[pos[i]]);
    s[pos[i]] = c;
  }
  return s;
}

// Positional identity of two equal-length sequences (substitutions only: the true identity).
double positional_identity(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return 0;
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

// 60 families of a random 200-residue base and copies at 95, 70, 55 and 35 % identity, plus 100
// unrelated sequences; ids "F<i>_<pct>".
std::vector<ProteinRecord> planted_families() {
  Rng rng{0x9e3779b97f4a7c15ULL};
  std::vector<ProteinRecord> out;
  for (int f = 0; f < 60; ++f) {
    std::string base(200, 'A');
    for (auto& c : base) c = kAmino[rng.below(20)];
    out.push_back({"F" + std::to_string(f) + "_100", base, "t", 0});
    for (int pct : {95, 70, 55, 35})
      out.push_back({"F" + std::to_string(f) + "_" + std::to_string(pct), mutate(base, pct / 100.0, rng), "t", 0});
  }
  for (int u = 0; u < 100; ++u) {
    std::string s(150 + rng.below(100), 'A');
    for (auto& c : s) c = kAmino[rng.below(20)];
    out.push_back({"U" + std::to_string(u), s, "t", 0});
  }
  return out;
}

// Test-train pairs of the same family whose true identity is >= `identity`.
std::size_t planted_leaks(const std::vector<ProteinRecord>& train, const std::vector<ProteinRecord>& test,
                          double identity) {
  std::size_t n = 0;
  for (const auto& q : test)
    for (const auto& t : train)
      if (q.id[0] == 'F' && q.id.substr(0, q.id.find('_')) == t.id.substr(0, t.id.find('_')) &&
          positional_identity(q.seq, t.seq) >= identity)
        ++n;
  return n;
}

// The issue's independent check: `mmseqs easy-search test train --min-seq-id ID -c 0.8 --cov-mode M`;
// returns the number of hits.
std::size_t independent_hits(const Mmseqs& mm, const std::vector<ProteinRecord>& train,
                             const std::vector<ProteinRecord>& test, const fs::path& dir, double identity,
                             int cov_mode) {
  fs::create_directories(dir);
  for (const auto& [name, side] : {std::pair{"test.fasta", &test}, std::pair{"train.fasta", &train}}) {
    std::ofstream f(dir / name);
    for (const auto& r : *side) f << '>' << r.id << '\n' << r.seq << '\n';
  }
  run_mmseqs(mm,
             {"easy-search", "test.fasta", "train.fasta", "hits.m8", "tmp", "--min-seq-id", std::to_string(identity),
              "-c", "0.8", "--cov-mode", std::to_string(cov_mode)},
             dir.string());
  std::ifstream in(dir / "hits.m8");
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// The package's mmseqs from the dataset cache (PE_GO_DATASET_CACHE, else <source>/datasets/go, the
// default cache), downloading only mmseqs2 and libgzstream0 (~24 MB) when missing.
bool get_mmseqs(Mmseqs& mm) {
  const char* env = std::getenv("PE_GO_DATASET_CACHE");
  const char* src = std::getenv("PE_SOURCE_DIR");
  const std::string cache = env && *env ? env : (fs::path(src ? src : PE_SOURCE_DIR) / "datasets/go").string();
  try {
    mm = prepare_mmseqs(cache);
  } catch (const pe::Error& e) {
    MESSAGE("[skipped] the Debian mmseqs2 package is not available: " << e.what());
    return false;
  }
  mm.threads = 2;
  return true;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("go_dataset: identity buckets and leak rule") {
  IdentityDistribution d;
  TrainHit same{"T", 1.0, 1.0, 1.0, true}, h95{"T", 0.95, 1, 1, false}, h50{"T", 0.5, 1, 1, false},
      h49{"T", 0.499, 1, 1, false}, h29{"T", 0.29, 1, 1, false};
  for (const TrainHit* h : std::vector<const TrainHit*>{&same, &h95, &h50, &h49, &h29, nullptr}) d.add(h);
  CHECK(d.proteins == 6);
  CHECK(d.buckets == std::vector<std::size_t>{1, 1, 0, 1, 1, 0, 1, 1});
  CHECK(d.histogram[49] == 1);
  CHECK(d.histogram[47] == 1);
  CHECK(d.histogram[25] == 1);
  CHECK(d.histogram[24] == 1);
  CHECK(is_leaky(same, 0.99));
  CHECK(is_leaky(h50, 0.5));
  CHECK(!is_leaky(h49, 0.5));
  CHECK(is_leaky(h49, kStrictSplitIdentity));
  CHECK(!is_leaky(h29, kStrictSplitIdentity));
  const auto j = nlohmann::json::parse(identity_distribution_json(d));
  CHECK(j.at("buckets").at("no hit") == 1);
  CHECK(j.at("histogram_2pct").size() == 50);
}

TEST_CASE("go_dataset: the homology filter removes planted cross-cluster homologs (real mmseqs)") {
  Mmseqs mm;
  if (!get_mmseqs(mm)) return;
  TempDir t("godata_mm");
  mm.log = (t.dir / "mmseqs.log").string();

  SUBCASE("planted families: linclust leaks, the filtered split does not") {
    const std::vector<ProteinRecord> all = planted_families();
    const auto member_to_rep = linclust(mm, all, (t.dir / "clu").string(), 0.5, 0.8);
    REQUIRE(member_to_rep.size() == all.size());
    std::vector<ProteinRecord> train, test;
    split_by_cluster(std::vector<ProteinRecord>(all), member_to_rep, 0.3, train, test);
    REQUIRE(!test.empty());
    std::set<std::string> test_reps;
    for (const auto& r : test) test_reps.insert(member_to_rep.at(r.id));
    for (const auto& r : train) CHECK(test_reps.count(member_to_rep.at(r.id)) == 0);

    // The cluster split alone: planted homologs at >= 55 % straddle it (so this test can fail).
    const std::size_t leaks_before = planted_leaks(train, test, 0.55);
    MESSAGE("linclust split: " << train.size() << " train, " << test.size() << " test, " << leaks_before
                               << " planted pairs >= 55 % across the split");
    CHECK(leaks_before > 0);
    CHECK(independent_hits(mm, train, test, t.dir / "before", 0.5, 1) > 0);

    const auto hits = best_train_hits(mm, train, test, (t.dir / "search").string(), {0.8, 7.5});
    // Every planted cross-split pair at >= 55 % was found.
    for (const auto& q : test)
      for (const auto& r : train)
        if (q.id.substr(0, q.id.find('_')) == r.id.substr(0, r.id.find('_')) && q.id[0] == 'F' &&
            positional_identity(q.seq, r.seq) >= 0.55) {
          INFO(q.id << " vs " << r.id);
          REQUIRE(hits.count(q.id));
          CHECK(hits.at(q.id).identity >= 0.5);
        }

    for (double threshold : {0.5, kStrictSplitIdentity}) {
      INFO("threshold " << threshold);
      std::vector<ProteinRecord> kept = test;
      std::size_t identical = 0, homolog = 0;
      drop_leaky(kept, hits, threshold, identical, homolog);
      CHECK(homolog > 0);
      CHECK(kept.size() + identical + homolog == test.size());
      CHECK(planted_leaks(train, kept, threshold + 0.05) == 0);
      CHECK(independent_hits(mm, train, kept, t.dir / ("after" + std::to_string(threshold)), threshold, 1) == 0);
      CHECK(independent_hits(mm, train, kept, t.dir / ("after_q" + std::to_string(threshold)), threshold, 2) == 0);
    }
    // check_split (protst dataset --check-split) reports the leaks of the unfiltered split.
    const SplitCheckReport rep = check_split(mm, train, test, (t.dir / "check").string(), 0.5, {0.8, 7.5});
    CHECK(rep.leaky.size() > 0);
    CHECK(rep.distribution.proteins == test.size());
  }

  SUBCASE("an identical sequence is leaky whatever the search says") {
    std::vector<ProteinRecord> train = {{"A", "MKVLAAGIVALLLAAGCSSSKEETAPAQ", "t", 0}};
    std::vector<ProteinRecord> test = {{"B", "MKVLAAGIVALLLAAGCSSSKEETAPAQ", "t", 0}, {"C", "WWWWHHHHPPPP", "t", 0}};
    const auto hits = best_train_hits(mm, train, test, (t.dir / "dup").string(), {0.8, 7.5});
    REQUIRE(hits.count("B"));
    CHECK(hits.at("B").identical);
    CHECK(hits.at("B").target == "A");
    CHECK(hits.count("C") == 0);
    const SplitCheckReport rep = check_split(mm, train, test, (t.dir / "dup2").string(), 0.9, {0.8, 7.5});
    REQUIRE(rep.leaky.size() == 1);
    CHECK(rep.leaky[0].first.id == "B");
    CHECK(rep.distribution.buckets[0] == 1);
    CHECK(rep.distribution.no_hit == 1);
  }

  SUBCASE("the committed Swiss-Prot sample goes through the same path") {
    const std::vector<ProteinRecord> all =
        read_uniprot((fs::path(PE_SOURCE_DIR) / "data/samples/SWISS100.dat").string());
    REQUIRE(all.size() == 100);
    const auto member_to_rep = linclust(mm, all, (t.dir / "swclu").string(), 0.5, 0.8);
    std::vector<ProteinRecord> train, test;
    split_by_cluster(std::vector<ProteinRecord>(all), member_to_rep, 0.3, train, test);
    REQUIRE(!test.empty());
    const auto hits = best_train_hits(mm, train, test, (t.dir / "swsearch").string(), {0.8, 7.5});
    std::size_t identical = 0, homolog = 0;
    drop_leaky(test, hits, 0.5, identical, homolog);
    MESSAGE("SWISS100: " << train.size() << " train, " << test.size() << " test after removing " << identical
                         << " identical and " << homolog << " homologs");
    CHECK(independent_hits(mm, train, test, t.dir / "swcheck", 0.5, 1) == 0);
    CHECK(independent_hits(mm, train, test, t.dir / "swcheck_q", 0.5, 2) == 0);
  }
}


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
  CHECK(go_dataset_default_name(o) == "pairs_held50");
  o.max_seq_len = 1024;
  o.subset_train = 2000;
  o.subset_test = 200;
  CHECK(go_dataset_default_name(o) == "pairs_maxlen1024_sub2000x200_held50");
  o.test_fraction = 0.1;
  o.subset_test = 0;
  CHECK(go_dataset_default_name(o) == "pairs_maxlen1024_sub2000xall_test0.1_held50");
  // The filter parameters are part of the name: an unfiltered (or older) folder is never reused.
  GoDatasetOptions f;
  f.split_identity = kStrictSplitIdentity;
  CHECK(go_dataset_default_name(f) == "pairs_held30");
  f.split_coverage = 0.5;
  f.split_sensitivity = kStrictSplitSensitivity;
  CHECK(go_dataset_default_name(f) == "pairs_held30c0.5s7.5");
  f = {};
  f.split_identity = 0;
  CHECK(go_dataset_default_name(f) == "pairs_unfiltered");
  CHECK(go_dataset_options_json(f) != go_dataset_options_json(GoDatasetOptions{}));
  f.split_identity = 1.5;
  CHECK_THROWS_WITH_AS(build_go_dataset(f), doctest::Contains("split_identity 1.5 must be in [0, 1]"), pe::Error);

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

  // The homology filter: recorded, and no written test protein at or above the threshold.
  const auto& f = m.at("split_filter");
  CHECK(f.at("enabled") == true);
  CHECK(f.at("removed_homolog").get<std::size_t>() > 0);
  CHECK(f.at("test_after_filter").get<std::size_t>() + f.at("removed_homolog").get<std::size_t>() +
            f.at("removed_identical").get<std::size_t>() ==
        f.at("test_candidates").get<std::size_t>());
  std::ifstream ti(fs::path(res.out_dir) / "test_identity.tsv");
  std::string line;
  std::getline(ti, line);  // header
  std::size_t rows = 0;
  while (std::getline(ti, line)) {
    ++rows;
    const auto parts = line.substr(line.find('\t') + 1);
    const std::string ident = parts.substr(parts.find('\t') + 1, parts.find('\t', parts.find('\t') + 1) - parts.find('\t') - 1);
    if (ident != "-") CHECK(std::stod(ident) < opt.split_identity);
  }
  CHECK(rows == res.test_pairs);
}

}  // TEST_SUITE
