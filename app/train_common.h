#pragma once
// What the training commands share (`protst train` for ProtST and for the generative arms): the
// run folder's preparation, the training/test data (GO dataset or files), and reading one split.
#include <functional>
#include <memory>
#include <string>

#include "app/dataset.h"
#include "app/model_io.h"
#include "app/train.h"

namespace pe {

// Creates <out> and <out>/checkpoints, removes temporary files of dead writers and, with
// resume = false, refuses a folder holding results unless overwrite (which then clears them).
// Call with the RunLock held.
void prepare_run_folder(const TrainOptions& o);

struct TrainingData {
  std::string train_path, test_path;
};
// The files to train and test on: --train/--test, or the GO dataset built (or reused) from Debian's
// metastudent-data with the cluster split (printing its summary).
TrainingData resolve_training_data(const TrainOptions& o);

// Reads and tokenises one split, printing the reader's summary and the first skipped records;
// refuses a split with no usable pair.
PairDataset load_pair_split(const std::string& path, const std::string& descriptions, const BertTokenizer& tok,
                            int64_t max_text, const char* what);

// Resume: the checkpoints of <out>/checkpoints newest first, each loaded and handed to `use` (which
// builds the model from it); any failure (damage, an edit, malformed metadata, a configuration that
// cannot be built) falls back to the next older one with a warning. Returns the checkpoint used, or
// null when the folder holds none; throws when it holds some and none can be used.
std::unique_ptr<LoadedCheckpoint> resume_newest_checkpoint(const std::string& ckdir,
                                                           const std::function<void(const LoadedCheckpoint&)>& use);

// "1h05m" / "3m07s" ("?" when unknown), for ETAs.
std::string fmt_duration(double seconds);
// Keeps metrics.jsonl lines up to `step` (after a resume, lines past the checkpoint are replayed).
void truncate_metrics(const std::string& path, int64_t step);

}  // namespace pe
