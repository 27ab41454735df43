// A checkpoint written by the engine loads in transformers and reproduces our outputs. Runs
// scripts/make_hf_fixtures.py --check-engine-checkpoint when python3 has torch and transformers;
// otherwise the case reports itself skipped.
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "models/bert.h"
#include "models/esm.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

bool have_transformers() {
  return std::system("python3 -c 'import torch, transformers, safetensors' >/dev/null 2>&1") == 0;
}


int run_check(const std::string& dir, const char* kind, const std::string& expect) {
  std::string cmd = "python3 " + std::string(PE_SOURCE_DIR) + "/scripts/make_hf_fixtures.py --check-engine-checkpoint " +
                    dir + " --kind " + kind + " --expect " + expect + " 2>&1";
  std::printf("running: %s\n", cmd.c_str());
  return std::system(cmd.c_str());
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("ESM-2 saved by the engine loads in transformers and gives our logits") {
    std::string fx = std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/esm_tiny";
    Generator gen(0);
    EsmModel model(EsmConfig::from_json_file(fx + "/config.json"), gen, {DType::F32, Device::cpu()});
    model.load(fx);
    TempDir td("export");
    std::string dir = td.dir.string();
    model.save_pretrained(dir);  // f32 safetensors + config.json
    // Our outputs from the exported weights, on the fixture's inputs.
    EsmModel again(EsmConfig::from_json_file(dir + "/config.json"), gen, {DType::F32, Device::cpu()});
    LoadReport rep = again.load(dir);
    CHECK(rep.loaded.size() == again.params().names().size());
    SafetensorsCheckpoint in(fx + "/fixture.safetensors");
    Tensor ids = read_tensor(in, "input_ids"), mask = read_tensor(in, "attention_mask");
    Tensor logits = again.forward(ids, mask).logits;
    save_tensors(dir + "/engine_outputs.safetensors", {{"input_ids", ids}, {"attention_mask", mask}, {"logits", logits}});
    if (!have_transformers()) {
      std::printf("[skipped] python3 with torch and transformers is not available\n");
      return;
    }
    CHECK(run_check(dir, "esm", dir + "/engine_outputs.safetensors") == 0);
  }

  TEST_CASE("BERT saved by the engine loads in transformers and gives our hidden states") {
    std::string fx = std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/bert_tiny";
    Generator gen(0);
    BertModel model(BertConfig::from_json_file(fx + "/config.json"), gen, {DType::F32, Device::cpu()});
    model.load(fx);
    TempDir td("export");
    std::string dir = td.dir.string();
    model.save_pretrained(dir);
    BertModel again(BertConfig::from_json_file(dir + "/config.json"), gen, {DType::F32, Device::cpu()});
    again.load(dir);
    SafetensorsCheckpoint in(fx + "/fixture.safetensors");
    Tensor ids = read_tensor(in, "input_ids"), mask = read_tensor(in, "attention_mask"), tt = read_tensor(in, "token_type_ids");
    Tensor h = again.forward(ids, tt, mask).last_hidden_state;
    save_tensors(dir + "/engine_outputs.safetensors",
                 {{"input_ids", ids}, {"attention_mask", mask}, {"token_type_ids", tt}, {"last_hidden_state", h}});
    if (!have_transformers()) {
      std::printf("[skipped] python3 with torch and transformers is not available\n");
      return;
    }
    CHECK(run_check(dir, "bert", dir + "/engine_outputs.safetensors") == 0);
  }
}
