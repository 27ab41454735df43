// Every command line of the README's "Using it" block runs, as written, against tiny stand-ins of
// the files it names (tiny sizes appended where the line does not set them), in a fresh folder.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "data/go_dataset.h"
#include "data/jsonl.h"
#include "app/dataset.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string src(const std::string& rel) { return std::string(PE_SOURCE_DIR) + "/" + rel; }

int cli(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return protst_main(int(argv.size()), argv.data());
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line.substr(0, line.find('#')));
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// The `protst ...` lines of the README section `heading`'s first code block.
std::vector<std::string> readme_commands(const std::string& heading) {
  std::ifstream f(src("README.md"));
  std::vector<std::string> out;
  std::string line;
  bool section = false, block = false;
  while (std::getline(f, line)) {
    if (line.rfind("## ", 0) == 0) section = line == heading;
    else if (section && line.rfind("```", 0) == 0) {
      if (block) break;
      block = true;
    } else if (section && block && line.rfind("protst ", 0) == 0) out.push_back(line);
  }
  return out;
}

struct Cwd {
  fs::path old = fs::current_path();
  explicit Cwd(const fs::path& p) { fs::current_path(p); }
  ~Cwd() { fs::current_path(old); }
};

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("every command line the README shows runs (tiny sizes and tiny data)") {
    TempDir td("readme");
    Cwd cwd(td.dir);
    // ---- the files the README names
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(src("data/samples/SWISS100.dat"), "", st);
    REQUIRE(recs.size() == 100);
    // Held-out pairs apart from the training pairs (design --evaluate needs held-out texts as prompts).
    write_jsonl("pairs.jsonl", std::vector<ProteinRecord>(recs.begin(), recs.begin() + 80));
    write_jsonl("heldout.jsonl", std::vector<ProteinRecord>(recs.begin() + 80, recs.end()));
    fs::copy(src("tests/fixtures/hf/esm_tiny"), "esm2_t12_35M");
    fs::copy(src("tests/fixtures/hf/bert_tiny"), "PubMedBERT");
    {
      std::ofstream v("PubMedBERT/vocab.txt");  // bert_tiny: 120 tokens, [PAD]=0 [CLS]=2 [SEP]=3
      v << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
      int n = 5;
      for (const char* w : {"protein", "kinase", "binding", "dna", "membrane", "of", "the", "and"}) v << w << "\n", ++n;
      for (char c = 'a'; c <= 'z'; ++c) v << c << "\n", ++n;
      for (char c = 'a'; n < 120; ++c) v << "##" << c << "\n", ++n;
    }
    td.file("labels.tsv", "kinase\tA protein kinase.\nbinding\tA DNA-binding protein.\n");
    td.file("labelled.jsonl", "{\"id\":\"a\",\"seq\":\"MKTAYIAKQRQISFVKSHFSRQ\",\"text\":\"kinase\"}\n"
                              "{\"id\":\"b\",\"seq\":\"GSHMLEDPVDAFQ\",\"text\":\"binding\"}\n");
    td.file("proteins.fasta", ">a\nMKTAYIAKQRQISFVKSHFSRQ\n>b\nGSHMLEDPVDAFQ\n");
    {
      std::ofstream l("probe_labels.tsv");  // `protst probe --task files` on pairs.jsonl: 56 train, 24 test, two classes
      for (size_t i = 0; i < 80; ++i) l << recs[i].id << "\t" << (i < 56 ? "train" : "test") << "\t" << (i % 2 ? "odd" : "even") << "\n";
    }
    td.file("prompts.txt", "ATP binding\nprotein kinase activity\n");
    fs::copy(src("configs"), "configs");
    // The GO dataset of the quick start and of `protst dataset`, as a finished build in the cache.
    GoDatasetOptions g;
    g.max_seq_len = 512;
    g.subset_train = 20000;
    g.subset_test = 1000;
    fs::path go = fs::path("datasets/go") / go_dataset_default_name(g);
    fs::create_directories(go);
    write_jsonl((go / "train.jsonl").string(), recs);
    write_jsonl((go / "test.jsonl").string(), std::vector<ProteinRecord>(recs.begin(), recs.begin() + 20));
    std::ofstream((go / "manifest.json").string())
        << nlohmann::json{{"options", nlohmann::json::parse(go_dataset_options_json(g))},
                          {"counts", {{"train_pairs", 100}, {"test_pairs", 20}}}}
               .dump();

    // ---- tiny sizes, appended where a line does not set the option
    const std::vector<std::pair<std::string, std::string>> tiny_train = {
        {"--batch-size", "6"},     {"--max-protein-len", "40"}, {"--eval-max-protein-len", "64"},
        {"--max-text-len", "24"},  {"--embed-dim", "16"},       {"--fusion-heads", "2"},
        {"--text-hidden", "16"},   {"--text-heads", "2"},       {"--text-layers", "1"},
        {"--text-vocab-size", "300"}, {"--device", "cpu"},      {"--eval-subset", "20"},
        {"--steps", "2"},          {"--decoder-hidden", "16"},  {"--decoder-heads", "2"},
        {"--decoder-layers", "1"}, {"--eval-generate", "3"}};
    const std::map<std::string, std::vector<std::pair<std::string, std::string>>> tiny = {
        {"train", tiny_train},
        {"eval", {{"--device", "cpu"}, {"--max-protein-len", "64"}}},
        {"embed", {{"--device", "cpu"}}},
        {"convert", {{"--device", "cpu"}, {"--steps", "3"}, {"--batch-size", "16"}}},
        {"dataset", {}},
        {"describe", {{"--device", "cpu"}, {"--max-length", "5"}}},
        {"design", {{"--device", "cpu"}, {"--max-length", "5"}}},
        {"probe", {{"--device", "cpu"}, {"--seeds", "1"}, {"--epochs", "2"}, {"--hidden", "8"}, {"--folds", "2"},
                   {"--max-protein-len", "64"}}}};
    std::vector<std::string> lines = readme_commands("## Using it");
    REQUIRE(lines.size() >= 8);
    std::string checkpoint;
    for (const std::string& line : lines) {
      std::vector<std::string> w = words(line);
      if (w.size() >= 2 && w[1] == "<command>") {  // protst <command> --help
        for (const auto& [cmd, _] : tiny) {
          CAPTURE(cmd);
          CHECK(cli({"protst", cmd, "--help"}) == 0);
        }
        continue;
      }
      for (std::string& a : w) {
        if (a == "2000") a = "2";  // --steps 2000, step-2000: two steps suffice
        size_t p = a.find("step-2000");
        if (p != std::string::npos) a.replace(p, 9, "step-2");
        if (a == "...") {
          REQUIRE(!checkpoint.empty());
          a = checkpoint;
        }
        if (a.find("step-2.safetensors") != std::string::npos) checkpoint = a;
      }
      REQUIRE(tiny.count(w[1]));
      for (const auto& [opt, val] : tiny.at(w[1]))
        if (std::find(w.begin(), w.end(), opt) == w.end()) w.insert(w.end(), {opt, val});
      std::string shown;
      for (const auto& a : w) shown += a + " ";
      CAPTURE(shown);
      MESSAGE("README: ", shown);
      CHECK(cli(w) == 0);
    }
    CHECK(fs::exists("runs/x/checkpoints/step-2.safetensors"));
    CHECK(fs::exists("runs/quickstart/checkpoints/step-2.safetensors"));
    CHECK(fs::exists("emb.npy"));
    CHECK(fs::exists("runs/x/with_conversion.safetensors"));
    CHECK(fs::exists("descriptions.jsonl"));
    CHECK(fs::exists("designed.fasta"));
    CHECK(fs::exists("runs/probe/files/probe.json"));
    CHECK(fs::exists("runs/design/design_eval.json"));
    CHECK(fs::exists("runs/design/designs.fasta"));
    CHECK(fs::exists("runs/describe_quickstart/eval.json"));
  }

  TEST_CASE("--config is accepted before and after the subcommand and flags override it") {
    TempDir td("config_pos");
    std::string toml = td.file("c.toml", "[train]\nsteps = 5\nbatch-size = 6\nembed-dim = 16\nfusion-heads = 2\n"
                                         "text-hidden = 16\ntext-heads = 2\ntext-layers = 1\ntext-vocab-size = 300\n"
                                         "max-protein-len = 40\nmax-text-len = 24\ndevice = \"cpu\"\n");
    std::string data = src("data/samples/SWISS100.dat");
    for (int where = 0; where < 3; ++where) {
      CAPTURE(where);
      std::string out = td.path("run" + std::to_string(where));
      std::vector<std::string> a = {"protst", "train", "--train", data, "--out", out, "--steps", "1"};
      if (where == 0) a.insert(a.begin() + 1, {"--config", toml});
      else if (where == 1) a.insert(a.begin() + 2, {"--config", toml});
      else a.push_back("--config=" + toml);
      CHECK(cli(a) == 0);
      CHECK(fs::exists(out + "/checkpoints/step-1.safetensors"));  // --steps 1 overrides steps = 5
    }
  }
}
