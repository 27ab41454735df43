#include "app/validate.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "app/device.h"
#include "core/error.h"
#include "data/text_io.h"
#include "models/config_json.h"

namespace pe {

void check_option_int(const char* option, int64_t v, int64_t lo, int64_t hi) {
  PE_CHECK(v >= lo && v <= hi, option, " ", v, " is out of range: it must be in [", lo, ", ", hi, "]");
}

void check_option_real(const char* option, double v, double lo, double hi, bool lo_open) {
  PE_CHECK(std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi, option, " ", v,
           " is out of range: it must be a finite number in ", lo_open ? "(" : "[", lo, ", ", hi, "]");
}

void check_option_choice(const char* option, const std::string& v, std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (v == c) return;
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  PE_FAIL(option, " '", v, "' is not one of: ", list);
}

void check_option_device(const std::string& device) {
  try {
    resolve_device(device);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("--device", 0) == 0) throw;
    PE_FAIL("--device '", device, "': ", what);
  }
}

std::string format_count(double n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", n);
  return buf;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (b >= 1024 && u < 6) b /= 1024, ++u;
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 6 ? "%.3g %s" : "%.1f %s", b, units[u]);
  return buf;
}

double approx_parameters(const ProtSTConfig& c) {
  double dp = double(c.protein.hidden_size), dt = double(c.text.hidden_size), e = double(c.embed_dim);
  double heads = 2 * (dp * dp + dp * e) + 2 * (dt * dt + dt * e);
  double fusion = double(c.fusion_layers) * (8 * e * e + 8 * e);
  double conversion = 4 * e * double(c.conversion_hidden);
  return c.protein.approx_parameters() + c.text.approx_parameters() + heads + fusion + conversion;
}

double physical_memory_bytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
}

EsmConfig protein_preset_config(const std::string& name) {
  EsmConfig c;
  auto set = [&](int64_t d, int64_t l, int64_t h) {
    c.hidden_size = d;
    c.num_layers = l;
    c.num_heads = h;
    c.intermediate_size = 4 * d;
  };
  if (name == "tiny") set(64, 2, 4);
  else if (name == "esm2_8m") set(320, 6, 20);
  else if (name == "esm2_35m") set(480, 12, 20);
  else if (name == "esm2_150m") set(640, 30, 20);
  else if (name == "esm2_650m") set(1280, 33, 20);
  else PE_FAIL("--protein-preset '", name, "' is not one of: tiny, esm2_8m, esm2_35m, esm2_150m, esm2_650m");
  return c;
}

namespace {

constexpr int64_t kMaxLen = int64_t(1) << 20;      // residues or tokens per sequence
constexpr int64_t kMaxBatch = int64_t(1) << 20;
constexpr int64_t kMaxCount = int64_t(1) << 40;    // steps, intervals, subsets

// A size option of the from-scratch text encoder: in range, and if not, the memory it would take.
void check_text_size(const char* option, int64_t v, int64_t lo, int64_t hi, const TrainOptions& o) {
  if (v >= lo && v <= hi) return;
  BertConfig t;
  t.vocab_size = o.text_vocab_size;
  t.hidden_size = o.text_hidden;
  t.num_layers = o.text_layers;
  t.intermediate_size = 4 * o.text_hidden;
  t.max_position_embeddings = std::max<int64_t>(o.max_text_len, 64);
  double params = t.approx_parameters();
  std::string need = v > hi && params > 0
                         ? " (that text encoder alone would hold " + format_count(params) + " parameters, " +
                               format_bytes(training_bytes(params)) + " for weights, gradients and Adam moments)"
                         : "";
  PE_FAIL(option, " ", v, " is out of range: it must be in [", lo, ", ", hi, "]", need);
}

void check_readable(const char* option, const std::string& path) {
  PE_CHECK(file_exists(path), option, " ", path, ": no such file (or not readable)");
}

}  // namespace

void validate_train_options(const TrainOptions& o) {
  // ---- data
  PE_CHECK(o.go_dataset || !o.train_path.empty(), "no training data: give --train FILE or --go-dataset");
  if (!o.go_dataset) {
    check_readable("--train", o.train_path);
    if (!o.test_path.empty()) check_readable("--test", o.test_path);
  }
  if (!o.descriptions.empty()) check_readable("--descriptions", o.descriptions);
  check_option_int("--go-subset-train", o.go_subset_train, 0, kMaxCount);
  check_option_int("--go-subset-test", o.go_subset_test, 0, kMaxCount);
  check_option_int("--go-max-len", o.go_max_len, 0, kMaxLen);
  check_option_real("--go-split-identity", o.go_split_identity, 0, 1);
  check_option_real("--go-split-coverage", o.go_split_coverage, 0, 1, /*lo_open=*/true);
  // ---- model (the configuration a fresh run builds; config.json errors name the file and field)
  ProtSTConfig cfg;
  cfg.protein = o.protein_model.empty() ? protein_preset_config(o.protein_preset)
                                        : EsmConfig::from_json_file(o.protein_model + "/config.json");
  if (!o.text_model.empty()) {
    cfg.text = BertConfig::from_json_file(o.text_model + "/config.json");
    check_readable("--text-model", o.text_model + "/vocab.txt");
  } else {
    if (!o.text_vocab.empty()) check_readable("--text-vocab", o.text_vocab);
    check_text_size("--text-vocab-size", o.text_vocab_size, 16, kMaxVocab, o);
    check_text_size("--text-layers", o.text_layers, 1, kMaxLayers, o);
    check_text_size("--text-hidden", o.text_hidden, 1, kMaxHidden, o);
    check_option_int("--text-heads", o.text_heads, 1, o.text_hidden);
    PE_CHECK(o.text_hidden % o.text_heads == 0, "--text-heads ", o.text_heads, " does not divide --text-hidden ",
             o.text_hidden, " (each head gets text-hidden / text-heads dimensions)");
  }
  check_option_int("--embed-dim", o.embed_dim, 1, kMaxHidden);
  check_option_int("--fusion-heads", o.fusion_heads, 1, o.embed_dim);
  PE_CHECK(o.embed_dim % o.fusion_heads == 0, "--fusion-heads ", o.fusion_heads, " does not divide --embed-dim ",
           o.embed_dim, " (each head gets embed-dim / fusion-heads dimensions)");
  check_option_int("--fusion-layers", o.fusion_layers, 0, kMaxLayers);
  if (o.text_model.empty()) {
    cfg.text.vocab_size = o.text_vocab_size;
    cfg.text.hidden_size = o.text_hidden;
    cfg.text.num_layers = o.text_layers;
    cfg.text.num_heads = o.text_heads;
    cfg.text.intermediate_size = 4 * o.text_hidden;
  }
  cfg.embed_dim = o.embed_dim;
  cfg.fusion_heads = o.fusion_heads;
  cfg.fusion_layers = o.fusion_layers;
  double params = approx_parameters(cfg), have = physical_memory_bytes();
  PE_CHECK(have == 0 || training_bytes(params) <= have, "the model these options describe would hold ", format_count(params),
           " parameters: training needs ", format_bytes(training_bytes(params)),
           " for weights, gradients and Adam moments, more than this machine's ", format_bytes(have),
           " of memory (see --protein-preset/--protein-model, --text-*, --embed-dim, --fusion-layers)");
  check_option_choice("--freeze-text", o.freeze_text, {"auto", "true", "false"});
  check_option_real("--w-mlm", o.w_mlm, 0, 1e6);
  check_option_real("--w-mmp", o.w_mmp, 0, 1e6);
  check_option_real("--w-contrastive", o.w_cl, 0, 1e6);
  // ---- optimisation
  check_option_real("--lr", o.lr, 0, 10, true);
  check_option_real("--protein-lr-ratio", o.protein_lr_ratio, 0, 1e3);
  check_option_real("--weight-decay", o.weight_decay, 0, 1e3);
  check_option_real("--clip", o.clip, 0, 1e12);
  check_option_real("--min-lr-ratio", o.min_lr_ratio, 0, 1);
  check_option_choice("--schedule", o.schedule, {"constant", "cosine"});
  check_option_int("--warmup", o.warmup, 0, kMaxCount);
  check_option_int("--grad-accum", o.grad_accum, 1, kMaxBatch);
  check_option_real("--bucket-mb", o.bucket_mb, 0, 1e6);
  check_option_int("--zero", o.zero, 0, 1);
  check_option_choice("--grad-comm", o.grad_comm, {"f32", "bf16"});
  PE_CHECK(o.grad_comm == "f32" || (o.bucket_mb > 0 && o.zero == 0),
           "--grad-comm bf16 applies to the gradient buckets: it needs --bucket-mb > 0 and cannot go with --zero 1");
  check_option_real("--collective-timeout", o.collective_timeout, 0, 1e7);
  check_option_int("--batch-size", o.batch_size, 1, kMaxBatch);
  check_option_int("--steps", o.steps, 0, kMaxCount);
  check_option_int("--epochs", o.epochs, o.steps == 0 ? 1 : 0, 1 << 20);
  check_option_choice("--contrastive-positives", o.contrastive_positives, {"same-text", "diagonal"});
  check_option_int("--max-protein-len", o.max_protein_len, 1, kMaxLen);
  check_option_int("--eval-max-protein-len", o.eval_max_protein_len, 1, kMaxLen);
  check_option_int("--max-text-len", o.max_text_len, 3, kMaxLen);  // [CLS], a token, [SEP]
  check_option_device(o.device);
  check_option_choice("--precision", o.precision, {"auto", "f32", "bf16", "f64"});
  // ---- bookkeeping
  PE_CHECK(!o.out.empty(), "--out must name a folder");
  PE_CHECK(!o.overwrite || !o.resume, "--overwrite deletes an earlier run's results and goes only with --no-resume");
  check_option_int("--save-every", o.save_every, 0, kMaxCount);
  check_option_int("--keep", o.keep, 1, 1 << 20);
  check_option_int("--eval-every", o.eval_every, 0, kMaxCount);
  check_option_int("--eval-subset", o.eval_subset, 0, kMaxCount);
  check_option_int("--log-every", o.log_every, 1, kMaxCount);
  check_option_int("--max-skipped-steps", o.max_skipped_steps, 1, kMaxCount);
  // ---- generative arms
  check_option_choice("--task", o.task, {"contrastive", "describe", "design"});
  if (o.task != "contrastive") {
    PE_CHECK(!o.from_checkpoint.empty(), "--task ", o.task,
             " trains a generative arm on a trained ProtST model: give its checkpoint with --from-checkpoint");
    check_readable("--from-checkpoint", o.from_checkpoint);
    check_option_int("--decoder-layers", o.decoder_layers, 1, 1024);
    check_option_int("--decoder-hidden", o.decoder_hidden, 1, 65536);
    check_option_int("--decoder-heads", o.decoder_heads, 1, o.decoder_hidden);
    PE_CHECK(o.decoder_hidden % o.decoder_heads == 0, "--decoder-hidden ", o.decoder_hidden,
             " is not a multiple of --decoder-heads ", o.decoder_heads);
    check_option_real("--encoder-lr-ratio", o.encoder_lr_ratio, 0, 1e3);
    check_option_choice("--condition", o.condition, {"cross", "prefix", "imputed"});
    check_option_int("--prefix-length", o.prefix_length, 1, 1024);
    PE_CHECK(o.condition != "imputed" || o.encoder_lr_ratio == 0, "--condition imputed trains the decoder on the "
             "missing side's real embedding, never on the encoder it reads at test time: --encoder-lr-ratio must be 0");
    check_option_int("--eval-generate", o.eval_generate, 0, kMaxCount);
  } else {
    PE_CHECK(o.from_checkpoint.empty(), "--from-checkpoint is for --task describe|design (ProtST pretraining "
             "resumes from --out, or starts from --protein-model / --text-model)");
  }
}

void validate_eval_options(const EvalCommandOptions& o) {
  check_readable("--checkpoint", o.checkpoint);
  if (!o.test_path.empty()) check_readable("--test", o.test_path);
  if (!o.descriptions.empty()) check_readable("--descriptions", o.descriptions);
  PE_CHECK(o.zero_shot_prompts.empty() || !o.zero_shot_data.empty(),
           "--zero-shot-prompts needs --zero-shot-data (pairs whose text is the label)");
  if (!o.zero_shot_prompts.empty()) check_readable("--zero-shot-prompts", o.zero_shot_prompts);
  if (!o.zero_shot_data.empty()) check_readable("--zero-shot-data", o.zero_shot_data);
  check_option_device(o.device);
  check_option_int("--batch-size", o.batch_size, 1, kMaxBatch);
  check_option_int("--max-protein-len", o.max_protein_len, 1, kMaxLen);
  check_option_int("--max-text-len", o.max_text_len, 3, kMaxLen);
}

void validate_convert_options(const ConvertOptions& o) {
  check_readable("--checkpoint", o.checkpoint);
  check_readable("--train", o.train_path);
  if (!o.test_path.empty()) check_readable("--test", o.test_path);
  if (!o.descriptions.empty()) check_readable("--descriptions", o.descriptions);
  PE_CHECK(!o.output.empty(), "--output must name a file");
  check_option_int("--steps", o.steps, 1, kMaxCount);
  check_option_int("--batch-size", o.batch_size, 1, kMaxBatch);
  check_option_real("--lr", o.lr, 0, 10, true);
  check_option_device(o.device);
  check_option_int("--max-protein-len", o.max_protein_len, 1, kMaxLen);
  check_option_int("--max-text-len", o.max_text_len, 3, kMaxLen);
}

}  // namespace pe
