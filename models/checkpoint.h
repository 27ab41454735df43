#pragma once
// Safetensors <-> ParamStore. Loading is strict: a tensor of the model missing from the
// checkpoint, a checkpoint tensor of the wrong shape, or a checkpoint tensor nobody expects is an
// error naming it (tensors of known heads that the model does not use are listed as ignored).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/layers.h"

namespace pe {

struct LoadOptions {
  // Prefixes tried in order in front of our names (e.g. {"", "bert."} for BERT checkpoints).
  std::vector<std::string> prefixes = {""};
  // Checkpoint tensors matching any of these substrings are ignored (reported, not an error).
  std::vector<std::string> ignore = {};
  // Our tensors that may be absent from the checkpoint (they keep their initial values).
  std::vector<std::string> optional = {};
};

struct LoadReport {
  std::vector<std::string> loaded, ignored, kept_initial;
};

// Reads a tensor of any supported dtype as a CPU tensor of the same kind (F16 becomes F32).
Tensor read_tensor(const SafetensorsCheckpoint& ckpt, const std::string& name);

// Fills every tensor of `ps` from the checkpoint at `path` (file, folder or index), converting dtypes.
LoadReport load_checkpoint(ParamStore& ps, const std::string& path, const LoadOptions& opt = {});

// Writes the named tensors atomically; f64/f32/bf16/int tensors keep their dtype unless `as` is given.
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {}, const DType* as = nullptr);

// Every tensor of `ps` (buffers included) under its name with `prefix` removed from the front;
// entries not starting with `prefix` are skipped.
std::vector<std::pair<std::string, Tensor>> named_tensors(const ParamStore& ps, const std::string& prefix = "");

// Creates `dir` and its parents if missing; errors name the directory.
void make_dirs(const std::string& dir);

// Atomic text write (temporary file + rename) for config.json and friends.
void write_text_atomic(const std::string& path, const std::string& text);
std::string read_text_file(const std::string& path);

}  // namespace pe
