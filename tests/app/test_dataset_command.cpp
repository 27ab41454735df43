// `protst dataset` reporting: the filter summary, the identity histogram PNG and the split line that
// eval prints, from a hand-written manifest (no mmseqs needed).
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/dataset_command.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

nlohmann::json distribution(std::size_t high) {
  std::vector<std::size_t> hist(50, 0);
  hist[10] = 5;
  hist[30] = high;
  nlohmann::json b = {{"identical", 0}, {">=90%", 0}, {"70-90%", 0}, {"50-70%", high}, {"40-50%", 0},
                      {"30-40%", 0},    {"<30%", 5},  {"no hit", 7}};
  return {{"proteins", 12 + high}, {"no_hit", 7}, {"buckets", b}, {"histogram_2pct", hist}};
}

}  // namespace

TEST_SUITE("app") {
TEST_CASE("dataset report: filter summary - identity histogram - split line of eval") {
  TempDir t("dsreport");
  const std::string test = t.file("test.jsonl", "");
  // No manifest: eval says the homology is unknown and how to check it.
  CHECK(describe_split(test).find("--check-split") != std::string::npos);

  nlohmann::json m = {{"options", {}}};
  std::ofstream(t.path("manifest.json")) << m.dump();
  CHECK(describe_split(test).find("built before the homology filter") != std::string::npos);
  CHECK(split_filter_summary(t.path("manifest.json")).empty());
  CHECK(write_split_histogram(t.path("manifest.json")).empty());

  m["split_filter"] = {{"enabled", true},
                       {"identity", 0.5},
                       {"coverage", 0.8},
                       {"sensitivity", 7.5},
                       {"test_candidates", 20},
                       {"removed_identical", 1},
                       {"removed_homolog", 7},
                       {"test_after_filter", 12},
                       {"distribution_candidates", distribution(8)},
                       {"distribution_test_file", distribution(0)}};
  std::ofstream(t.path("manifest.json")) << m.dump();
  const std::string line = describe_split(test);
  CHECK(line.find("held out below 50 % identity") != std::string::npos);
  CHECK(line.find("8 leaky test candidates removed") != std::string::npos);
  const std::string s = split_filter_summary(t.path("manifest.json"));
  CHECK(s.find("removed 8 of 20 test candidates (1 identical, 7 homologs)") != std::string::npos);
  CHECK(s.find("50-70% 8") != std::string::npos);
  const std::string png = write_split_histogram(t.path("manifest.json"));
  CHECK(png == t.path("split_identity.png"));
  CHECK(std::filesystem::file_size(png) > 1000);

  m["split_filter"] = {{"enabled", false}};
  std::ofstream(t.path("manifest.json")) << m.dump();
  CHECK(describe_split(test).find("without homology filter") != std::string::npos);
}
}
