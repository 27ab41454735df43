#include "app/data_parallel.h"

#include <chrono>
#include <csignal>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dist/global_info_nce.h"

namespace pe {

namespace {
// The masked positions (flat b * L + l) of rows off .. off+R-1, re-based to the shard, with targets.
void shard_positions(const Tensor& index, const Tensor& target, int64_t L, int64_t off, int64_t R, Device dev,
                     Tensor& index_out, Tensor& target_out) {
  std::vector<int64_t> idx = index.to_int_vector(), tgt = target.to_int_vector(), si, st;
  for (size_t j = 0; j < idx.size(); ++j) {
    int64_t row = idx[j] / L;
    if (row < off || row >= off + R) continue;
    si.push_back(idx[j] - off * L);
    st.push_back(tgt[j]);
  }
  index_out = Tensor::from_vector(si, {int64_t(si.size())}, dev);
  target_out = Tensor::from_vector(st, {int64_t(st.size())}, dev);
}
}  // namespace

ProtSTBatch shard_batch(const ProtSTBatch& full, int64_t off, int64_t R, Device dev) {
  int64_t B = full.protein_ids.size(0);
  PE_CHECK(off >= 0 && R >= 0 && off + R <= B, "shard_batch: rows ", off, " .. ", off + R - 1, " outside a batch of ", B);
  auto rows = [&](const Tensor& t) { return t.narrow(0, off, R).contiguous().to(dev); };
  ProtSTBatch s;
  s.protein_ids = rows(full.protein_ids);
  s.protein_mask = rows(full.protein_mask);
  s.residue_mask = rows(full.residue_mask);
  s.text_ids = rows(full.text_ids);
  s.text_mask = rows(full.text_mask);
  s.word_mask = rows(full.word_mask);
  if (full.pair_group.defined()) s.pair_group = rows(full.pair_group);
  shard_positions(full.protein_mlm_index, full.protein_mlm_target, full.protein_ids.size(1), off, R, dev,
                  s.protein_mlm_index, s.protein_mlm_target);
  shard_positions(full.text_mlm_index, full.text_mlm_target, full.text_ids.size(1), off, R, dev, s.text_mlm_index,
                  s.text_mlm_target);
  return s;
}

DataParallelStep data_parallel_objective(dist::Communicator& comm, ProtSTModel& model, const ProtSTOutput& out,
                                         const ProtSTBatch& shard, const ProtSTBatch& full) {
  const ProtSTConfig& cfg = model.config();
  Tensor pn = l2_normalize(out.protein_embedding, -1), tn = l2_normalize(out.text_embedding, -1);
  dist::GlobalInfoNce cl = dist::global_info_nce(comm, pn, tn, model.params().get("logit_scale"),
                                                 cfg.logit_scale_max, shard.pair_group);
  // This rank's share of the masked positions (the masked means are over the whole batch's).
  auto share_of = [](const Tensor& mine, const Tensor& all) {
    return all.numel() ? double(mine.numel()) / double(all.numel()) : 0.0;
  };
  double a = share_of(shard.protein_mlm_index, full.protein_mlm_index);
  double c = share_of(shard.text_mlm_index, full.text_mlm_index);
  DataParallelStep r;
  r.share = add(add(mul(cl.loss, cfg.w_cl), mul(out.mlm, cfg.w_mlm * a)),
                mul(add(mul(out.mmp_protein, a), mul(out.mmp_text, c)), cfg.w_mmp));
  {
    NoGradGuard ng;
    std::vector<double> v = {a * out.mlm.item(),     a * out.mmp_protein.item(),     c * out.mmp_text.item(),
                             a * out.mlm_acc,        a * out.mmp_protein_acc,        c * out.mmp_text_acc};
    Tensor t = Tensor::from_vector(v, {int64_t(v.size())}).to(comm.device());
    comm.all_reduce(t, dist::Reduction::Sum);
    v = t.to_double_vector();
    r.parts[1] = cl.global_loss.item();
    r.parts[2] = cl.p2t.item();
    r.parts[3] = cl.t2p.item();
    r.parts[4] = v[0];
    r.parts[5] = v[1];
    r.parts[6] = v[2];
    r.parts[0] = cfg.w_cl * r.parts[1] + cfg.w_mlm * r.parts[4] + cfg.w_mmp * (r.parts[5] + r.parts[6]);
    r.logit_scale = cl.scale.item();
    r.accs[0] = v[3];
    r.accs[1] = v[4];
    r.accs[2] = v[5];
  }
  return r;
}

std::string train_options_text(const TrainOptions& o) {
  nlohmann::json j = {
      {"train_path", o.train_path}, {"test_path", o.test_path}, {"descriptions", o.descriptions},
      {"go_dataset", o.go_dataset}, {"go_cache", o.go_cache}, {"go_subset_train", o.go_subset_train},
      {"go_subset_test", o.go_subset_test}, {"go_max_len", o.go_max_len}, {"go_split_identity", o.go_split_identity},
      {"go_split_coverage", o.go_split_coverage}, {"protein_model", o.protein_model},
      {"protein_preset", o.protein_preset}, {"text_model", o.text_model}, {"text_vocab", o.text_vocab},
      {"text_vocab_size", o.text_vocab_size}, {"text_layers", o.text_layers}, {"text_hidden", o.text_hidden},
      {"text_heads", o.text_heads}, {"embed_dim", o.embed_dim}, {"fusion_heads", o.fusion_heads},
      {"fusion_layers", o.fusion_layers}, {"freeze_text", o.freeze_text}, {"w_mlm", o.w_mlm}, {"w_mmp", o.w_mmp},
      {"w_cl", o.w_cl}, {"local_batchnorm", o.local_batchnorm},
      {"bucket_mb", o.bucket_mb}, {"grad_comm", o.grad_comm}, {"zero", o.zero}, {"collective_timeout", o.collective_timeout}, {"lr", o.lr}, {"protein_lr_ratio", o.protein_lr_ratio},
      {"weight_decay", o.weight_decay}, {"clip", o.clip}, {"min_lr_ratio", o.min_lr_ratio}, {"adamw", o.adamw},
      {"schedule", o.schedule}, {"warmup", o.warmup}, {"grad_accum", o.grad_accum}, {"batch_size", o.batch_size},
      {"steps", o.steps}, {"epochs", o.epochs}, {"max_protein_len", o.max_protein_len},
      {"max_text_len", o.max_text_len}, {"eval_max_protein_len", o.eval_max_protein_len}, {"bert_mask", o.bert_mask},
      {"contrastive_positives", o.contrastive_positives}, {"seed", o.seed}, {"device", o.device},
      {"precision", o.precision}, {"out", o.out}, {"save_every", o.save_every}, {"keep", o.keep},
      {"eval_every", o.eval_every}, {"log_every", o.log_every}, {"max_skipped_steps", o.max_skipped_steps},
      {"resume", o.resume}, {"overwrite", o.overwrite}, {"eval_subset", o.eval_subset}, {"task", o.task},
      {"from_checkpoint", o.from_checkpoint}, {"decoder_layers", o.decoder_layers},
      {"decoder_hidden", o.decoder_hidden}, {"decoder_heads", o.decoder_heads},
      {"encoder_lr_ratio", o.encoder_lr_ratio}, {"eval_generate", o.eval_generate},
      {"eval_design_prompts", o.eval_design_prompts}, {"eval_design_per_prompt", o.eval_design_per_prompt},
      {"judge_checkpoint", o.judge_checkpoint}};
  return j.dump();
}

uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return 0;
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buf(size_t(1) << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i) {
      h ^= uint64_t((unsigned char)buf[size_t(i)]);
      h *= 1099511628211ULL;
    }
  }
  return h;
}

void check_same_configuration(dist::Communicator& comm, const TrainOptions& o) {
  const int W = comm.world_size();
  if (W <= 1) return;
  static const uint64_t exe = file_hash("/proc/self/exe");  // the binary does not change while it runs
  // TEST-ONLY (tests/dist/mpi_cli.sh exe-mismatch; never set in a real run): the rank named by
  // PE_TEST_EXE_HASH_RANK reports another executable hash, as if started with another binary.
  static const char* perturb = std::getenv("PE_TEST_EXE_HASH_RANK");
  const bool other_binary = perturb && *perturb && std::atoi(perturb) == comm.rank();
  std::vector<int64_t> mine = {int64_t(fnv1a64(train_options_text(o))), int64_t(other_binary ? ~exe : exe)};
  Tensor t = Tensor::from_vector(mine, {2}).to(comm.device());
  Tensor all = Tensor::empty({2 * int64_t(W)}, DType::I64, comm.device());
  comm.all_gather(t, all);
  std::vector<int64_t> h = all.to_int_vector();
  std::string diff;
  for (int r = 1; r < W; ++r) {
    bool opts = h[size_t(2 * r)] != h[0], bin = h[size_t(2 * r + 1)] != h[1];
    if (!opts && !bin) continue;
    char line[200];
    std::snprintf(line, sizeof line, "\n  rank %d/%d: %s%s%s", r, W, opts ? "other options" : "",
                  opts && bin ? " and " : "", bin ? "another executable (file hash differs)" : "");
    diff += line;
  }
  PE_CHECK(diff.empty(), "protst train: the ranks of this job do not run the same configuration as rank 0/", W, ":",
           diff, "\nevery rank must run the same protst binary with the same options (rank ", comm.rank(),
           "'s options: ", train_options_text(o), ")");
}

void test_fault_injection(int rank, int64_t step) {
  static const char* at = std::getenv("PE_TEST_FAIL_AT_STEP");
  if (!at || !*at) return;
  static const int64_t fail_step = std::atoll(at);
  static const int fail_rank = std::getenv("PE_TEST_FAIL_RANK") ? std::atoi(std::getenv("PE_TEST_FAIL_RANK")) : 1;
  static const std::string mode = std::getenv("PE_TEST_FAIL_MODE") ? std::getenv("PE_TEST_FAIL_MODE") : "throw";
  if (rank != fail_rank || step != fail_step) return;
  if (mode == "hang") {  // stops without failing: only a timeout can end the job
    std::fprintf(stderr, "protst: rank %d: PE_TEST_FAIL_MODE=hang at step %lld (test-only fault injection)\n", rank,
                 (long long)step);
    std::fflush(stderr);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (mode == "sigkill") {
    std::fprintf(stderr, "protst: rank %d: PE_TEST_FAIL_MODE=sigkill at step %lld (test-only fault injection)\n", rank,
                 (long long)step);
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
  PE_FAIL("test-only fault injection (PE_TEST_FAIL_AT_STEP=", fail_step, ") on rank ", rank, " at step ", step);
}

}  // namespace pe
