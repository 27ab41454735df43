// Bad option values and config.json fields fail before anything is allocated or written, with a
// message naming the option (or the file and field) and a non-zero exit status from the CLI.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/commands.h"
#include "app/train.h"
#include "app/validate.h"
#include "tests/app/tiny_train.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string sample() { return std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat"; }

int cli(std::vector<std::string> args) {
  args.insert(args.begin(), "protst");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return protst_main(int(argv.size()), argv.data());
}

// A copy of a Hugging Face fixture folder whose config.json has `field` set to `value`.
std::string edited_fixture(const TempDir& td, const std::string& name, const std::string& field,
                           const nlohmann::json& value) {
  static int n = 0;
  std::string dst = td.path(name + "_" + field + "_" + std::to_string(++n));
  fs::copy(std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/" + name, dst);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dst + "/config.json"));
  j[field] = value;
  std::ofstream(dst + "/config.json") << j.dump(2);
  if (!fs::exists(dst + "/vocab.txt")) std::ofstream(dst + "/vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  return dst;
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("train: every bad option value is refused up front - naming it - and --out stays untouched") {
    TempDir td("validate");
    struct Bad {
      const char* expect;
      std::function<void(TrainOptions&)> set;
    };
    const double nan = std::nan("");
    std::vector<Bad> table = {
        {"--fusion-heads 0 ", [](TrainOptions& o) { o.fusion_heads = 0; }},
        {"--fusion-heads 3 does not divide --embed-dim 16", [](TrainOptions& o) { o.fusion_heads = 3; }},
        {"--text-heads 0 ", [](TrainOptions& o) { o.text_heads = 0; }},
        {"--text-heads 3 does not divide --text-hidden 16", [](TrainOptions& o) { o.text_heads = 3; }},
        {"--log-every 0 ", [](TrainOptions& o) { o.log_every = 0; }},
        {"--max-protein-len 0 ", [](TrainOptions& o) { o.max_protein_len = 0; }},
        {"--max-protein-len -5 ", [](TrainOptions& o) { o.max_protein_len = -5; }},
        {"--eval-max-protein-len 0 ", [](TrainOptions& o) { o.eval_max_protein_len = 0; }},
        {"--max-text-len 2 ", [](TrainOptions& o) { o.max_text_len = 2; }},
        {"Adam moments", [](TrainOptions& o) { o.text_layers = 1000000000000; }},
        {"--text-layers 1000000000000 ", [](TrainOptions& o) { o.text_layers = 1000000000000; }},
        {"--text-layers 0 ", [](TrainOptions& o) { o.text_layers = 0; }},
        {"--text-hidden 0 ", [](TrainOptions& o) { o.text_hidden = 0; }},
        {"--text-vocab-size 0 ", [](TrainOptions& o) { o.text_vocab_size = 0; }},
        {"--embed-dim 0 ", [](TrainOptions& o) { o.embed_dim = 0; }},
        {"--fusion-layers -1 ", [](TrainOptions& o) { o.fusion_layers = -1; }},
        {"more than this machine's", [](TrainOptions& o) { o.embed_dim = 65536, o.fusion_heads = 1, o.fusion_layers = 1024; }},
        {"--lr nan ", [nan](TrainOptions& o) { o.lr = nan; }},
        {"--lr inf ", [](TrainOptions& o) { o.lr = INFINITY; }},
        {"--lr 0 ", [](TrainOptions& o) { o.lr = 0; }},
        {"--lr -0.001 ", [](TrainOptions& o) { o.lr = -1e-3; }},
        {"--protein-lr-ratio nan ", [nan](TrainOptions& o) { o.protein_lr_ratio = nan; }},
        {"--weight-decay nan ", [nan](TrainOptions& o) { o.weight_decay = nan; }},
        {"--clip -1 ", [](TrainOptions& o) { o.clip = -1; }},
        {"--min-lr-ratio 2 ", [](TrainOptions& o) { o.min_lr_ratio = 2; }},
        {"--w-mlm -1 ", [](TrainOptions& o) { o.w_mlm = -1; }},
        {"--w-mmp nan ", [nan](TrainOptions& o) { o.w_mmp = nan; }},
        {"--w-contrastive -1 ", [](TrainOptions& o) { o.w_cl = -1; }},
        {"--grad-accum 0 ", [](TrainOptions& o) { o.grad_accum = 0; }},
        {"--bucket-mb -1 ", [](TrainOptions& o) { o.bucket_mb = -1; }},
        {"--zero 2 ", [](TrainOptions& o) { o.zero = 2; }},
        {"--collective-timeout nan ", [nan](TrainOptions& o) { o.collective_timeout = nan; }},
        {"--grad-comm 'f16' is not one of", [](TrainOptions& o) { o.grad_comm = "f16"; }},
        {"--grad-comm bf16 applies to the gradient buckets", [](TrainOptions& o) { o.grad_comm = "bf16", o.bucket_mb = 0; }},
        {"--grad-comm bf16 applies to the gradient buckets", [](TrainOptions& o) { o.grad_comm = "bf16", o.zero = 1; }},
        {"--batch-size 0 ", [](TrainOptions& o) { o.batch_size = 0; }},
        {"--steps -1 ", [](TrainOptions& o) { o.steps = -1; }},
        {"--epochs 0 ", [](TrainOptions& o) { o.steps = 0, o.epochs = 0; }},
        {"--warmup -1 ", [](TrainOptions& o) { o.warmup = -1; }},
        {"--save-every -1 ", [](TrainOptions& o) { o.save_every = -1; }},
        {"--keep 0 ", [](TrainOptions& o) { o.keep = 0; }},
        {"--eval-every -1 ", [](TrainOptions& o) { o.eval_every = -1; }},
        {"--eval-subset -1 ", [](TrainOptions& o) { o.eval_subset = -1; }},
        {"--go-max-len -1 ", [](TrainOptions& o) { o.go_max_len = -1; }},
        {"--schedule 'linear'", [](TrainOptions& o) { o.schedule = "linear"; }},
        {"--precision 'fp16'", [](TrainOptions& o) { o.precision = "fp16"; }},
        {"--freeze-text 'maybe'", [](TrainOptions& o) { o.freeze_text = "maybe"; }},
        {"--protein-preset 'huge'", [](TrainOptions& o) { o.protein_preset = "huge"; }},
        {"--device 'tpu'", [](TrainOptions& o) { o.device = "tpu"; }},
        {"--device 'cuda:x'", [](TrainOptions& o) { o.device = "cuda:x"; }},
        {"--train ", [](TrainOptions& o) { o.train_path += ".missing"; }},
        {"--text-vocab ", [](TrainOptions& o) { o.text_vocab = "/nonexistent/vocab.txt"; }},
        {"--descriptions ", [](TrainOptions& o) { o.descriptions = "/nonexistent/desc.tsv"; }},
        {"no training data", [](TrainOptions& o) { o.train_path.clear(); }},
        {"--max-skipped-steps 0 ", [](TrainOptions& o) { o.max_skipped_steps = 0; }},
        {"--overwrite deletes an earlier run's results and goes only with --no-resume",
         [](TrainOptions& o) { o.overwrite = true; }},
    };
    std::string out = td.path("run");
    for (const Bad& b : table) {
      CAPTURE(b.expect);
      TrainOptions o = tiny_options(out);
      b.set(o);
      CHECK_THROWS_WITH_AS(train(o), doctest::Contains(b.expect), Error);
      CHECK(!fs::exists(out));
    }
  }

  TEST_CASE("train: config.json fields of --protein-model / --text-model are checked - naming file and field") {
    TempDir td("validate_cfg");
    struct Bad {
      const char* model;
      const char* field;
      nlohmann::json value;
      const char* expect;
    };
    std::vector<Bad> table = {
        {"esm_tiny", "num_attention_heads", 0, "field 'num_attention_heads' is 0"},
        {"esm_tiny", "num_attention_heads", 5, "is not a multiple of field 'num_attention_heads' 5"},
        {"esm_tiny", "hidden_size", -48, "field 'hidden_size' is -48"},
        {"esm_tiny", "num_hidden_layers", 1000000000000, "field 'num_hidden_layers' is 1000000000000"},
        {"esm_tiny", "vocab_size", 0, "field 'vocab_size' is 0"},
        {"esm_tiny", "mask_token_id", 40, "field 'mask_token_id' is 40"},
        {"esm_tiny", "layer_norm_eps", -1.0, "field 'layer_norm_eps' is -1"},
        {"esm_tiny", "rope_theta", 0.0, "field 'rope_theta' is 0"},
        {"bert_tiny", "num_attention_heads", 0, "field 'num_attention_heads' is 0"},
        {"bert_tiny", "intermediate_size", 0, "field 'intermediate_size' is 0"},
        {"bert_tiny", "max_position_embeddings", 0, "field 'max_position_embeddings' is 0"},
        {"bert_tiny", "type_vocab_size", 0, "field 'type_vocab_size' is 0"},
    };
    std::string out = td.path("run");
    for (const Bad& b : table) {
      CAPTURE(b.field);
      CAPTURE(b.model);
      std::string dir = edited_fixture(td, b.model, b.field, b.value);
      TrainOptions o = tiny_options(out);
      (std::string(b.model) == "esm_tiny" ? o.protein_model : o.text_model) = dir;
      CHECK_THROWS_WITH_AS(train(o), doctest::Contains(b.expect), Error);
      CHECK_THROWS_WITH_AS(train(o), doctest::Contains((dir + "/config.json").c_str()), Error);
      CHECK(!fs::exists(out));
    }
  }

  TEST_CASE("eval and convert: bad option values are refused before the checkpoint is opened") {
    TempDir td("validate_eval");
    std::string any = sample();  // an existing file: validation comes before reading it
    EvalCommandOptions e0;
    e0.checkpoint = any;
    e0.device = "cpu";
    std::vector<std::pair<const char*, std::function<void(EvalCommandOptions&)>>> eval_table = {
        {"--batch-size 0 ", [](EvalCommandOptions& e) { e.batch_size = 0; }},
        {"--max-protein-len 0 ", [](EvalCommandOptions& e) { e.max_protein_len = 0; }},
        {"--max-protein-len -5 ", [](EvalCommandOptions& e) { e.max_protein_len = -5; }},
        {"--max-text-len 0 ", [](EvalCommandOptions& e) { e.max_text_len = 0; }},
        {"--device 'tpu'", [](EvalCommandOptions& e) { e.device = "tpu"; }},
        {"--checkpoint ", [](EvalCommandOptions& e) { e.checkpoint += ".missing"; }},
        {"--test ", [](EvalCommandOptions& e) { e.test_path = "/nonexistent.jsonl"; }},
        {"--zero-shot-prompts needs --zero-shot-data", [](EvalCommandOptions& e) { e.zero_shot_prompts = "p.tsv"; }},
    };
    for (auto& [expect, set] : eval_table) {
      CAPTURE(expect);
      EvalCommandOptions e = e0;
      set(e);
      CHECK_THROWS_WITH_AS(run_eval(e), doctest::Contains(expect), Error);
    }
    ConvertOptions c0;
    c0.checkpoint = any;
    c0.train_path = any;
    c0.device = "cpu";
    c0.output = td.path("conv.safetensors");
    std::vector<std::pair<const char*, std::function<void(ConvertOptions&)>>> convert_table = {
        {"--steps 0 ", [](ConvertOptions& c) { c.steps = 0; }},
        {"--batch-size 0 ", [](ConvertOptions& c) { c.batch_size = 0; }},
        {"--lr nan ", [](ConvertOptions& c) { c.lr = std::nan(""); }},
        {"--max-protein-len 0 ", [](ConvertOptions& c) { c.max_protein_len = 0; }},
        {"--train ", [](ConvertOptions& c) { c.train_path = "/nonexistent.jsonl"; }},
    };
    for (auto& [expect, set] : convert_table) {
      CAPTURE(expect);
      ConvertOptions c = c0;
      set(c);
      CHECK_THROWS_WITH_AS(run_convert(c), doctest::Contains(expect), Error);
      CHECK(!fs::exists(c.output));
    }
  }

  TEST_CASE("the command line: bad values exit non-zero - naming the option - and write nothing") {
    TempDir td("validate_cli");
    std::string out = td.path("run");
    std::vector<std::pair<std::string, std::string>> tiny = {
        {"--train", sample()}, {"--out", out},          {"--device", "cpu"},     {"--steps", "1"},
        {"--batch-size", "6"}, {"--embed-dim", "16"},   {"--fusion-heads", "2"}, {"--text-hidden", "16"},
        {"--text-heads", "2"}, {"--text-layers", "1"}};
    std::vector<std::vector<std::string>> bad = {
        {"--fusion-heads", "0"}, {"--text-heads", "0"},     {"--log-every", "0"},  {"--max-protein-len", "0"},
        {"--eval-max-protein-len", "0"}, {"--max-protein-len", "-5"}, {"--text-heads", "3"},
        {"--text-layers", "1000000000000"}, {"--lr", "nan"}, {"--text-hidden", "0"}, {"--embed-dim", "0"},
        {"--grad-accum", "0"}};
    for (const auto& b : bad) {
      CAPTURE(b[0] + " " + b[1]);
      std::vector<std::string> args = {"train"};
      for (const auto& [opt, val] : tiny)
        if (opt != b[0]) args.insert(args.end(), {opt, val});
      args.insert(args.end(), b.begin(), b.end());
      CHECK(cli(args) != 0);
      CHECK(!fs::exists(out));
    }
    CHECK(cli({"eval", "--checkpoint", sample(), "--max-protein-len", "0"}) != 0);
  }
}
