// The generative arms end to end (issue #12): `protst train --task describe|design` on a trained
// tiny ProtST checkpoint, resume, and the describe / design commands on its checkpoint.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "app/arms.h"
#include "app/commands.h"
#include "app/train_common.h"
#include "app/model_io.h"
#include "app/train.h"
#include "app/train_arm.h"
#include "app/dataset.h"
#include "data/jsonl.h"
#include "data/tokenizer_esm.h"
#include "decoders/design_metrics.h"
#include "decoders/text_metrics.h"
#include "tests/app/tiny_train.h"
#include "tests/common/compare.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

TrainOptions tiny_arm_options(const std::string& protst_ckpt, const std::string& out, const std::string& task) {
  TrainOptions o = tiny_options(out);
  o.task = task;
  o.from_checkpoint = protst_ckpt;
  o.test_path = o.train_path;
  o.decoder_layers = 1;
  o.decoder_hidden = 16;
  o.decoder_heads = 2;
  o.steps = 4;
  o.save_every = 2;
  o.eval_generate = 3;
  o.max_protein_len = 30;
  return o;
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("describe arm trains on a ProtST checkpoint - resumes exactly - and protst describe writes JSONL") {
    TempDir td("arm_describe");
    const std::string d = td.dir.string();
    TrainOptions p = tiny_options(d + "/protst");
    p.steps = 2;
    p.save_every = 2;
    train(p);
    const std::string protst_ckpt = d + "/protst/checkpoints/step-2.safetensors";

    // 4 steps straight, against 2 steps + resume + 2 steps: identical decoder weights.
    TrainOptions a = tiny_arm_options(protst_ckpt, d + "/straight", "describe");
    train_arm(a);
    TrainOptions b = tiny_arm_options(protst_ckpt, d + "/resumed", "describe");
    b.steps = 2;
    train_arm(b);
    b.steps = 4;
    train_arm(b);
    LoadedCheckpoint ca = load_checkpoint_file(d + "/straight/checkpoints/step-4.safetensors");
    LoadedCheckpoint cb = load_checkpoint_file(d + "/resumed/checkpoints/step-4.safetensors");
    REQUIRE(!ca.decoder.empty());
    for (const auto& [name, t] : ca.decoder) {
      CAPTURE(name);
      CHECK(t.to_double_vector() == cb.decoder.at(name).to_double_vector());
    }
    CHECK(ca.meta["decoder"]["task"] == "describe");
    CHECK(ca.meta["decoder"]["from_checkpoint"] == protst_ckpt);
    // The ProtST model is carried unchanged (encoder frozen by default).
    LoadedCheckpoint orig = load_checkpoint_file(protst_ckpt);
    for (const auto& [name, t] : orig.model) CHECK(t.to_double_vector() == ca.model.at(name).to_double_vector());
    CHECK(lines(d + "/straight/samples.jsonl").size() == 3);
    // GO-term recall in eval.json equals term_recall of the samples against the true GO term names
    // of each protein's full text (SWISS100 texts end in the GO part).
    {
      const nlohmann::json ev = nlohmann::json::parse(std::ifstream(d + "/straight/eval.json"));
      REQUIRE(ev["decoder"].contains("go_term_recall"));
      ReadStats st;
      std::map<std::string, std::string> text;
      for (const ProteinRecord& r : read_pairs(a.train_path, "", st)) text.emplace(r.id, r.text);
      size_t found = 0, total = 0;
      for (const std::string& l : lines(d + "/straight/samples.jsonl")) {
        const nlohmann::json s = nlohmann::json::parse(l);
        const TermRecall r = term_recall(s["generated"].get<std::string>(), go_term_names(text.at(s["id"])));
        found += r.found, total += r.total;
      }
      REQUIRE(total > 0);
      CHECK(ev["decoder"]["go_term_recall"]["terms"] == total);
      CHECK(ev["decoder"]["go_term_recall"]["found"] == found);
      CHECK(ev["decoder"]["go_term_recall"]["pooled"].get<double>() == doctest::Approx(double(found) / double(total)));
      for (const char* m : {"nearest_neighbour", "most_frequent", "reference_cut"}) {
        CAPTURE(m);
        CHECK(ev[m]["go_term_recall"]["terms"] == total);
        CHECK(ev[m]["go_term_recall"]["found"].get<int64_t>() <= int64_t(total));
      }
    }

    // protst describe: one JSON line per protein (greedy), and num per protein with sampling.
    const std::string fasta = td.file("p.fasta", ">P1\nMKTAYIAKQRQISFVKSHFSRQ\n>P2\nGSHMLEDPVDAFQ\n");
    ArmGenerateOptions g;
    g.checkpoint = d + "/straight/checkpoints/step-4.safetensors";
    g.input = fasta;
    g.output = d + "/desc.jsonl";
    g.device = "cpu";
    g.max_length = 6;
    g.progress = false;
    CHECK(run_arm_generation(ArmTask::Describe, g) == 2);
    auto out = lines(g.output);
    REQUIRE(out.size() == 2);
    CHECK(nlohmann::json::parse(out[0])["id"] == "P1");
    g.strategy = "sample";
    g.num = 3;
    g.seed = 5;
    CHECK(run_arm_generation(ArmTask::Describe, g) == 6);
    auto s1 = lines(g.output);
    CHECK(run_arm_generation(ArmTask::Describe, g) == 6);
    CHECK(lines(g.output) == s1);  // seeded
    // The design command refuses a describe checkpoint; an empty input is named.
    ArmGenerateOptions wrong = g;
    wrong.input = td.file("prompts.txt", "kinase\n");
    CHECK_THROWS_WITH_AS(run_arm_generation(ArmTask::Design, wrong), doctest::Contains("holds a describe arm"), Error);
    g.input = td.file("empty.fasta", "\n");
    CHECK_THROWS_WITH_AS(run_arm_generation(ArmTask::Describe, g), doctest::Contains("empty.fasta"), Error);
    // Without --from-checkpoint the arm is refused up front, naming the option.
    TrainOptions bad = tiny_arm_options("", d + "/bad", "describe");
    CHECK_THROWS_WITH_AS(train_arm(bad), doctest::Contains("--from-checkpoint"), Error);
  }

  TEST_CASE("design arm writes FASTA of standard amino acids only - with beam search") {
    TempDir td("arm_design");
    const std::string d = td.dir.string();
    TrainOptions p = tiny_options(d + "/protst");
    p.steps = 2;
    p.save_every = 2;
    train(p);
    TrainOptions a = tiny_arm_options(d + "/protst/checkpoints/step-2.safetensors", d + "/arm", "design");
    a.eval_generate = 0;
    train_arm(a);
    // The test file is the training file: no held-out prompt qualifies, so the final design evaluation
    // is reported as not done (the run itself succeeds and eval.json is written).
    {
      const nlohmann::json ev = nlohmann::json::parse(std::ifstream(d + "/arm/eval.json"));
      CHECK(ev["design_evaluation"]["error"].get<std::string>().find("held-out prompts") != std::string::npos);
    }
    ArmGenerateOptions g;
    g.checkpoint = d + "/arm/checkpoints/step-4.safetensors";
    g.input = td.file("prompts.txt", "ATP binding protein kinase activity\nDNA binding\n");
    g.output = d + "/designed.fasta";
    g.device = "cpu";
    g.strategy = "beam";
    g.num_beams = 3;
    g.num = 2;
    g.min_length = 4;
    g.max_length = 12;
    g.progress = false;
    CHECK(run_arm_generation(ArmTask::Design, g) == 4);
    auto out = lines(g.output);
    REQUIRE(out.size() == 8);
    const std::string standard = "ACDEFGHIKLMNPQRSTVWY";
    for (size_t i = 0; i < out.size(); i += 2) {
      CHECK(out[i].rfind(">prompt", 0) == 0);
      CHECK(out[i + 1].size() >= 4);
      CHECK(out[i + 1].size() <= 12);
      for (char c : out[i + 1]) CHECK(standard.find(c) != std::string::npos);
    }
    ArmGenerateOptions stray = g;  // evaluation options without --evaluate are refused, named
    stray.judge_checkpoint = g.checkpoint;
    CHECK_THROWS_WITH_AS(run_arm_generation(ArmTask::Design, stray), doctest::Contains("--judge-checkpoint belong to"),
                         Error);
    g.input = td.file("blank.txt", "kinase\n   \n");
    CHECK_THROWS_WITH_AS(run_arm_generation(ArmTask::Design, g), doctest::Contains("empty prompt"), Error);
  }

  TEST_CASE("arms: design evaluation end to end - held-out prompts only - baselines - judge - novelty or its skip") {
    TempDir td("arm_design_eval");
    const std::string d = td.dir.string();
    namespace fs = std::filesystem;
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat", "", st);
    REQUIRE(recs.size() == 100);
    std::vector<ProteinRecord> train_recs(recs.begin(), recs.begin() + 80), test_recs(recs.begin() + 80, recs.end());
    test_recs.push_back({"SHARED", recs[81].seq, recs[0].text, 0});  // a training text: never a prompt
    // A held-out copy of a training protein under a new text: the novelty search must find it.
    test_recs.insert(test_recs.begin(), {"COPY", recs[5].seq, "Molecular function: a text no training pair has.", 0});
    const std::string train_path = d + "/train.jsonl", test_path = d + "/test.jsonl";
    write_jsonl(train_path, train_recs);
    write_jsonl(test_path, test_recs);
    std::set<std::string> train_texts;
    for (const auto& r : train_recs) train_texts.insert(r.text);

    auto protst = [&](const std::string& out, uint64_t seed) {
      TrainOptions p = tiny_options(out);
      p.train_path = train_path;
      p.steps = 2;
      p.save_every = 2;
      p.seed = seed;
      train(p);
      return out + "/checkpoints/step-2.safetensors";
    };
    const std::string arm_protst = protst(d + "/protst", 3), judge = protst(d + "/judge", 9);
    // mmseqs: the dataset build's package when there is one (PE_GO_DATASET_CACHE, else <source>/datasets/go).
    const char* env = std::getenv("PE_GO_DATASET_CACHE");
    const std::string cache = env && *env ? env : std::string(PE_SOURCE_DIR) + "/datasets/go";
    bool have_mmseqs = false;
    if (fs::is_directory(cache + "/debs"))
      for (const auto& e : fs::directory_iterator(cache + "/debs"))
        if (e.path().filename().string().rfind("mmseqs2_", 0) == 0) have_mmseqs = true;
    if (!have_mmseqs) MESSAGE("no mmseqs2 package in " << cache << "/debs: the novelty part is checked as skipped");

    TrainOptions a = tiny_arm_options(arm_protst, d + "/arm", "design");
    a.train_path = train_path;
    a.test_path = test_path;
    a.eval_generate = 0;
    a.eval_design_prompts = 12;
    a.eval_design_per_prompt = 2;
    a.judge_checkpoint = judge;
    a.go_cache = cache;
    train_arm(a);
    const nlohmann::json ev = nlohmann::json::parse(std::ifstream(d + "/arm/eval.json"))["design_evaluation"];
    REQUIRE_MESSAGE(!ev.contains("error"), ev.dump());
    CHECK(ev["prompts"] == 12);
    CHECK(ev["per_prompt"] == 2);
    CHECK(ev["judge"] == judge);
    CHECK(ev["prompts_shared_with_training_left_out"].get<int64_t>() >= 1);
    const nlohmann::json& m = ev["methods"];
    CHECK(m["decoder"]["proteins"] == 24);
    CHECK(m["random"]["proteins"] == 24);
    CHECK(m["random"]["validity"]["standard_share"] == 1.0);
    CHECK(m["nearest_training"]["proteins"].get<int64_t>() >= 12);
    CHECK(m["held_out_natural"]["proteins"].get<int64_t>() >= 12);
    for (const char* name : {"decoder", "random", "nearest_training", "held_out_natural"}) {
      CAPTURE(name);
      for (const char* T : {"T4", "T10"}) {
        const double s = m[name]["retrieval"][T].get<double>();
        CHECK(s >= 0);
        CHECK(s <= 1);
      }
      // Two designs and two random proteins per prompt: their diversity is measured.
      if (name == std::string("decoder") || name == std::string("random")) {
        const double id = m[name]["diversity"]["mean_pairwise_identity"].get<double>();
        CHECK(id >= 0);
        CHECK(id <= 1);
      }
    }
    if (have_mmseqs) {
      CHECK(m["decoder"]["novelty"]["proteins"] == 24);
      // The copy (its first 30 residues, as the decoder is trained) has a training hit at >= 50 %.
      CHECK(m["held_out_natural"]["novelty"]["share_at_least_50pct"].get<double>() > 0);
      const nlohmann::json& b = m["held_out_natural"]["novelty"]["buckets"];
      CHECK(b[">=90%"].get<int64_t>() + b["identical"].get<int64_t>() >= 1);
    } else {
      CHECK(ev["novelty_search"].get<std::string>().rfind("skipped: no mmseqs2", 0) == 0);
      CHECK_FALSE(m["decoder"].contains("novelty"));
    }

    // designs.fasta: every protein of every method; prompts are held-out texts, never training texts;
    // the decoder's and the random baseline's proteins use only the 20 standard residues, and the
    // decoder's standard share in eval.json is what the file holds.
    std::map<std::string, std::vector<std::string>> by_method;
    std::vector<std::string> f = lines(d + "/arm/designs.fasta");
    int64_t prompts = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i].rfind("; prompt ", 0) == 0) {
        ++prompts;
        const std::string text = f[i].substr(f[i].find(": ") + 2);
        CHECK(train_texts.count(text) == 0);
      } else if (f[i].rfind(">", 0) == 0) {
        REQUIRE(i + 1 < f.size());
        by_method[f[i].substr(1, f[i].rfind('_') - 1)].push_back(f[i + 1]);
      }
    }
    CHECK(prompts == 12);
    REQUIRE(by_method["decoder"].size() == 24);
    int64_t standard = 0;
    for (const std::string& s : by_method["decoder"]) standard += is_standard_protein(s) ? 1 : 0;
    CHECK(m["decoder"]["validity"]["standard_share"].get<double>() == doctest::Approx(double(standard) / 24));
    for (const std::string& s : by_method["random"]) CHECK(is_standard_protein(s));

    // protst design --evaluate on the arm's checkpoint: the same proteins and retrieval numbers (same
    // seed, judge and prompts); with a cache without mmseqs the novelty part is skipped, named.
    ArmGenerateOptions g;
    g.checkpoint = d + "/arm/checkpoints/step-4.safetensors";
    g.train = train_path;
    g.test = test_path;
    g.output = d + "/eval2/design_eval.json";
    g.strategy = "sample";
    g.num = 2;
    g.eval_prompts = 12;
    g.seed = a.seed;
    g.judge_checkpoint = judge;
    g.go_cache = d + "/no-cache";
    g.device = "cpu";
    g.max_protein_len = a.max_protein_len;
    g.max_text_len = a.max_text_len;
    g.progress = false;
    run_design_evaluation(g);
    const nlohmann::json ev2 = nlohmann::json::parse(std::ifstream(g.output));
    CHECK(ev2["novelty_search"].get<std::string>().find("no mmseqs2 and libgzstream0 packages in") != std::string::npos);
    for (const char* name : {"decoder", "random", "nearest_training", "held_out_natural"})
      for (const char* T : {"T4", "T10"}) {
        CAPTURE(name);
        CHECK(ev2["methods"][name]["retrieval"][T].get<double>() ==
              doctest::Approx(m[name]["retrieval"][T].get<double>()));
      }
    CHECK(lines(d + "/eval2/designs.fasta") == f);
    // Judged by the arm's own ProtST model instead: named as such.
    g.judge_checkpoint.clear();
    run_design_evaluation(g);
    CHECK(nlohmann::json::parse(std::ifstream(g.output))["judge"].get<std::string>().find("the arm's own ProtST model") !=
          std::string::npos);
    // Errors name what is wrong.
    ArmGenerateOptions bad = g;
    bad.test = train_path;
    CHECK_THROWS_WITH_AS(run_design_evaluation(bad), doctest::Contains("held-out prompts whose text no training pair has"),
                         Error);
    bad = g;
    bad.train.clear();
    CHECK_THROWS_WITH_AS(run_design_evaluation(bad), doctest::Contains("--train and --test"), Error);
    bad = g;
    bad.checkpoint = arm_protst;
    CHECK_THROWS_WITH_AS(run_design_evaluation(bad), doctest::Contains("holds no generative arm"), Error);
  }
}

TEST_SUITE("app") {
  TEST_CASE("arms: prefix and imputed conditions train - checkpoint - resume - evaluate - generate - both arms") {
    TempDir td("arm_condition");
    const std::string d = td.dir.string();
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat", "", st);
    REQUIRE(recs.size() == 100);
    const std::string train_path = d + "/train.jsonl", test_path = d + "/test.jsonl";
    write_jsonl(train_path, std::vector<ProteinRecord>(recs.begin(), recs.begin() + 80));
    write_jsonl(test_path, std::vector<ProteinRecord>(recs.begin() + 80, recs.end()));
    TrainOptions p = tiny_options(d + "/protst");
    p.train_path = train_path;
    p.steps = 2;
    p.save_every = 2;
    train(p);
    const std::string protst_ckpt = d + "/protst/checkpoints/step-2.safetensors";
    // Stage two: the conversion MLPs the imputed condition reads.
    ConvertOptions c;
    c.checkpoint = protst_ckpt;
    c.train_path = train_path;
    c.output = d + "/with_conversion.safetensors";
    c.device = "cpu";
    c.steps = 5;
    c.batch_size = 8;
    run_convert(c);
    // The converted checkpoint keeps the model's own metadata (tokenizer switches) beside converted_from.
    {
      LoadedCheckpoint orig = load_checkpoint_file(protst_ckpt), conv = load_checkpoint_file(c.output);
      CHECK(conv.meta["converted_from"] == protst_ckpt);
      CHECK(conv.meta.value("text_tokenizer", nlohmann::json()) == orig.meta.value("text_tokenizer", nlohmann::json()));
    }

    for (const char* task : {"describe", "design"}) {
      for (const char* cond : {"prefix", "imputed"}) {
        CAPTURE(task);
        CAPTURE(cond);
        const std::string out = d + "/" + task + "_" + cond;
        TrainOptions a = tiny_arm_options(c.output, out, task);
        a.train_path = train_path;
        a.test_path = test_path;
        a.condition = cond;
        a.prefix_length = 3;
        a.eval_design_prompts = 11;
        a.eval_design_per_prompt = 2;
        a.go_cache = d + "/no_mmseqs";  // novelty skipped: the retrieval share is what this test reads
        a.steps = 2;
        train_arm(a);
        a.steps = 4;  // resumes at step 2 with the same condition
        train_arm(a);
        LoadedCheckpoint ck = load_checkpoint_file(out + "/checkpoints/step-4.safetensors");
        CHECK(ck.meta["decoder"]["condition"] == cond);
        CHECK(ck.meta["decoder"]["config"]["prefix_length"] == 3);
        CHECK(ck.decoder.count("decoder.prefix_proj.weight") == 1);
        CHECK(ck.decoder.count("decoder.memory_proj.weight") == 0);
        LoadedArm arm = arm_from_checkpoint(ck, Device::cpu());
        CHECK(arm.condition == parse_arm_condition(cond));
        const nlohmann::json ev = nlohmann::json::parse(std::ifstream(out + "/eval.json"));
        CHECK(ev["condition"] == cond);
        CHECK(std::isfinite(ev["held_out_loss"].get<double>()));
        CHECK(ev.contains("real_target") == (std::string(cond) == "imputed"));
        if (std::string(task) == "describe") {
          CHECK(ev["decoder"]["bleu"].get<double>() >= 0);
          CHECK(ev["decoder"]["go_term_recall"]["terms"].get<int64_t>() > 0);
          CHECK(ev.contains("decoder_real_target") == (std::string(cond) == "imputed"));
          CHECK(lines(out + "/samples.jsonl").size() == 3);
        } else {
          const nlohmann::json& de = ev["design_evaluation"];
          REQUIRE_MESSAGE(!de.contains("error"), de.dump());
          CHECK(de["methods"]["decoder"]["proteins"] == 22);
          const double s = de["methods"]["decoder"]["retrieval"]["T4"].get<double>();
          CHECK(s >= 0);
          CHECK(s <= 1);
        }
        // A resume under another condition is refused (each checkpoint's reason, "trained with --condition
        // <cond>, not cross", is printed as it is skipped).
        TrainOptions other = a;
        other.condition = "cross";
        other.steps = 6;
        CHECK_THROWS_WITH_AS(train_arm(other), doctest::Contains("can be resumed"), Error);
        // The commands generate from it: the imputed arm from the embedding imputed from the input.
        ArmGenerateOptions g;
        g.checkpoint = out + "/checkpoints/step-4.safetensors";
        g.input = std::string(task) == "describe" ? td.file("p.fasta", ">P1\nMKTAYIAKQRQISFVKSHFSRQ\n>P2\nGSHMLEDPVDAFQ\n")
                                                  : td.file("prompts.txt", "ATP binding\nDNA binding\n");
        g.output = out + "/generated.txt";
        g.device = "cpu";
        g.max_length = 6;
        g.progress = false;
        CHECK(run_arm_generation(parse_arm_task(task), g) == 2);
      }
    }

    // The imputed memory is the conversion MLP's image of the input's embedding, unit length, and
    // differs from the real target's embedding the decoder trains on.
    {
      OpenedModel m = open_model(c.output, "cpu", 8, 30, 24);
      PairDataset ds = load_pair_split(test_path, "", *m.tok, 24, "test");
      for (ArmTask task : {ArmTask::Describe, ArmTask::Design}) {
        ArmBatch imputed = make_arm_batch(task, ArmCondition::Imputed, *m.model, ds, {0, 1, 2}, 30, *m.tok,
                                          Device::cpu(), false);
        ArmBatch real = make_arm_batch(task, ArmCondition::Imputed, *m.model, ds, {0, 1, 2}, 30, *m.tok, Device::cpu(),
                                       false, true);
        ArmBatch prefix =
            make_arm_batch(task, ArmCondition::Prefix, *m.model, ds, {0, 1, 2}, 30, *m.tok, Device::cpu(), false);
        CHECK(imputed.memory.shape() == Shape({3, 1, 16}));
        CHECK(!imputed.memory_mask.defined());
        // The real target's embedding (imputed condition) is the other side's prefix embedding.
        ArmBatch other = make_arm_batch(task == ArmTask::Describe ? ArmTask::Design : ArmTask::Describe,
                                        ArmCondition::Prefix, *m.model, ds, {0, 1, 2}, 30, *m.tok, Device::cpu(), false);
        CHECK(real.memory.to_double_vector() == other.memory.to_double_vector());
        // protein_to_text / text_to_protein of the prefix embedding, normalised.
        Tensor e = prefix.memory.view({3, 16});
        Tensor conv = l2_normalize(task == ArmTask::Describe ? m.model->protein_to_text(e) : m.model->text_to_protein(e), -1);
        CHECK(pe::testing::rel_err(imputed.memory.view({3, 16}), conv) < 1e-6);
        std::vector<double> v = imputed.memory.to_double_vector();
        for (int r = 0; r < 3; ++r) {
          double n = 0;
          for (int k = 0; k < 16; ++k) n += v[size_t(r * 16 + k)] * v[size_t(r * 16 + k)];
          CHECK(n == doctest::Approx(1.0).epsilon(1e-5));
        }
        CHECK(pe::testing::rel_err(imputed.memory, real.memory) > 1e-3);
      }
    }

    // Imputed on a checkpoint without trained conversion MLPs is refused up front, naming protst convert.
    TrainOptions bad = tiny_arm_options(protst_ckpt, d + "/bad", "describe");
    bad.condition = "imputed";
    CHECK_THROWS_WITH_AS(train_arm(bad), doctest::Contains("protst convert"), Error);
    bad.condition = "attention";
    CHECK_THROWS_WITH_AS(train_arm(bad), doctest::Contains("--condition"), Error);
  }
}
