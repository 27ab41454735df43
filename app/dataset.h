#pragma once
// Tokenised protein–text pairs, length-bucketed batches, masking and collation into ProtSTBatch.
//
// Sequence-length policy (documented in the README): training crops proteins longer than
// max_protein_len residues to a window at a uniformly random offset (ProtST crops to 450);
// evaluation and `embed` keep the first max_protein_len residues and count how many were cut.
// Texts longer than max_text_len tokens keep their first max_text_len - 1 tokens and [SEP].
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/records.h"
#include "data/tokenizer_bert.h"
#include "models/protst.h"

namespace pe {

struct Example {
  std::string id;
  std::vector<int32_t> residues;  // ESM ids of the residues only (no <cls>/<eos>)
  std::vector<int32_t> text;      // [CLS] ... [SEP]
  int64_t group = 0;              // equal for identical texts (multi-positive InfoNCE, retrieval)
};

struct PairDataset {
  std::vector<Example> items;
  ReadStats stats;
  int64_t truncated_texts = 0;
};

// Reads pairs by file type: *.jsonl(.gz) {id, seq, text}; *.dat(.gz) UniProt flat file;
// *.fasta/.fa(.gz) with `descriptions` (TSV or JSONL keyed by accession). Skips are counted.
std::vector<ProteinRecord> read_pairs(const std::string& path, const std::string& descriptions, ReadStats& stats);
// Texts of a record file (for training a WordPiece vocabulary).
PairDataset tokenize_pairs(const std::vector<ProteinRecord>& records, const BertTokenizer& tok, int64_t max_text_len);

struct BatchOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  int64_t bucket_batches = 50;  // sort by length within windows of this many batches
  bool drop_last = true;
  uint64_t seed = 0;
};
// Indices of the batches of one epoch: deterministic in (seed, epoch), so a resumed run replays it.
std::vector<std::vector<int64_t>> epoch_batches(const PairDataset& ds, int64_t epoch, const BatchOptions& opt);

struct CollateOptions {
  int64_t max_protein_len = 450;  // residues, excluding <cls>/<eos>
  bool random_crop = true;        // false: keep the first max_protein_len residues
  bool mask = true;
  bool bert_style_protein_mask = false;  // 80/10/10 instead of ProtST's all-<mask>
  double text_mask_prob = 0.15;
  double protein_mask_frac = 0.15;
  // InfoNCE positives: true (same-text, our default) makes every pair whose text is identical a
  // positive (pair_group = the text's group); false (diagonal, ProtST's targets) gives every row its
  // own group, so only the row's own text is positive and identical texts are negatives.
  bool same_text_positives = true;
};

struct CollateStats {
  int64_t residues = 0, text_tokens = 0, cropped = 0;
};

// Builds a padded, masked batch. `gen` drives crops and masks (derive it from the step for
// reproducibility).
ProtSTBatch collate(const PairDataset& ds, const std::vector<int64_t>& idx, const CollateOptions& opt,
                    const BertTokenizer& tok, Generator& gen, Device dev, CollateStats* stats = nullptr);

}  // namespace pe
