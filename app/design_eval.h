#pragma once
// Evaluation of a design arm (text -> protein, issue #12) on held-out prompts, shared by the final
// evaluation of `protst train --task design` and `protst design --evaluate`.
//
// Prompts: the distinct texts of the held-out (test) pairs that are not the text of any training
// pair, in file order (the first `prompts`). For each prompt the decoder samples `per_prompt`
// proteins; next to them, three baselines with the same number per prompt:
//   random            residues drawn from the training residue frequencies, lengths from the
//                     training proteins (capped at the decoder's longest output, as trained);
//   nearest training  the training proteins of the training text closest to the prompt in the
//                     arm's own ProtST text space (cosine): retrieval instead of generation;
//   held-out natural  the held-out proteins whose text is the prompt (up to per_prompt; the
//                     real answers, never seen in training).
// Metrics (decoders/design_metrics.h): validity (standard residues, lengths and composition against
// the training proteins), diversity (mean pairwise global-alignment identity among one prompt's
// proteins), novelty (each protein's highest mmseqs identity to any training protein, hits covering
// >= 80 % of either protein, as the split search; needs mmseqs, else skipped with a message), and
// ProteinDT's retrieval share at T = 4 and 10: how often the judge ProtST model scores a protein's
// own prompt above T random other prompts of the evaluation.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/arms.h"
#include "data/records.h"

namespace pe {

struct DesignEvalOptions {
  int64_t prompts = 100;     // held-out prompts evaluated (0 = all that qualify)
  int64_t per_prompt = 4;    // sampled designs per prompt
  double temperature = 1.0;  // sampling of the designs
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> retrieval_T = {4, 10};
  // ProtST checkpoint that judges retrieval; "" = the ProtST model the arm was trained on. Use a
  // separately trained one (another seed) when generation was re-ranked by a contrastive model.
  std::string judge_checkpoint;
  // Folder of the GO dataset build that holds the mmseqs2 package (debs/ and root/); novelty is
  // skipped, with a message, when it holds none. Nothing is downloaded here.
  std::string mmseqs_cache = "datasets/go";
  int mmseqs_threads = 0;
  std::string out_dir;  // designs.fasta (all proteins of every method) and the mmseqs work folder
  int64_t max_protein_len = 1022, max_text_len = 128, batch_size = 16;
  Device device;
  bool progress = true;
};

// The arm under evaluation: its ProtST model (the encoder that reads the prompt), the tokenizer,
// the decoder, and the checkpoint path (named in the report).
struct DesignArm {
  ProtSTModel* model = nullptr;
  const BertTokenizer* tok = nullptr;
  const Decoder* decoder = nullptr;
  std::string checkpoint;
  ArmCondition condition = ArmCondition::Cross;  // what the decoder reads (imputed: from the prompt)
};

// Runs the evaluation, prints the table and returns the report (written into eval.json by the
// callers): {"prompts", "per_prompt", "judge", "methods": {name: {validity, diversity, novelty,
// retrieval}}, ...}.
nlohmann::json evaluate_designs(const DesignArm& arm, const std::vector<ProteinRecord>& train,
                                const std::vector<ProteinRecord>& test, const DesignEvalOptions& opt);

}  // namespace pe
