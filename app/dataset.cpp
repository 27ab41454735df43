#include "app/dataset.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "data/fasta.h"
#include "data/jsonl.h"
#include "data/tokenizer_esm.h"
#include "data/uniprot.h"

namespace pe {

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string strip_gz(const std::string& p) { return ends_with(p, ".gz") ? p.substr(0, p.size() - 3) : p; }
}  // namespace

std::vector<ProteinRecord> read_pairs(const std::string& path, const std::string& descriptions, ReadStats& stats) {
  std::string p = strip_gz(path);
  if (ends_with(p, ".jsonl") || ends_with(p, ".json")) return read_jsonl(path, {}, &stats);
  if (ends_with(p, ".dat") || ends_with(p, ".txt")) return read_uniprot(path, {}, &stats);
  if (ends_with(p, ".fasta") || ends_with(p, ".fa") || ends_with(p, ".faa")) {
    PE_CHECK(!descriptions.empty(), path, ": a FASTA file needs --descriptions (TSV or JSONL of accession -> text)");
    FastaOptions fo;
    fo.descriptions = descriptions;
    return read_fasta(path, fo, &stats);
  }
  PE_FAIL(path, ": unknown pair file type (expected .jsonl, .dat (UniProt) or .fasta with --descriptions; .gz allowed)");
}

PairDataset tokenize_pairs(const std::vector<ProteinRecord>& records, const BertTokenizer& tok, int64_t max_text_len) {
  PairDataset ds;
  std::unordered_map<std::string, int64_t> groups;
  for (const ProteinRecord& r : records) {
    Example e;
    e.id = r.id;
    std::vector<int32_t> p = esm::encode(r.seq);
    e.residues.assign(p.begin() + 1, p.end() - 1);
    std::vector<int32_t> full = tok.encode(r.text, 0);
    if (max_text_len > 0 && int64_t(full.size()) > max_text_len) {
      ++ds.truncated_texts;
      full.resize(size_t(max_text_len));
      full.back() = tok.sep_id();
    }
    e.text = std::move(full);
    auto it = groups.emplace(r.text, int64_t(groups.size())).first;
    e.group = it->second;
    if (e.residues.empty()) continue;
    ds.items.push_back(std::move(e));
  }
  return ds;
}

std::vector<std::vector<int64_t>> epoch_batches(const PairDataset& ds, int64_t epoch, const BatchOptions& opt) {
  int64_t n = int64_t(ds.items.size());
  PE_CHECK(opt.batch_size > 0, "batch size must be positive");
  Generator gen(opt.seed * 1000003ULL + uint64_t(epoch) * 7919ULL + 17ULL);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  if (opt.shuffle) order = gen.permutation(n);
  // Length buckets: sort windows of bucket_batches * batch_size by protein length so that a batch
  // holds similar lengths (less padding), then shuffle the batch order.
  int64_t window = std::max<int64_t>(1, opt.bucket_batches) * opt.batch_size;
  for (int64_t s = 0; s < n; s += window) {
    auto b = order.begin() + s, e = order.begin() + std::min(n, s + window);
    std::stable_sort(b, e, [&](int64_t x, int64_t y) { return ds.items[size_t(x)].residues.size() < ds.items[size_t(y)].residues.size(); });
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t s = 0; s < n; s += opt.batch_size) {
    if (opt.drop_last && s + opt.batch_size > n && s > 0) break;
    batches.emplace_back(order.begin() + s, order.begin() + std::min(n, s + opt.batch_size));
  }
  if (opt.shuffle) {
    std::vector<int64_t> perm = gen.permutation(int64_t(batches.size()));
    std::vector<std::vector<int64_t>> shuffled;
    for (int64_t i : perm) shuffled.push_back(std::move(batches[size_t(i)]));
    batches = std::move(shuffled);
  }
  return batches;
}

ProtSTBatch collate(const PairDataset& ds, const std::vector<int64_t>& idx, const CollateOptions& opt,
                    const BertTokenizer& tok, Generator& gen, Device dev, CollateStats* stats) {
  int64_t B = int64_t(idx.size());
  PE_CHECK(B > 0, "collate: empty batch");
  std::vector<std::vector<int32_t>> res(static_cast<size_t>(B));
  int64_t Lp = 0, Lt = 0;
  CollateStats st;
  for (int64_t b = 0; b < B; ++b) {
    const Example& e = ds.items[size_t(idx[size_t(b)])];
    int64_t n = int64_t(e.residues.size());
    int64_t keep = std::min(n, opt.max_protein_len);
    int64_t start = 0;
    if (keep < n) {
      ++st.cropped;
      if (opt.random_crop) start = gen.randint(0, n - keep + 1);
    }
    res[size_t(b)].assign(e.residues.begin() + start, e.residues.begin() + start + keep);
    Lp = std::max(Lp, keep + 2);
    Lt = std::max(Lt, int64_t(e.text.size()));
  }
  std::vector<int64_t> pid(size_t(B * Lp), esm::kPad), pmask(size_t(B * Lp), 0), rmask(size_t(B * Lp), 0);
  std::vector<int64_t> tid(size_t(B * Lt), tok.pad_id()), tmask(size_t(B * Lt), 0), wmask(size_t(B * Lt), 0);
  std::vector<int64_t> pmi, pmt, tmi, tmt, group(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t>& r = res[size_t(b)];
    int64_t n = int64_t(r.size());
    pid[size_t(b * Lp)] = esm::kCls;
    for (int64_t i = 0; i < n; ++i) pid[size_t(b * Lp + 1 + i)] = r[size_t(i)];
    pid[size_t(b * Lp + n + 1)] = esm::kEos;
    for (int64_t i = 0; i < n + 2; ++i) pmask[size_t(b * Lp + i)] = 1;
    for (int64_t i = 1; i <= n; ++i) rmask[size_t(b * Lp + i)] = 1;
    st.residues += n;
    if (opt.mask) {
      // ProtST: n_mask = max(1, floor(0.15 * len)) residues drawn uniformly without replacement.
      int64_t m = std::max<int64_t>(1, int64_t(std::floor(opt.protein_mask_frac * double(n))));
      std::vector<int64_t> perm = gen.permutation(n);
      std::sort(perm.begin(), perm.begin() + m);
      for (int64_t j = 0; j < m; ++j) {
        int64_t pos = b * Lp + 1 + perm[size_t(j)];
        pmi.push_back(pos);
        pmt.push_back(pid[size_t(pos)]);
        int64_t repl = esm::kMask;
        if (opt.bert_style_protein_mask) {
          double u = gen.uniform();
          if (u >= 0.8) repl = u < 0.9 ? int64_t(4 + gen.randint(0, 20)) : pid[size_t(pos)];  // 4..23: the 20 residues
        }
        pid[size_t(pos)] = repl;
      }
    }
    const Example& e = ds.items[size_t(idx[size_t(b)])];
    int64_t nt = int64_t(e.text.size());
    for (int64_t i = 0; i < nt; ++i) {
      int64_t id = e.text[size_t(i)];
      size_t at = size_t(b * Lt + i);
      tid[at] = id;
      tmask[at] = 1;
      bool special = id == tok.cls_id() || id == tok.sep_id() || id == tok.pad_id();
      wmask[at] = special ? 0 : 1;
      if (opt.mask && !special && gen.uniform() < opt.text_mask_prob) {
        tmi.push_back(int64_t(at));
        tmt.push_back(id);
        tid[at] = tok.mask_id();
      }
    }
    st.text_tokens += nt;
    group[size_t(b)] = opt.same_text_positives ? e.group : b;
  }
  ProtSTBatch out;
  out.protein_ids = Tensor::from_vector(pid, {B, Lp}, dev);
  out.protein_mask = Tensor::from_vector(pmask, {B, Lp}, dev);
  out.residue_mask = Tensor::from_vector(rmask, {B, Lp}, dev);
  out.protein_mlm_index = Tensor::from_vector(pmi, {int64_t(pmi.size())}, dev);
  out.protein_mlm_target = Tensor::from_vector(pmt, {int64_t(pmt.size())}, dev);
  out.text_ids = Tensor::from_vector(tid, {B, Lt}, dev);
  out.text_mask = Tensor::from_vector(tmask, {B, Lt}, dev);
  out.word_mask = Tensor::from_vector(wmask, {B, Lt}, dev);
  out.text_mlm_index = Tensor::from_vector(tmi, {int64_t(tmi.size())}, dev);
  out.text_mlm_target = Tensor::from_vector(tmt, {int64_t(tmt.size())}, dev);
  out.pair_group = Tensor::from_vector(group, {B}, dev);
  if (stats) *stats = st;
  return out;
}

}  // namespace pe
