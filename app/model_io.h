#pragma once
// Self-contained training checkpoints: one safetensors file holding the model ("model/<name>"),
// the optimizer moments ("optim/<key>"), the text vocabulary ("text_vocab", UTF-8 bytes) and, in
// the metadata, the model configuration, the training progress and a CRC-32 of every tensor, and
// one of the metadata itself, so a damaged or edited file is detected rather than trusted. Written atomically (temporary file + rename).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/evaluate.h"
#include "autograd/optim.h"
#include "data/tokenizer_bert.h"
#include "models/protst.h"

namespace pe {

nlohmann::json protst_config_to_json(const ProtSTConfig& c);
ProtSTConfig protst_config_from_json(const nlohmann::json& j, const std::string& source);

struct TrainProgress {
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // epoch of the next batch
  int64_t batch_in_epoch = 0;  // index of the next batch within that epoch
  int64_t tokens = 0;          // real tokens consumed
  int64_t skipped_steps = 0;   // non-finite steps skipped
  double seconds = 0;          // wall time spent training
};

struct LoadedCheckpoint {
  std::string path;
  ProtSTConfig config;
  nlohmann::json meta;  // everything in the metadata (progress, train options, ...)
  TrainProgress progress;
  std::vector<std::string> vocab;
  std::map<std::string, Tensor> model, optim;
  // A generative arm trained on this ProtST model (`protst train --task describe|design`): its
  // tensors ("decoder/<name>") and, in meta["decoder"], its configuration and task. Empty otherwise.
  std::map<std::string, Tensor> decoder;
};

// `decoder`: the tensors of a generative arm, stored as "decoder/<name>" (empty for ProtST itself).
void save_checkpoint(const std::string& path, const ProtSTModel& model, const Adam* opt, const TrainProgress& prog,
                     const std::vector<std::string>& vocab, const nlohmann::json& extra_meta,
                     const std::vector<std::pair<std::string, Tensor>>& decoder = {});
// Writes a loaded (possibly edited) checkpoint back with fresh checksums; `meta` is taken as is
// (ck.progress and ck.config are not re-serialised). For tools and tests.
void write_checkpoint_file(const std::string& path, const LoadedCheckpoint& ck);
// Verifies every CRC (tensors, and the metadata with the tensor checksums); throws pe::Error naming
// the file (and tensor) when damaged, edited or malformed.
LoadedCheckpoint load_checkpoint_file(const std::string& path);
// Builds the model described by a checkpoint and fills its weights.
std::unique_ptr<ProtSTModel> model_from_checkpoint(const LoadedCheckpoint& ck, Device dev, DType dtype = DType::F32);
BertTokenizer tokenizer_from_checkpoint(const LoadedCheckpoint& ck);

// A trained model ready for inference (eval, embed, convert): checkpoint, model on the device,
// tokenizer, evaluation options.
struct OpenedModel {
  LoadedCheckpoint ck;
  std::unique_ptr<ProtSTModel> model;
  std::unique_ptr<BertTokenizer> tok;
  EvalOptions eo;
  int64_t max_text_len = 0;  // the request, capped by the text encoder's position table
};
OpenedModel open_model(const std::string& checkpoint, const std::string& device, int64_t batch_size,
                       int64_t max_protein_len, int64_t max_text_len);

// Checkpoints in `dir` named step-<N>.safetensors, newest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Keeps the newest `keep` checkpoints in dir, deleting older ones.
void prune_checkpoints(const std::string& dir, int64_t keep);

// Vocabulary lines of a vocab.txt.
std::vector<std::string> read_vocab_lines(const std::string& path);

}  // namespace pe
