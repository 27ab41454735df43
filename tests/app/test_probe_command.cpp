// `protst probe` end to end on a tiny trained checkpoint: a GO task from a stand-in annotation cache
// (multimodal CC with MF+BP text), a user task from files, the JSON and markdown outputs, and the
// refusal of a split where a test protein shares a cluster with a training protein.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "app/cli.h"
#include "app/dataset.h"
#include "app/probe.h"
#include "app/train.h"
#include "data/go_dataset.h"
#include "data/jsonl.h"
#include "data/text_io.h"
#include "tests/app/tiny_train.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

namespace {

int cli(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return protst_main(int(argv.size()), argv.data());
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A GO cache for the 100 sample proteins: train = the first 70, test = the last 30; each protein
// gets CC, MF and BP terms from its index; every protein is its own cluster unless `leak`.
void write_go_stand_in(const std::string& dir, const std::vector<ProteinRecord>& recs, bool leak) {
  const std::string data = dir + "/go/root/usr/share/metastudent-data/dataset_201401";
  for (const char* a : {"MFO", "BPO", "CCO"}) fs::create_directories(data + "/" + a);
  std::ofstream names(data + "/nameMapping.txt");
  names << "GO:0000001\tkinase activity\nGO:0000002\tDNA binding\nGO:0000003\ttranslation\n"
           "GO:0000004\tsignal transduction\nGO:0000005\tnucleus\nGO:0000006\tcytoplasm\nGO:0000007\tmembrane\n";
  std::ofstream mf(data + "/MFO/goasp_annot.dat"), bp(data + "/BPO/goasp_annot.dat"), cc(data + "/CCO/goasp_annot.dat");
  for (size_t i = 0; i < recs.size(); ++i) {
    const std::string& id = recs[i].id;
    mf << id << "\t" << (i % 2 ? "GO:0000001" : "GO:0000002") << "\n";
    bp << id << "\t" << (i % 3 ? "GO:0000003" : "GO:0000004") << "\n";
    cc << id << "\t" << (i % 2 ? "GO:0000005" : "GO:0000006") << (i % 4 == 0 ? "\tGO:0000007" : "") << "\n";
  }
  fs::create_directories(dir + "/go/cluster-id0.5-c0.8");
  std::ofstream clu(dir + "/go/cluster-id0.5-c0.8/clu_cluster.tsv");
  for (size_t i = 0; i < recs.size(); ++i)
    clu << (leak && i == 99 ? recs[0].id : recs[i].id) << "\t" << recs[i].id << "\n";
  fs::create_directories(dir + "/pairs");
  write_jsonl(dir + "/pairs/train.jsonl", std::vector<ProteinRecord>(recs.begin(), recs.begin() + 70));
  write_jsonl(dir + "/pairs/test.jsonl", std::vector<ProteinRecord>(recs.begin() + 70, recs.end()));
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("protst probe: GO multimodal task and a user task end to end on a tiny checkpoint - leaks refused") {
    TempDir td("probe_cmd");
    const std::string d = td.dir.string();
    TrainOptions t = tiny_options(d + "/run");
    train(t);
    const std::string ck = d + "/run/checkpoints/step-6.safetensors";
    REQUIRE(fs::exists(ck));
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat", "", st);
    REQUIRE(recs.size() == 100);
    write_go_stand_in(d, recs, false);
    const std::vector<std::string> tiny = {"--seeds", "2", "--epochs", "3", "--hidden", "8", "--folds", "2",
                                           "--min-train-proteins", "5", "--device", "cpu", "--max-protein-len", "64",
                                           "--joint-epochs", "2", "--joint-batch-size", "16", "--joint-max-train", "50"};
    std::vector<std::string> args = {"protst", "probe", "--checkpoint", ck, "--task", "go-cc-multimodal,go-mf",
                                     "--go-pairs", d + "/pairs", "--go-cache", d + "/go", "--out", d + "/probe"};
    args.insert(args.end(), tiny.begin(), tiny.end());
    REQUIRE(cli(args) == 0);

    nlohmann::json j = nlohmann::json::parse(slurp(d + "/probe/go-cc-multimodal/probe.json"));
    CHECK(j["train_proteins"] == 70);
    CHECK(j["test_proteins"] == 30);
    CHECK(j["terms"] == 3);  // nucleus, cytoplasm, membrane
    CHECK(j["cluster_check"]["test_sharing_cluster"] == 0);
    CHECK(j["cluster_check"]["test"] == 30);
    std::set<std::string> predictors;
    for (const auto& r : j["rows"]) {
      std::string name = r["encoder"].get<std::string>() + "|" + r["predictor"].get<std::string>();
      predictors.insert(name);
      for (const char* m : {"fmax", "aupr"}) {
        CAPTURE(name);
        REQUIRE(r["metrics"][m]["values"].size() == 2);
        double mean = r["metrics"][m]["mean"];
        CHECK(mean >= 0.0);
        CHECK(mean <= 1.0);
      }
    }
    for (const char* enc : {"ProtST", "random init"})
      for (const char* p : {"seq linear", "seq MLP", "text linear", "text MLP", "early fusion MLP", "late fusion average",
                            "late fusion stacking"})
        CHECK(predictors.count(std::string(enc) + "|" + p));
    CHECK(predictors.count("|label-frequency"));
    // Joint fusion: the ProtST row only (fine-tuned per seed), 50 of the 70 training proteins.
    CHECK(predictors.count("ProtST|joint fusion (fine-tuned)"));
    CHECK_FALSE(predictors.count("random init|joint fusion (fine-tuned)"));
    CHECK(predictors.size() == 16);
    CHECK(j["joint"]["train_proteins"] == 50);
    CHECK(j["joint"]["fits"].size() == 2);
    CHECK(j["joint"]["fits"][0]["steps"] == 2 * 4);  // 2 epochs x ceil(50 / 16)
    CHECK(j["joint"]["fits"][0]["epoch_train_loss"].size() == 2);
    CHECK(j["joint"]["text_encoder_frozen"] == false);  // trained from scratch: the checkpoint says trainable
    std::string md = slurp(d + "/probe/go-cc-multimodal/probe.md");
    CHECK(md.find("| predictor | Fmax | micro AUPR |") != std::string::npos);
    CHECK(md.find("| ProtST late fusion stacking |") != std::string::npos);
    CHECK(md.find("| ProtST joint fusion (fine-tuned) |") != std::string::npos);
    CHECK(fs::file_size(d + "/probe/go-cc-multimodal/probe.png") > 1000);
    nlohmann::json mf = nlohmann::json::parse(slurp(d + "/probe/go-mf/probe.json"));
    CHECK(mf["rows"].size() == 6);  // baseline + 2 encoders x (seq linear, seq MLP) + ProtST seq fine-tuned
    CHECK(mf["rows"][3]["predictor"] == "seq fine-tuned");  // after the ProtST rows
    CHECK(mf["joint"]["predictor"] == "seq fine-tuned");
    std::string all = slurp(d + "/probe/probe.md");
    CHECK(all.find("## go-mf") != std::string::npos);
    CHECK(all.find("## go-cc-multimodal") != std::string::npos);

    // A user task from files, single-label, with texts (multimodal): accuracy and macro-F1 columns.
    std::vector<ProteinRecord> small(recs.begin(), recs.begin() + 40);
    write_jsonl(d + "/task.jsonl", small);
    std::string tsv = "id\tsplit\tlabels\n";
    for (size_t i = 0; i < small.size(); ++i)
      tsv += small[i].id + "\t" + (i < 28 ? "train" : "test") + "\t" + (i % 2 ? "odd" : "even") + "\n";
    td.file("task.tsv", tsv);
    std::vector<std::string> fargs = {"protst", "probe", "--checkpoint", ck, "--task", "files", "--input",
                                      d + "/task.jsonl", "--labels", d + "/task.tsv", "--out", d + "/probe_files",
                                      "--no-random-init", "--features", "joint"};
    fargs.insert(fargs.end(), tiny.begin(), tiny.end());
    REQUIRE(cli(fargs) == 0);
    nlohmann::json fj = nlohmann::json::parse(slurp(d + "/probe_files/files/probe.json"));
    CHECK(fj["multi_label"] == false);
    CHECK(fj["multimodal"] == true);
    CHECK(fj["features"] == "joint");
    CHECK(j["features"] == "encoder");
    CHECK(fj["test_proteins"] == 12);
    CHECK(fj["rows"].size() == 9);  // baseline + ProtST x 7 + joint fusion (single-label: softmax head)
    for (const auto& r : fj["rows"]) {
      CHECK(r["metrics"].contains("accuracy"));
      CHECK(r["metrics"].contains("macro_f1"));
    }
    CHECK(slurp(d + "/probe_files/files/probe.md").find("macro-F1") != std::string::npos);

    // A test protein in a training protein's cluster: the run stops, naming it.
    write_go_stand_in(d, recs, true);
    args[args.size() - tiny.size() - 1] = d + "/probe_leak";
    CHECK(cli(args) == 1);
    CHECK_FALSE(fs::exists(d + "/probe_leak/go-cc-multimodal/probe.json"));
  }

  TEST_CASE("protst probe: a user task with split auto is split by mmseqs clusters - no test protein shares one with train") {
    // The package's mmseqs from the dataset cache (PE_GO_DATASET_CACHE, else <source>/datasets/go),
    // downloaded there when missing, as the data tests do; skipped when the package is unavailable.
    const char* env = std::getenv("PE_GO_DATASET_CACHE");
    const std::string cache = env && *env ? env : std::string(PE_SOURCE_DIR) + "/datasets/go";
    try {
      prepare_mmseqs(cache);
    } catch (const pe::Error& e) {
      MESSAGE("[skipped] the Debian mmseqs2 package is not available: " << e.what());
      return;
    }
    TempDir td("probe_auto");
    const std::string d = td.dir.string();
    TrainOptions t = tiny_options(d + "/run");
    train(t);
    const std::string ck = d + "/run/checkpoints/step-6.safetensors";
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat", "", st);
    REQUIRE(recs.size() == 100);
    // Two near-copies of the first protein: they must land on the same side.
    ProteinRecord a = recs[0], b = recs[0];
    a.id = "copyA";
    b.id = "copyB";
    b.seq[b.seq.size() / 2] = b.seq[b.seq.size() / 2] == 'A' ? 'G' : 'A';
    recs.push_back(a);
    recs.push_back(b);
    write_jsonl(d + "/task.jsonl", recs);
    std::string tsv;
    for (size_t i = 0; i < recs.size(); ++i) tsv += recs[i].id + "\tauto\t" + (i % 2 ? "odd" : "even") + "\n";
    td.file("task.tsv", tsv);
    std::vector<std::string> args = {"protst", "probe", "--checkpoint", ck, "--task", "files", "--input",
                                     d + "/task.jsonl", "--labels", d + "/task.tsv", "--out", d + "/probe_auto",
                                     "--go-cache", cache, "--test-fraction", "0.3", "--no-random-init", "--no-joint",
                                     "--seeds", "1", "--epochs", "2", "--hidden", "8", "--folds", "2",
                                     "--device", "cpu", "--max-protein-len", "64"};
    REQUIRE(cli(args) == 0);
    nlohmann::json j = nlohmann::json::parse(slurp(d + "/probe_auto/files/probe.json"));
    const int64_t tr = j["train_proteins"], te = j["test_proteins"];
    CHECK(tr + te + j["dropped_test"].get<int64_t>() == 102);
    CHECK(te > 10);  // ~30 % of ~100 clusters
    CHECK(tr > 40);
    CHECK(j["cluster_check"]["test_sharing_cluster"] == 0);
    CHECK(j["cluster_check"]["test"] == te);  // every test protein was looked up in the clusters
    // (The near-copies share a cluster: were they split, the check above would have stopped the run.)
  }

  TEST_CASE("protst probe --help explains every task and metric") {
    // CLI11 prints help and exits through its own path; the text is the exported constant.
    for (const char* s : {"go-mf", "go-bp", "go-cc", "go-cc-multimodal", "files", "Fmax", "micro AUPR", "accuracy",
                          "macro-F1", "early fusion", "late fusion average", "stacking", "label-frequency",
                          "--min-train-proteins", "never CC", "Joint fusion", "--joint-encoder-lr-ratio",
                          "--no-joint", "seq fine-tuned"}) {
      CAPTURE(s);
      CHECK(std::string(kProbeHelp).find(s) != std::string::npos);
    }
    CHECK(cli({"protst", "probe", "--help"}) == 0);
  }
}
