#pragma once
// `protst embed`: vectors for proteins or texts, in input order, with their ids beside them.
//  - from a ProtST training checkpoint (--checkpoint): the L2-normalised joint-space embeddings;
//  - straight from a Hugging Face encoder folder (--protein-model EsmForMaskedLM / --text-model
//    BERT), the fair-esm extract.py use case: raw hidden states of chosen layers, the mean over
//    the sequence's tokens (<cls>/<eos>, [CLS]/[SEP] and padding excluded) and/or every token.
#include <cstdint>
#include <string>
#include <vector>

namespace pe {

struct EmbedOptions {
  std::string checkpoint;                     // ProtST training checkpoint, or
  std::string protein_model, text_model;      // a Hugging Face encoder folder
  std::string input, output, device = "auto";
  std::string kind = "auto";                  // protein | text | auto (by content: '>' starts FASTA)
  std::vector<std::string> include = {"mean"};  // encoder folders: mean and/or per_tok
  std::vector<int64_t> repr_layers = {-1};    // encoder folders: 0 = embeddings, n = after layer n, -1 = last
  int64_t batch_size = 64, max_protein_len = 1022, max_text_len = 128;
  bool progress = true;                       // progress line on stderr
};

// Output: .npy (one float32 [N, dim] array: one layer, mean only) or .safetensors (any choice:
// "mean.layer<L>" [N, dim], "per_tok.layer<L>" [tokens, dim] with "per_tok.offsets" i64 [N + 1]).
// The record ids go to <output without extension>.ids.txt, one per line in row order. Returns N.
int64_t run_embed(const EmbedOptions& o);

// Path of the ids file written beside `output`.
std::string embed_ids_path(const std::string& output);
// Minimal .npy (v1.0, little-endian float32, C order) writer, atomic.
void write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols);

}  // namespace pe
