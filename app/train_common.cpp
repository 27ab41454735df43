#include "app/train_common.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/dataset_command.h"
#include "app/run_dir.h"
#include "core/error.h"
#include "data/go_dataset.h"
#include "models/checkpoint.h"

namespace pe {

void prepare_run_folder(const TrainOptions& o) {
  make_dirs(o.out);
  const std::string ckdir = o.out + "/checkpoints";
  for (const std::string& dir : {o.out, ckdir, o.out + "/final"})
    for (const std::string& f : remove_stale_temp_files(dir))
      std::printf("removed %s, left by an interrupted writer\n", f.c_str());
  if (!o.resume && run_folder_has_results(o.out)) {
    PE_CHECK(o.overwrite, "--no-resume: ", o.out,
             " already holds a run (checkpoints, metrics.jsonl, eval.json or final/); add --overwrite to delete "
             "them and start over, or choose another --out");
    clear_run_results(o.out);
    std::printf("--overwrite: deleted the earlier results in %s\n", o.out.c_str());
  }
  make_dirs(ckdir);
}

TrainingData resolve_training_data(const TrainOptions& o) {
  TrainingData d{o.train_path, o.test_path};
  if (o.go_dataset) {
    GoDatasetOptions g;
    g.cache_dir = o.go_cache;
    g.subset_train = size_t(o.go_subset_train);
    g.subset_test = size_t(o.go_subset_test);
    g.max_seq_len = size_t(o.go_max_len);
    g.split_identity = o.go_split_identity;
    g.split_coverage = o.go_split_coverage;
    GoDatasetResult r = build_go_dataset(g);
    std::printf("dataset: %s (%zu train / %zu test pairs%s)\n", r.out_dir.c_str(), r.train_pairs, r.test_pairs,
                r.cached ? ", cached" : "");
    std::printf("%s", split_filter_summary(r.manifest_path).c_str());
    write_split_histogram(r.manifest_path);
    d.train_path = r.train_path;
    d.test_path = r.test_path;
  }
  PE_CHECK(!d.train_path.empty(), "no training data: give --train FILE or --go-dataset");
  return d;
}

std::unique_ptr<LoadedCheckpoint> resume_newest_checkpoint(const std::string& ckdir,
                                                           const std::function<void(const LoadedCheckpoint&)>& use) {
  std::vector<std::string> candidates = list_checkpoints(ckdir);
  for (const std::string& path : candidates) {
    try {
      auto ck = std::make_unique<LoadedCheckpoint>(load_checkpoint_file(path));
      use(*ck);
      return ck;
    } catch (const std::exception& e) {
      std::printf("warning: cannot resume from %s, trying the next older checkpoint: %s\n", path.c_str(), e.what());
    }
  }
  PE_CHECK(candidates.empty(), "none of the ", candidates.size(), " checkpoints in ", ckdir,
           " can be resumed (reasons above); remove them, or start over with --no-resume --overwrite");
  return nullptr;
}

PairDataset load_pair_split(const std::string& path, const std::string& descriptions, const BertTokenizer& tok,
                            int64_t max_text, const char* what) {
  ReadStats st;
  std::vector<ProteinRecord> recs = read_pairs(path, descriptions, st);
  PairDataset ds = tokenize_pairs(recs, tok, max_text);
  ds.stats = st;
  std::printf("%s: %s: %s\n", what, path.c_str(), st.summary().c_str());
  for (size_t i = 0; i < st.examples.size() && i < 3; ++i) std::printf("  skipped: %s\n", st.examples[i].c_str());
  PE_CHECK(!ds.items.empty(), what, " set ", path, " holds no usable pairs");
  return ds;
}

std::string fmt_duration(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  int64_t t = int64_t(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

// Keeps metrics lines up to `step` (after a resume, lines past the checkpoint are replayed).
void truncate_metrics(const std::string& path, int64_t step) {
  using json = nlohmann::json;
  std::ifstream in(path);
  if (!in.good()) return;
  std::string keep, line;
  while (std::getline(in, line)) {
    try {
      if (json::parse(line).value("step", int64_t(0)) <= step) keep += line + "\n";
    } catch (const json::exception&) {
      // a torn last line from an interrupted run: drop it
    }
  }
  write_text_atomic(path, keep);
}


}  // namespace pe
