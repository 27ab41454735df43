#include "app/probe.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "app/dataset.h"
#include "app/device.h"
#include "app/model_io.h"
#include "app/plot.h"
#include "data/go_dataset.h"
#include "data/text_io.h"
#include "data/tokenizer_esm.h"
#include "probe/joint.h"
#include "probe/suite.h"
#include "probe/tasks.h"

namespace pe {

const char* const kProbeHelp =
    "Downstream function prediction on held-out clusters: frozen pooled embeddings -> predictors, with early,\n"
    "late (and unimodal) fusion side by side, CAFA metrics, mean ± std over --seeds.\n"
    "\n"
    "Tasks (--task, comma-separated; proteins from --go-pairs train.jsonl/test.jsonl, the cluster split of\n"
    "`protst dataset`; the run stops if any test protein shares an mmseqs cluster with a training protein):\n"
    "  go-mf, go-bp, go-cc   multi-label GO terms of one aspect (Swiss-Prot/GO, metastudent-data 2014) from the\n"
    "                        sequence alone; proteins without a term of the aspect are left out; label set =\n"
    "                        terms with >= --min-train-proteins training proteins\n"
    "  go-cc-multimodal      the go-cc labels from the sequence plus a text built only from the protein's MF and\n"
    "                        BP term names ('Molecular function: ... Biological process: ...'), never CC\n"
    "  files                 your task: --input FASTA or JSONL {id, seq[, text]} (text on every record makes it\n"
    "                        multimodal) and --labels TSV id<TAB>train|test|auto<TAB>label[;label...]; single-label\n"
    "                        (softmax) unless a row has several labels or --multi-label. Split 'auto': the\n"
    "                        proteins are clustered with mmseqs easy-linclust (>= 50 % identity over 80 %\n"
    "                        coverage; fetched into --go-cache) and whole clusters go to test (--test-fraction)\n"
    "Encoder rows: the --checkpoint (ProtST), --mlm-checkpoint (a model trained by masked LM only) when given,\n"
    "and the same architecture randomly initialised (off with --no-random-init). Features (--features):\n"
    "encoder (default) = each encoder's mean last hidden state (protein: over residues; text: over tokens\n"
    "other than [CLS]/[SEP]/[PAD]); joint = the L2-normalised joint-space vectors of `protst embed\n"
    "--checkpoint` (graph_mlp / text_mlp of those means). Standardised on the training rows.\n"
    "Predictors: label-frequency baseline (each term's training frequency); per encoder: seq linear probe,\n"
    "seq MLP (2 layers, --hidden); on multimodal tasks also text linear/MLP, early fusion MLP (Type II:\n"
    "[seq, text] concatenated), late fusion average (mean of the seq and text MLP probabilities) and late\n"
    "fusion stacking (a per-term aggregator of the two MLPs' logits, trained on --folds out-of-fold\n"
    "predictions of the training set). Multi-label: sigmoid + binary cross-entropy; single-label: softmax +\n"
    "cross-entropy; Adam, --epochs, --lr, L2 --weight-decay.\n"
    "Joint fusion (--joint, default; --no-joint): a copy of the ProtST model per seed fine-tuned end to end with\n"
    "the task loss: protein and text encoder states -> the model's cross-attention fusion block -> each side\n"
    "mean-pooled -> concatenated -> linear head; AdamW --joint-lr for head, projections and fusion, encoders at\n"
    "--joint-lr x --joint-encoder-lr-ratio (text encoder frozen when the checkpoint froze it), --joint-epochs,\n"
    "on at most --joint-max-train training proteins. Sequence-only tasks: 'seq fine-tuned' (the protein\n"
    "encoder fine-tuned on its pooled states; no fusion). ProtST row only unless --joint-all-encoders.\n"
    "Metrics: Fmax (CAFA protein-centric: thresholds 0.01..1.00 step 0.01; precision over proteins with a\n"
    "prediction, recall over annotated proteins), micro AUPR (average precision over all protein-term pairs),\n"
    "and for single-label tasks accuracy and macro-F1. Terms with no positive in test are counted and\n"
    "reported, never divided by. Output: <out>/<task>/probe.json, probe.md and probe.png (bar chart), <out>/probe.md.";

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt_secs(double s) {
  char b[32];
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

struct EncoderModel {
  std::string name, path;  // path: the checkpoint (for random init: the one whose config it copies)
  bool random = false;
  std::unique_ptr<ProtSTModel> model;
  std::unique_ptr<BertTokenizer> tok;
  EvalOptions eo;
  int64_t max_text_len = 0;
};

FeatureMatrix to_matrix(const std::vector<std::vector<float>>& rows) {
  FeatureMatrix m;
  m.rows = int64_t(rows.size());
  m.cols = rows.empty() ? 0 : int64_t(rows[0].size());
  m.v.reserve(size_t(m.rows * m.cols));
  for (const auto& r : rows) m.v.insert(m.v.end(), r.begin(), r.end());
  return m;
}

// Joint-space embeddings of proteins (kind = protein) or of texts (one row per text, in order).
FeatureMatrix embed_rows(EncoderModel& e, const std::vector<std::string>& ids, const std::vector<std::string>& bodies,
                         bool texts) {
  std::vector<ProteinRecord> recs(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    recs[i].id = ids[i];
    if (texts) {
      recs[i].seq = "A";  // placeholder protein; only the text side is read
      recs[i].text = bodies[i];
    } else {
      recs[i].seq = bodies[i];
    }
  }
  PairDataset ds = tokenize_pairs(recs, *e.tok, e.max_text_len);
  PE_CHECK(ds.items.size() == recs.size(), "probe: some sequences are empty");
  if (texts)
    for (size_t i = 0; i < ds.items.size(); ++i) ds.items[i].group = int64_t(i);
  // In blocks of 1,000 rows, with a progress line (each row's vector does not depend on its batch).
  const int64_t N = int64_t(ds.items.size()), block = 1000;
  std::vector<std::vector<float>> rows;
  rows.reserve(size_t(N));
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < N; s += block) {
    PairDataset part;
    part.items.assign(ds.items.begin() + s, ds.items.begin() + std::min(N, s + block));
    std::vector<std::vector<float>> P, T;
    std::vector<int64_t> g;
    embed_dataset(*e.model, part, *e.tok, e.eo, P, T, g);
    for (auto& r : texts ? T : P) rows.push_back(std::move(r));
    const double secs = since(t0), done = double(rows.size());
    std::fprintf(stderr, "\rprobe: %s %s features %zu/%lld, %s elapsed, ETA %s   %s", e.name.c_str(),
                 texts ? "text" : "protein", rows.size(), (long long)N, fmt_secs(secs).c_str(),
                 fmt_secs(secs / done * double(N - int64_t(rows.size()))).c_str(), int64_t(rows.size()) == N ? "\n" : "");
  }
  return to_matrix(rows);
}

ProbeLabels labels_of(const ProbeTask& t, const ProbeSide& s) {
  ProbeLabels l;
  l.n = s.size();
  l.k = int64_t(t.terms.size());
  l.multi_label = t.multi_label;
  l.y = s.labels;
  l.cls = s.classes;
  return l;
}

json rows_json(const std::vector<ProbeRow>& rows) {
  json a = json::array();
  for (const auto& r : rows) {
    json m = json::object();
    for (const auto& kv : r.metrics) {
      auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
      json vals = json::array();
      for (double v : kv.second.values) vals.push_back(num(v));
      m[kv.first] = {{"mean", num(kv.second.mean)}, {"std", num(kv.second.std)}, {"values", vals}};
    }
    a.push_back({{"encoder", r.encoder}, {"predictor", r.predictor}, {"metrics", m}, {"fmax_threshold_seed0", r.fmax_threshold}});
  }
  return a;
}

// Keeps at most n records (smallest stable hash of the id), input order kept.
void cap_records(std::vector<ProteinRecord>& recs, int64_t n) {
  if (n <= 0 || int64_t(recs.size()) <= n) return;
  keep_subset(recs, size_t(n));
}

// Tokenised proteins (first `max_len` residues) and, for a multimodal task, texts of one side.
JointInputs joint_inputs(const ProbeSide& side, bool multimodal, const BertTokenizer& tok, int64_t max_len,
                         int64_t max_text_len) {
  JointInputs x;
  x.text_pad = tok.pad_id();
  x.text_cls = tok.cls_id();
  x.text_sep = tok.sep_id();
  for (int64_t i = 0; i < side.size(); ++i) {
    std::vector<int32_t> ids = esm::encode(side.seqs[size_t(i)], size_t(max_len + 2));
    PE_CHECK(ids.size() > 2, "probe: protein ", side.ids[size_t(i)], " has no residues");
    x.residues.emplace_back(ids.begin() + 1, ids.end() - 1);
    if (multimodal) x.texts.push_back(tok.encode(side.texts[size_t(i)], size_t(max_text_len)));
  }
  return x;
}

// A fresh copy of an encoder row's model for one fine-tuning (the checkpoint re-read, or the same
// seed-0 random initialisation), with the text encoder frozen as the checkpoint says.
std::unique_ptr<ProtSTModel> fresh_model(const EncoderModel& e, const ProbeCommandOptions& o) {
  OpenedModel m = open_model(e.path, o.device, o.embed_batch_size, o.max_protein_len, o.max_text_len);
  if (!e.random) return std::move(m.model);
  Generator gen(0);
  auto r = std::make_unique<ProtSTModel>(m.ck.config, gen, InitSpec{DType::F32, m.eo.device});
  r->freeze_text_encoder(m.model->text_frozen());
  return r;
}

}  // namespace

void run_probe_command(const ProbeCommandOptions& o) {
  PE_CHECK(!o.checkpoint.empty(), "probe: --checkpoint (a ProtST training checkpoint) is required");
  PE_CHECK(!o.tasks.empty(), "probe: --task is empty");
  PE_CHECK(o.seeds >= 1 && o.seeds <= 100, "probe: --seeds must be in [1, 100], got ", o.seeds);
  PE_CHECK(o.epochs >= 1 && o.batch_size >= 1 && o.hidden >= 1 && o.folds >= 2, "probe: --epochs, --batch-size, "
           "--hidden must be >= 1 and --folds >= 2");
  PE_CHECK(o.features == "encoder" || o.features == "joint", "probe: --features is encoder or joint, got '", o.features, "'");
  PE_CHECK(o.lr > 0 && o.weight_decay >= 0, "probe: --lr must be > 0 and --weight-decay >= 0");
  PE_CHECK(o.joint_epochs >= 1 && o.joint_batch_size >= 1 && o.joint_lr > 0 && o.joint_encoder_lr_ratio >= 0 &&
               o.joint_weight_decay >= 0 && o.joint_max_train >= 0 && o.joint_max_protein_len >= 1,
           "probe: --joint-epochs, --joint-batch-size, --joint-max-protein-len must be >= 1, --joint-lr > 0, "
           "--joint-encoder-lr-ratio, --joint-weight-decay, --joint-max-train >= 0");
  const auto t_start = Clock::now();

  // ---- tasks
  std::vector<ProbeTask> tasks;
  std::vector<ClusterCheck> checks;
  bool need_go = false;
  for (const auto& t : o.tasks) {
    if (t == "files") continue;
    PE_CHECK(go_task_aspect(t) >= 0, "probe: unknown --task '", t, "' (go-mf, go-bp, go-cc, go-cc-multimodal, files)");
    need_go = true;
  }
  if (need_go) {
    ReadStats st_tr, st_te;
    std::vector<ProteinRecord> train = read_pairs(o.go_pairs + "/train.jsonl", "", st_tr);
    std::vector<ProteinRecord> test = read_pairs(o.go_pairs + "/test.jsonl", "", st_te);
    std::printf("probe: %s: %zu training and %zu test proteins\n", o.go_pairs.c_str(), train.size(), test.size());
    cap_records(train, o.max_train);
    if (o.max_train > 0) std::printf("probe: --max-train %lld: %zu training proteins kept\n", (long long)o.max_train, train.size());
    GoAnnotations go = read_go_annotations(go_annotation_dir(o.go_cache));
    const std::string clu = o.clusters.empty() ? o.go_cache + "/cluster-id0.5-c0.8/clu_cluster.tsv" : o.clusters;
    auto member_to_rep = read_clusters(clu);
    for (const auto& t : o.tasks) {
      if (t == "files") continue;
      ProbeTask task = build_go_task(t, train, test, go, o.min_train_proteins);
      ClusterCheck c = check_cluster_disjoint(task.train.ids, task.test.ids, member_to_rep);
      std::printf("probe: %s: %lld train, %lld test proteins, %zu terms (%s); %lld terms without a test positive; "
                  "cluster check (%s): %lld of %lld test proteins share a cluster with a training protein\n",
                  t.c_str(), (long long)task.train.size(), (long long)task.test.size(), task.terms.size(),
                  task.notes.c_str(), (long long)task.test_terms_without_positives, clu.c_str(),
                  (long long)c.test_sharing_cluster, (long long)c.test);
      PE_CHECK(c.missing == 0, "probe: ", c.missing, " proteins of ", t, " are not in the cluster table ", clu);
      PE_CHECK(c.test_sharing_cluster == 0, "probe: ", t, ": ", c.test_sharing_cluster,
               " test proteins share a cluster with a training protein, e.g. ", c.examples[0]);
      tasks.push_back(std::move(task));
      checks.push_back(c);
    }
  }
  if (std::find(o.tasks.begin(), o.tasks.end(), "files") != o.tasks.end()) {
    PE_CHECK(!o.input.empty() && !o.labels.empty(), "probe: --task files needs --input and --labels");
    ReadStats st;
    std::vector<ProteinRecord> recs = read_pairs(o.input, o.descriptions, st);
    std::printf("probe: %s: %s\n", o.input.c_str(), st.summary().c_str());
    // Rows with split "auto": whole mmseqs clusters of the input's proteins go to test (stable hash of
    // the representative), the rest to train, so no test protein shares a cluster with training.
    const std::vector<std::string> auto_ids = labels_auto_split_ids(o.labels);
    std::unordered_map<std::string, bool> auto_test;
    std::unordered_map<std::string, std::string> auto_clusters;
    if (!auto_ids.empty()) {
      PE_CHECK(o.test_fraction > 0 && o.test_fraction < 1, "probe: --test-fraction must be in (0, 1), got ", o.test_fraction);
      Mmseqs mm = prepare_mmseqs(o.go_cache);
      std::set<std::string> wanted(auto_ids.begin(), auto_ids.end());
      std::vector<ProteinRecord> to_cluster;
      for (const auto& r : recs)
        if (wanted.count(r.id)) to_cluster.push_back(r);
      std::printf("probe: files: %zu proteins with split 'auto': clustering with mmseqs easy-linclust (>= %.0f %% identity "
                  "over %.0f %% coverage), %.0f %% of the clusters to test\n", auto_ids.size(), 100 * o.split_min_seq_id,
                  100 * o.split_coverage, 100 * o.test_fraction);
      auto_clusters = linclust(mm, to_cluster, o.out + "/mmseqs-split", o.split_min_seq_id, o.split_coverage);
      for (const auto& id : auto_ids) {
        auto it = auto_clusters.find(id);
        PE_CHECK(it != auto_clusters.end(), "probe: ", o.labels, ": id '", id, "' (split auto) is not in the sequence file ",
                 o.input);
        auto_test[id] = is_test_cluster(it->second, o.test_fraction);
      }
    }
    ProbeTask task = build_file_task(recs, o.labels, o.multi_label, o.min_train_proteins, auto_ids.empty() ? nullptr : &auto_test);
    ClusterCheck c;
    if (!auto_ids.empty() && o.clusters.empty()) {
      // Over the clustered (auto) rows; rows with a given split are not in these clusters (counted missing).
      c = check_cluster_disjoint(task.train.ids, task.test.ids, auto_clusters);
      PE_CHECK(c.test_sharing_cluster == 0, "probe: files: ", c.test_sharing_cluster,
               " test proteins share a cluster with a training protein, e.g. ", c.examples[0]);
    }
    if (!o.clusters.empty()) {
      c = check_cluster_disjoint(task.train.ids, task.test.ids, read_clusters(o.clusters));
      PE_CHECK(c.test_sharing_cluster == 0, "probe: files: ", c.test_sharing_cluster,
               " test proteins share a cluster with a training protein, e.g. ", c.examples[0]);
    }
    std::printf("probe: files: %lld train, %lld test proteins, %s\n", (long long)task.train.size(),
                (long long)task.test.size(), task.notes.c_str());
    tasks.push_back(std::move(task));
    checks.push_back(c);
  }

  // ---- encoders
  std::vector<EncoderModel> encoders;
  auto open = [&](const std::string& name, const std::string& path, bool random) {
    OpenedModel m = open_model(path, o.device, o.embed_batch_size, o.max_protein_len, o.max_text_len);
    EncoderModel e;
    e.name = name;
    e.path = path;
    e.random = random;
    if (random) {
      Generator gen(0);
      e.model = std::make_unique<ProtSTModel>(m.ck.config, gen, InitSpec{DType::F32, m.eo.device});
      e.model->freeze_text_encoder(m.model->text_frozen());
    } else {
      e.model = std::move(m.model);
    }
    e.tok = std::move(m.tok);
    e.eo = m.eo;
    e.eo.pooled_encoder = o.features == "encoder";
    e.max_text_len = m.max_text_len;
    encoders.push_back(std::move(e));
  };
  open("ProtST", o.checkpoint, false);
  if (!o.mlm_checkpoint.empty()) open("MLM only", o.mlm_checkpoint, false);
  if (o.random_init) open("random init", o.checkpoint, true);
  std::printf("probe: device %s; encoders:", device_summary(encoders[0].eo.device).c_str());
  for (const auto& e : encoders) std::printf(" %s;", e.name.c_str());
  std::printf(" %lld seeds\n", (long long)o.seeds);

  // ---- features: every protein once per encoder (shared by the tasks), texts per task
  std::vector<std::vector<EncoderFeatures>> feats(tasks.size());
  for (auto& e : encoders) {
    std::vector<std::string> ids, seqs;
    std::map<std::string, int64_t> row;
    for (const auto& t : tasks)
      for (const ProbeSide* s : {&t.train, &t.test})
        for (int64_t i = 0; i < s->size(); ++i)
          if (row.emplace(s->ids[size_t(i)], int64_t(ids.size())).second) {
            ids.push_back(s->ids[size_t(i)]);
            seqs.push_back(s->seqs[size_t(i)]);
          }
    auto t0 = Clock::now();
    std::fprintf(stderr, "probe: embedding %zu proteins with the %s encoder ...\n", ids.size(), e.name.c_str());
    FeatureMatrix all = embed_rows(e, ids, seqs, false);
    std::fprintf(stderr, "probe: %s protein features (dimension %lld) in %s\n", e.name.c_str(), (long long)all.cols,
                 fmt_secs(since(t0)).c_str());
    for (size_t ti = 0; ti < tasks.size(); ++ti) {
      const ProbeTask& t = tasks[ti];
      EncoderFeatures f;
      f.name = e.name;
      auto pick = [&](const ProbeSide& s) {
        std::vector<int64_t> r;
        for (const auto& id : s.ids) r.push_back(row.at(id));
        return select_rows(all, r);
      };
      f.seq_train = pick(t.train);
      f.seq_test = pick(t.test);
      if (t.multimodal) {
        auto t1 = Clock::now();
        f.text_train = embed_rows(e, t.train.ids, t.train.texts, true);
        f.text_test = embed_rows(e, t.test.ids, t.test.texts, true);
        std::fprintf(stderr, "probe: %s text features for %s in %s\n", e.name.c_str(), t.name.c_str(),
                     fmt_secs(since(t1)).c_str());
      }
      feats[ti].push_back(std::move(f));
    }
  }

  // ---- predictors
  std::filesystem::create_directories(o.out);
  std::string all_md = "# protst probe\n\ncheckpoint: `" + o.checkpoint + "`" +
                       (o.mlm_checkpoint.empty() ? "" : ", MLM-only: `" + o.mlm_checkpoint + "`") + "; " +
                       std::to_string(o.seeds) + " seeds (mean ± sample std); features: " + o.features + "\n";
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    const ProbeTask& t = tasks[ti];
    ProbeRunOptions ro;
    ro.seeds.clear();
    for (int64_t s = 0; s < o.seeds; ++s) ro.seeds.push_back(uint64_t(s));
    ro.predictor.epochs = o.epochs;
    ro.predictor.batch_size = o.batch_size;
    ro.predictor.lr = o.lr;
    ro.predictor.weight_decay = o.weight_decay;
    ro.mlp_hidden = o.hidden;
    ro.stacking_folds = o.folds;
    auto t0 = Clock::now();
    auto last = t0 - std::chrono::seconds(10);
    ro.progress = [&](int64_t done, int64_t total, const std::string& what) {
      if (done < total && std::chrono::duration<double>(Clock::now() - last).count() < 1.0) return;
      last = Clock::now();
      double s = since(t0), eta = done > 0 ? s / double(done) * double(total - done) : 0;
      std::fprintf(stderr, "\rprobe %s: fit %lld/%lld (%s), %s elapsed, ETA %s        %s", t.name.c_str(),
                   (long long)done, (long long)total, what.c_str(), fmt_secs(s).c_str(), fmt_secs(eta).c_str(),
                   done == total ? "\n" : "");
    };
    const ProbeLabels train_labels = labels_of(t, t.train), test_labels = labels_of(t, t.test);
    std::vector<ProbeRow> rows = run_probe(train_labels, test_labels, feats[ti], ro);

    // ---- joint fusion: a fresh copy of the model per seed, fine-tuned end to end on the task
    json joint_json = json::object();
    std::string joint_note;
    if (o.joint) {
      const std::string pred = t.multimodal ? "joint fusion (fine-tuned)" : "seq fine-tuned";
      std::vector<int64_t> keep;  // training rows of the fine-tuning: a stable hash subset of at most N ids
      {
        std::vector<ProteinRecord> recs(size_t(t.train.size()));
        for (int64_t i = 0; i < t.train.size(); ++i) recs[size_t(i)].id = t.train.ids[size_t(i)];
        cap_records(recs, o.joint_max_train);
        std::map<std::string, int64_t> row;
        for (int64_t i = 0; i < t.train.size(); ++i) row[t.train.ids[size_t(i)]] = i;
        for (const auto& r : recs) keep.push_back(row.at(r.id));
      }
      const ProbeLabels jy = select_rows(train_labels, keep);
      JointOptions jo;
      jo.epochs = o.joint_epochs;
      jo.batch_size = o.joint_batch_size;
      jo.lr = o.joint_lr;
      jo.encoder_lr_ratio = o.joint_encoder_lr_ratio;
      jo.weight_decay = o.joint_weight_decay;
      std::vector<const EncoderModel*> jenc;
      for (const auto& e : encoders)
        if (o.joint_all_encoders || e.name == "ProtST") jenc.push_back(&e);
      const int64_t steps_per_fit = joint_fit_steps(int64_t(keep.size()), jo);
      const int64_t total = steps_per_fit * int64_t(jenc.size()) * o.seeds;
      int64_t before = 0;
      auto tj = Clock::now();
      auto lastj = tj - std::chrono::seconds(10);
      json fits = json::array();
      std::fprintf(stderr, "probe %s: %s on %zu training proteins, %lld epochs, %zu encoder(s) x %lld seeds ...\n",
                   t.name.c_str(), pred.c_str(), keep.size(), (long long)jo.epochs, jenc.size(), (long long)o.seeds);
      for (const EncoderModel* e : jenc) {
        const int64_t max_text = e->max_text_len;
        const JointInputs jx = select_rows(joint_inputs(t.train, t.multimodal, *e->tok, o.joint_max_protein_len, max_text), keep);
        const JointInputs jt = joint_inputs(t.test, t.multimodal, *e->tok, o.joint_max_protein_len, max_text);
        for (int64_t seed = 0; seed < o.seeds; ++seed) {
          std::unique_ptr<ProtSTModel> model = fresh_model(*e, o);
          jo.seed = uint64_t(seed);
          jo.progress = [&](int64_t done, int64_t) {
            const int64_t d = before + done;
            if (d < total && std::chrono::duration<double>(Clock::now() - lastj).count() < 1.0) return;
            lastj = Clock::now();
            const double s = since(tj), eta = s / double(d) * double(total - d);
            std::fprintf(stderr, "\rprobe %s: %s %s seed %lld, step %lld/%lld, %s elapsed, ETA %s        %s",
                         t.name.c_str(), e->name.c_str(), pred.c_str(), (long long)seed, (long long)d, (long long)total,
                         fmt_secs(s).c_str(), fmt_secs(eta).c_str(), d == total ? "\n" : "");
          };
          JointFitStats st;
          auto t1 = Clock::now();
          std::vector<double> p = joint_fit_predict(*model, jx, jy, jt, jo, &st);
          before += steps_per_fit;
          add_probe_scores(rows, e->name, pred, p, test_labels);
          fits.push_back({{"encoder", e->name}, {"seed", seed}, {"epoch_train_loss", st.epoch_loss}, {"steps", st.steps},
                          {"trained_tensors", st.trained_tensors}, {"trained_parameters", st.trained_numel},
                          {"seconds", since(t1)}});
        }
      }
      joint_json = {{"predictor", pred}, {"train_proteins", keep.size()}, {"epochs", jo.epochs},
                    {"batch_size", jo.batch_size}, {"lr", jo.lr}, {"encoder_lr_ratio", jo.encoder_lr_ratio},
                    {"weight_decay", jo.weight_decay}, {"max_protein_len", o.joint_max_protein_len},
                    {"text_encoder_frozen", encoders[0].model->text_frozen()}, {"seconds", since(tj)}, {"fits", fits}};
      char buf[400];
      std::snprintf(buf, sizeof buf,
                    " %s: %s, fine-tuned end to end on %zu training proteins (stable hash subset), %lld epochs, AdamW "
                    "lr %g (head, projections%s), encoders x %g%s.",
                    pred.c_str(),
                    t.multimodal ? "mean-pooled fused protein and text states of the model's cross-attention block -> linear head"
                                 : "mean-pooled protein encoder states -> linear head (encoder fine-tuning, no fusion)",
                    keep.size(), (long long)jo.epochs, jo.lr, t.multimodal ? ", fusion block" : "", jo.encoder_lr_ratio,
                    t.multimodal ? (encoders[0].model->text_frozen() ? "; text encoder frozen (as the checkpoint)" : "") : "");
      joint_note = buf;
    }
    const std::string md_table = probe_markdown_table(rows, !t.multi_label);
    std::string md = "## " + t.name + "\n\n" + t.notes + ". Train " + std::to_string(t.train.size()) + ", test " +
                     std::to_string(t.test.size()) + " proteins; " + std::to_string(t.terms.size()) + " " +
                     (t.multi_label ? "terms" : "classes") + ", " + std::to_string(t.test_terms_without_positives) +
                     " without a positive in test (kept: they add negatives to AUPR, never divide); cluster check: " +
                     std::to_string(checks[ti].test_sharing_cluster) + " of " + std::to_string(checks[ti].test) +
                     " test proteins share a cluster with training." + joint_note + "\n\n" + md_table;
    std::printf("\n%s\n", md.c_str());
    const std::string dir = o.out + "/" + t.name;
    std::filesystem::create_directories(dir);
    write_text_atomic(dir + "/probe.md", md);
    {
      std::vector<std::string> keys = {"fmax", "aupr"}, names = {"Fmax", "micro AUPR"};
      if (!t.multi_label) {
        keys.insert(keys.end(), {"accuracy", "macro_f1"});
        names.insert(names.end(), {"accuracy", "macro-F1"});
      }
      std::vector<BarRow> bars;
      std::map<std::string, std::size_t> colour;  // one colour per encoder row (baseline grey-ish first)
      for (const auto& r : rows) {
        BarRow b;
        b.label = r.label();
        b.color = colour.emplace(r.encoder, colour.size()).first->second;
        for (const auto& k : keys) {
          auto it = r.metrics.find(k);
          b.mean.push_back(it == r.metrics.end() ? std::nan("") : it->second.mean);
          b.err.push_back(it == r.metrics.end() ? 0.0 : it->second.std);
        }
        bars.push_back(std::move(b));
      }
      write_bar_chart_png(dir + "/probe.png", "protst probe " + t.name + ": mean +- std over " +
                          std::to_string(o.seeds) + " seeds", names, bars);
    }
    json j = {{"task", t.name},
              {"notes", t.notes},
              {"multi_label", t.multi_label},
              {"multimodal", t.multimodal},
              {"train_proteins", t.train.size()},
              {"test_proteins", t.test.size()},
              {"terms", t.terms.size()},
              {"candidate_terms", t.candidate_terms},
              {"min_train_proteins", t.min_train_proteins},
              {"test_terms_without_positives", t.test_terms_without_positives},
              {"dropped_train", t.dropped_train},
              {"dropped_test", t.dropped_test},
              {"cluster_check", {{"train", checks[ti].train}, {"test", checks[ti].test},
                                 {"test_sharing_cluster", checks[ti].test_sharing_cluster}}},
              {"checkpoint", o.checkpoint},
              {"mlm_checkpoint", o.mlm_checkpoint},
              {"seeds", o.seeds},
              {"features", o.features},
              {"predictor", {{"epochs", o.epochs}, {"batch_size", o.batch_size}, {"hidden", o.hidden}, {"lr", o.lr},
                             {"weight_decay", o.weight_decay}, {"stacking_folds", o.folds}}},
              {"joint", joint_json},
              {"seconds", since(t0)},
              {"rows", rows_json(rows)}};
    write_text_atomic(dir + "/probe.json", j.dump(2) + "\n");
    all_md += "\n" + md;
  }
  write_text_atomic(o.out + "/probe.md", all_md);
  std::printf("probe: wrote %s/probe.md and <task>/probe.{json,md} in %s\n", o.out.c_str(), fmt_secs(since(t_start)).c_str());
}

}  // namespace pe
