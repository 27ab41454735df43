#pragma once
// The generative arms on top of a trained ProtST model (issue #12), shared by `protst train --task
// describe|design` and the `describe` / `design` commands:
//   describe: protein -> text. The decoder reads the protein encoder's last hidden states (cross-
//             attention) and writes the description in the text tokenizer's WordPiece vocabulary,
//             [CLS] as the start token and [SEP] as the end.
//   design:   text -> protein. The decoder reads the text encoder's last hidden states and writes a
//             sequence in the ESM alphabet, <cls> as the start and <eos> as the end; generation is
//             restricted to the 20 standard amino acids.
// What the decoder reads (ArmCondition, `--condition`):
//   cross    the conditioning encoder's last hidden states, by cross-attention (the default);
//   prefix   a prefix projected from the conditioning side's pooled ProtST joint-space embedding
//            (L2-normalised): describe reads the protein's, design the text's;
//   imputed  a prefix projected from the *missing* side's joint-space embedding, as the conversion
//            MLP imputes it (SPEC §2: it imputes the missing modality's embedding so that what
//            follows works when only a protein or only a text is given). describe: the text is
//            missing, so the decoder reads a text-space embedding, trained on the real text's and
//            fed at test time protein_to_text(protein embedding); design: the protein is missing,
//            so it reads a protein-space embedding, trained on the real protein's and fed
//            text_to_protein(text embedding). Needs a checkpoint written by `protst convert`.
#include <memory>
#include <string>
#include <vector>

#include "app/dataset.h"
#include "app/model_io.h"
#include "decoders/decoder.h"

namespace pe {

enum class ArmTask { Describe, Design };
ArmTask parse_arm_task(const std::string& name);  // describe | design
const char* arm_task_name(ArmTask t);

enum class ArmCondition { Cross, Prefix, Imputed };
ArmCondition parse_arm_condition(const std::string& name);  // cross | prefix | imputed
const char* arm_condition_name(ArmCondition c);

struct ArmSizes {
  int64_t layers = 2, hidden = 256, heads = 4;
  int64_t max_positions = 512;
  ArmCondition condition = ArmCondition::Cross;
  int64_t prefix_length = 8;  // prefix vectors (prefix and imputed conditions)
};
// The decoder of an arm: vocabulary and special tokens from the task, memory width from the encoder.
DecoderConfig arm_decoder_config(ArmTask task, const ProtSTModel& model, const BertTokenizer& tok, const ArmSizes& s);

struct ArmBatch {
  Tensor memory, memory_mask;  // [B, Lm, dm], [B, Lm] on the device
  Tensor targets;              // i64 [B, Lt] start ... end, right-padded (CPU)
  int64_t target_tokens = 0;   // real target tokens after the start token
  int64_t source_tokens = 0;   // real tokens read by the encoder
};
// Builds a batch of examples idx: the conditioning side is encoded by the ProtST encoder (no graph
// when encoder_grad is false). Proteins keep their first max_protein_len residues; texts are already
// capped by tokenisation. The memory is what `condition` reads (see above): hidden states [B, L, d]
// with their mask, or one L2-normalised joint-space embedding per row [B, 1, e] without a mask.
// Imputed: the embedding the conversion MLP imputes from the conditioning side, or with real_target
// the real target's own embedding (what the decoder trains on; at evaluation, the oracle).
ArmBatch make_arm_batch(ArmTask task, ArmCondition condition, const ProtSTModel& model, const PairDataset& ds,
                        const std::vector<int64_t>& idx, int64_t max_protein_len, const BertTokenizer& tok, Device dev,
                        bool encoder_grad, bool real_target = false);

// The target sequence (without start and end) of example `e` as the decoder's ids, for references.
std::vector<int64_t> arm_target(ArmTask task, const Example& e, int64_t max_protein_len);
// Decoder ids -> text (describe: WordPiece detokenised; design: residue letters).
std::string arm_decode(ArmTask task, const std::vector<int64_t>& ids, const BertTokenizer& tok);

// Search settings every arm needs: start/end ids, special tokens barred, and (design) only the 20
// standard amino acids allowed.
struct GenerateOptions;
void arm_generation_tokens(ArmTask task, const DecoderConfig& cfg, const BertTokenizer& tok, GenerateOptions& opt);

// The decoder stored in a checkpoint written by `protst train --task ...` (meta["decoder"]).
struct LoadedArm {
  ArmTask task;
  ArmCondition condition = ArmCondition::Cross;  // meta["decoder"]["condition"]; absent: cross
  std::unique_ptr<Decoder> decoder;
};
LoadedArm arm_from_checkpoint(const LoadedCheckpoint& ck, Device dev);

}  // namespace pe

namespace pe {

// `protst describe` (proteins -> descriptions, JSONL) and `protst design` (prompts -> proteins, FASTA).
struct ArmGenerateOptions {
  std::string checkpoint, input, output, device = "auto";
  std::string strategy = "greedy";  // greedy | sample | beam
  int64_t max_length = 0;           // generated tokens at most (0: what the decoder's positions allow)
  int64_t min_length = 0;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0, length_penalty = 1.0;
  int64_t top_k = 0, num_beams = 4, num = 1, batch_size = 16;
  uint64_t seed = 0;
  int64_t max_protein_len = 1022, max_text_len = 128;
  bool progress = true;
  // design --evaluate (app/design_eval.h): held-out prompts from --test whose text no --train pair
  // has, --num designs each; the report goes to --output (JSON), the proteins next to it.
  bool evaluate = false;
  std::string train, test, descriptions, judge_checkpoint, go_cache = "datasets/go";
  int64_t eval_prompts = 100;
};
// Generates for every input record of `path`; returns the number of sequences written.
int64_t run_arm_generation(ArmTask task, const ArmGenerateOptions& o);
// `protst design --evaluate`: evaluate_designs on a design checkpoint; writes the JSON report to
// o.output and designs.fasta beside it.
void run_design_evaluation(const ArmGenerateOptions& o);

}  // namespace pe
