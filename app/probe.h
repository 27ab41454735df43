#pragma once
// `protst probe`: downstream function prediction on held-out clusters (issue #13). Builds the tasks
// (probe/tasks.h), embeds their proteins (and texts) with each encoder row — the ProtST checkpoint,
// optionally an MLM-only checkpoint, and the same architecture randomly initialised — using the
// joint-space pooled embeddings of `protst embed --checkpoint` (embed_dataset), then runs every
// predictor of probe/suite.h over the seeds and writes, per task, <out>/<task>/probe.json and
// probe.md (rows predictors, columns metrics, mean ± std over seeds), and <out>/probe.md with all
// tasks. With --joint (default) each task also gets a joint fusion row per seed: the model's fused
// representation fine-tuned end to end with the task loss (probe/joint.h).
#include <cstdint>
#include <string>
#include <vector>

namespace pe {

struct ProbeCommandOptions {
  std::string checkpoint, mlm_checkpoint;
  bool random_init = true;                 // add the randomly initialised encoder row
  std::vector<std::string> tasks = {"go-cc-multimodal"};
  std::string go_pairs = "datasets/go/pairs_maxlen512_sub20000x1000_held50";  // train.jsonl + test.jsonl
  std::string go_cache = "datasets/go";    // metastudent-data annotations and the cluster table
  std::string clusters;                    // default <go_cache>/cluster-id0.5-c0.8/clu_cluster.tsv
  std::string input, labels, descriptions;  // --task files
  bool multi_label = false;                // --task files: force multi-label
  // --task files rows with split "auto": clustered by mmseqs easy-linclust (the split rule of `protst
  // dataset`: --split-min-seq-id 0.5, coverage 0.8), whole clusters to test by a stable hash of the
  // representative with probability --test-fraction.
  double test_fraction = 0.2, split_min_seq_id = 0.5, split_coverage = 0.8;
  int64_t min_train_proteins = 50;
  int64_t max_train = 0;                   // keep at most N training proteins (0 = all), by stable hash
  int64_t seeds = 3;
  int64_t epochs = 30, batch_size = 128, hidden = 256, folds = 5;
  double lr = 1e-3, weight_decay = 1e-4;
  std::string features = "encoder";        // encoder (pooled last hidden states) | joint (protst embed's vectors)
  // Joint fusion (probe/joint.h): a copy of the model per seed, fine-tuned end to end on the task.
  bool joint = true;
  bool joint_all_encoders = false;         // also MLM-only / random init (default: the ProtST row only)
  int64_t joint_epochs = 3, joint_batch_size = 32;
  double joint_lr = 1e-3, joint_encoder_lr_ratio = 0.1, joint_weight_decay = 1e-2;
  int64_t joint_max_train = 2000;          // training proteins for the fine-tuning (stable hash subset; 0 = all)
  int64_t joint_max_protein_len = 512;     // residues kept for fine-tuning and its predictions
  std::string out = "runs/probe", device = "auto";
  int64_t embed_batch_size = 64, max_protein_len = 1022, max_text_len = 128;
};

void run_probe_command(const ProbeCommandOptions& o);

// The --help text of `protst probe` (tasks, predictors, metrics).
extern const char* const kProbeHelp;

}  // namespace pe
