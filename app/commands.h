#pragma once
// `protst eval | convert`: the subcommands that start from a training checkpoint.
#include <string>

#include "app/evaluate.h"

namespace pe {

struct EvalCommandOptions {
  std::string checkpoint, test_path, descriptions, zero_shot_prompts, zero_shot_data, device = "auto", json_out;
  int64_t batch_size = 64, max_protein_len = 1022, max_text_len = 128;
};
EvalReport run_eval(const EvalCommandOptions& o);

struct ConvertOptions {
  std::string checkpoint, train_path, test_path, descriptions, output, device = "auto";
  int64_t steps = 2000, batch_size = 256, max_protein_len = 1022, max_text_len = 128;
  double lr = 1e-3;
  uint64_t seed = 0;
};
// Stage two: trains the conversion MLPs on frozen-encoder embeddings; reports MSE and retrieval
// with imputed embeddings; writes a checkpoint holding them.
void run_convert(const ConvertOptions& o);

}  // namespace pe
