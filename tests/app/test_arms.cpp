// The generative arms end to end (issue #12): `protst train --task describe|design` on a trained
// tiny ProtST checkpoint, resume, and the describe / design commands on its checkpoint.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "app/arms.h"
#include "app/model_io.h"
#include "app/train.h"
#include "app/train_arm.h"
#include "data/tokenizer_esm.h"
#include "tests/app/tiny_train.h"
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
    g.input = td.file("blank.txt", "kinase\n   \n");
    CHECK_THROWS_WITH_AS(run_arm_generation(ArmTask::Design, g), doctest::Contains("empty prompt"), Error);
  }
}
