#pragma once
// Held-out evaluation: cross-modal retrieval (recall@1/10, MRR) next to chance, masked-prediction
// accuracies, and zero-shot classification from label prompts (ProtST's run_zero_shot).
#include <string>
#include <vector>

#include "app/dataset.h"

namespace pe {

struct RetrievalMetrics {
  int64_t queries = 0, candidates = 0;
  double recall1 = 0, recall10 = 0, mrr = 0;
  double chance_recall1 = 0, chance_recall10 = 0, chance_mrr = 0;
};

struct RetrievalResult {
  RetrievalMetrics p2t, t2p;
};

// p: [N, e] protein embeddings; t: [G, e] embeddings of the G distinct texts; group[i] in [0, G)
// is protein i's text. Cosine similarity. protein->text: each protein ranks the G texts and is
// correct on its own text (proteins sharing a text share it, so identical texts count as correct).
// text->protein: each distinct text ranks the N proteins; any protein with that text is correct.
// Rank = 1 + number of candidates scoring strictly higher than the best correct one.
RetrievalResult retrieval_metrics(const std::vector<std::vector<float>>& p, const std::vector<std::vector<float>>& t,
                                  const std::vector<int64_t>& group);

struct EvalOptions {
  int64_t batch_size = 64;
  int64_t max_protein_len = 1022;
  uint64_t seed = 1;  // masking of the MLM/MMP accuracy pass
  // embed_dataset: the encoders' pooled last hidden states (mean over residues / over tokens that are
  // not [CLS]/[SEP]/[PAD], as the projections read them), neither projected nor normalised, instead of
  // the L2-normalised joint-space embeddings (protst probe --features encoder).
  bool pooled_encoder = false;
  Device device;
};

struct EvalReport {
  RetrievalResult retrieval;
  int64_t proteins = 0, texts = 0, cropped = 0;
  double mlm_acc = 0, mmp_protein_acc = 0, mmp_text_acc = 0;
  double loss = 0;
  std::string summary() const;  // human-readable table
};

EvalReport evaluate(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok, const EvalOptions& opt);

// L2-normalised embeddings of every protein (input order) and of each distinct text group (or the
// pooled encoder states, opt.pooled_encoder).
void embed_dataset(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok, const EvalOptions& opt,
                   std::vector<std::vector<float>>& proteins, std::vector<std::vector<float>>& texts,
                   std::vector<int64_t>& group, int64_t* cropped = nullptr);

// The two halves of embed_dataset: every protein of ds (input order; proteins need at least one
// residue), and the texts of ds.items[items[k]] (row k).
std::vector<std::vector<float>> embed_proteins(ProtSTModel& model, const PairDataset& ds, const BertTokenizer& tok,
                                               const EvalOptions& opt, int64_t* cropped = nullptr);
std::vector<std::vector<float>> embed_texts(ProtSTModel& model, const PairDataset& ds, const std::vector<int64_t>& items,
                                            const BertTokenizer& tok, const EvalOptions& opt);

struct ZeroShotResult {
  int64_t examples = 0, labels = 0, correct = 0;
  double accuracy = 0, chance = 0;
};
// prompts: TSV "label<TAB>prompt"; data: pairs whose text field is the true label.
ZeroShotResult zero_shot(ProtSTModel& model, const BertTokenizer& tok, const std::string& prompts_tsv,
                         const PairDataset& data_with_labels, const std::vector<std::string>& labels_of_data,
                         const EvalOptions& opt, int64_t max_text_len = 512);

}  // namespace pe
