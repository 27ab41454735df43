#include "app/design_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "app/evaluate.h"
#include "app/model_io.h"
#include "autograd/graph.h"
#include "data/go_dataset.h"
#include "data/text_io.h"
#include "data/tokenizer_esm.h"
#include "decoders/design_metrics.h"
#include "decoders/generate.h"
#include "models/checkpoint.h"

namespace pe {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The proteins one method proposes: seqs[k] answers prompt prompt_of[k].
struct MethodOutput {
  std::string name, label;
  std::vector<std::string> seqs;
  std::vector<int64_t> prompt_of;
};

// Pairs of (text, residues) tokenised for a ProtST model: proteins keep their first max_len residues.
PairDataset as_pairs(const std::vector<std::string>& seqs, const std::vector<std::string>& texts,
                     const BertTokenizer& tok, int64_t max_text_len) {
  PairDataset ds;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Example e;
    e.id = std::to_string(i);
    std::vector<int32_t> p = esm::encode(seqs[i]);
    e.residues.assign(p.begin() + 1, p.end() - 1);
    e.text = tok.encode(texts.empty() ? std::string() : texts[i % texts.size()], size_t(max_text_len));
    e.group = int64_t(i);
    ds.items.push_back(std::move(e));
  }
  return ds;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += double(a[k]) * double(b[k]);
  return s;
}

// The mmseqs2 package of a GO dataset build, when its folder holds one (never downloads).
bool find_mmseqs(const std::string& cache, int threads, Mmseqs& mm, std::string& why) {
  const fs::path debs = fs::path(cache) / "debs";
  bool has_mmseqs = false, has_gz = false;
  std::error_code ec;
  if (fs::is_directory(debs, ec))
    for (const auto& e : fs::directory_iterator(debs, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("mmseqs2_", 0) == 0 && e.path().extension() == ".deb") has_mmseqs = true;
      if (n.rfind("libgzstream0_", 0) == 0 && e.path().extension() == ".deb") has_gz = true;
    }
  if (!has_mmseqs || !has_gz) {
    why = "no mmseqs2 and libgzstream0 packages in " + debs.string() +
          " (`protst dataset` puts them there; or `apt-get download mmseqs2 libgzstream0` into that folder, or "
          "point --go-cache at a dataset build)";
    return false;
  }
  try {
    mm = prepare_mmseqs(cache);
  } catch (const Error& e) {
    why = e.what();
    return false;
  }
  mm.threads = threads;
  return true;
}

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * x);
  return b;
}

}  // namespace

json evaluate_designs(const DesignArm& arm, const std::vector<ProteinRecord>& train,
                      const std::vector<ProteinRecord>& test, const DesignEvalOptions& opt) {
  PE_CHECK(arm.model && arm.tok && arm.decoder, "evaluate_designs: incomplete arm");
  PE_CHECK(opt.per_prompt >= 1, "design evaluation: designs per prompt must be at least 1 (got ", opt.per_prompt, ")");
  PE_CHECK(opt.prompts >= 0, "design evaluation: prompts must be >= 0 (got ", opt.prompts, ")");
  PE_CHECK(!train.empty(), "design evaluation: no training pairs (the prompts must not be training texts, and the "
                           "baselines draw on the training proteins)");
  const auto t_start = Clock::now();
  const Decoder& dec = *arm.decoder;
  const BertTokenizer& tok = *arm.tok;
  const int64_t max_design = dec.config().max_positions - 2;  // start and end take two positions

  // ---- prompts: distinct held-out texts that no training pair has
  std::unordered_set<std::string> train_texts;
  for (const ProteinRecord& r : train) train_texts.insert(r.text);
  std::vector<std::string> prompts;
  std::unordered_map<std::string, int64_t> prompt_index;
  std::vector<std::vector<std::string>> natural;  // held-out proteins of each prompt
  int64_t shared_with_train = 0;
  std::unordered_set<std::string> seen;
  for (const ProteinRecord& r : test) {
    if (train_texts.count(r.text)) {
      if (seen.insert(r.text).second) ++shared_with_train;
      continue;
    }
    auto it = prompt_index.find(r.text);
    if (it == prompt_index.end()) {
      if (opt.prompts > 0 && int64_t(prompts.size()) >= opt.prompts) continue;
      it = prompt_index.emplace(r.text, int64_t(prompts.size())).first;
      prompts.push_back(r.text);
      natural.emplace_back();
    }
    natural[size_t(it->second)].push_back(r.seq);
  }
  const int64_t M = int64_t(prompts.size());
  int64_t maxT = 0;
  for (int64_t T : opt.retrieval_T) maxT = std::max(maxT, T);
  PE_CHECK(M >= maxT + 1, "design evaluation: ", M, " held-out prompts whose text no training pair has (",
           shared_with_train, " distinct held-out texts are also training texts and are left out); retrieval at T = ",
           maxT, " needs at least ", maxT + 1);
  std::printf("design evaluation: %lld held-out prompts (distinct test texts that no training pair has; %lld test "
              "texts shared with training left out), %lld proteins per prompt and method\n",
              (long long)M, (long long)shared_with_train, (long long)opt.per_prompt);

  // ---- the decoder's designs: per_prompt samples per prompt
  MethodOutput designs{"decoder", "decoder (sample, t=" + std::to_string(opt.temperature).substr(0, 4) + ")", {}, {}};
  {
    GenerateOptions go;
    go.strategy = GenerateOptions::Strategy::Sample;
    arm_generation_tokens(ArmTask::Design, dec.config(), tok, go);
    go.max_new_tokens = dec.config().max_positions - 1;
    go.temperature = opt.temperature;
    go.top_p = opt.top_p;
    go.num_return = opt.per_prompt;
    go.seed = opt.seed;
    go.validate(dec.config().vocab_size);
    PairDataset pd;
    for (const std::string& p : prompts) {
      Example e;
      e.text = tok.encode(p, size_t(std::min(opt.max_text_len, arm.model->config().text.max_position_embeddings)));
      pd.items.push_back(std::move(e));
    }
    auto t0 = Clock::now();
    int64_t tokens = 0;
    for (int64_t i0 = 0; i0 < M; i0 += opt.batch_size) {
      std::vector<int64_t> idx;
      for (int64_t i = i0; i < std::min(M, i0 + opt.batch_size); ++i) idx.push_back(i);
      ArmBatch b =
          make_arm_batch(ArmTask::Design, arm.condition, *arm.model, pd, idx, opt.max_protein_len, tok, opt.device, false);
      auto session = dec.session(b.memory, b.memory_mask);
      auto out = generate(*session, go);
      for (size_t r = 0; r < idx.size(); ++r)
        for (const Generated& g : out[r]) {
          designs.seqs.push_back(arm_decode(ArmTask::Design, g.tokens, tok));
          designs.prompt_of.push_back(idx[r]);
          tokens += int64_t(g.tokens.size()) + 1;
        }
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (opt.progress)
        std::fprintf(stderr, "\rdesign evaluation: generating, %lld/%lld prompts, %.0f tokens/s   ",
                     (long long)std::min(M, i0 + opt.batch_size), (long long)M, s > 0 ? double(tokens) / s : 0.0);
    }
    if (opt.progress) std::fprintf(stderr, "\n");
  }

  // ---- baselines
  std::vector<std::string> train_seqs;  // as the decoder was trained: the first max_design residues
  std::vector<int64_t> train_lengths;
  for (const ProteinRecord& r : train) {
    train_seqs.push_back(r.seq.substr(0, size_t(std::max<int64_t>(0, max_design))));
    train_lengths.push_back(int64_t(train_seqs.back().size()));
  }
  MethodOutput random{"random", "random (data residues, lengths)", {}, {}};
  random.seqs = random_sequences(M * opt.per_prompt, residue_frequencies(train_seqs), train_lengths, opt.seed + 17);
  for (int64_t i = 0; i < M * opt.per_prompt; ++i) random.prompt_of.push_back(i / opt.per_prompt);

  MethodOutput nearest{"nearest_training", "nearest training text (ProtST)", {}, {}};
  {
    // Distinct training texts, embedded by the arm's ProtST model; each prompt takes the proteins of
    // the closest one.
    std::vector<std::string> texts;
    std::unordered_map<std::string, int64_t> text_id;
    std::vector<std::vector<int64_t>> members;
    for (size_t i = 0; i < train.size(); ++i) {
      auto [it, fresh] = text_id.emplace(train[i].text, int64_t(texts.size()));
      if (fresh) texts.push_back(train[i].text), members.emplace_back();
      members[size_t(it->second)].push_back(int64_t(i));
    }
    EvalOptions eo;
    eo.device = opt.device;
    eo.max_protein_len = opt.max_protein_len;
    eo.batch_size = std::max<int64_t>(opt.batch_size, 32);
    PairDataset tds = as_pairs(std::vector<std::string>(texts.size(), "M"), texts, tok,
                               std::min(opt.max_text_len, arm.model->config().text.max_position_embeddings));
    std::vector<int64_t> all(texts.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
    const auto te = embed_texts(*arm.model, tds, all, tok, eo);
    PairDataset pds = as_pairs(std::vector<std::string>(prompts.size(), "M"), prompts, tok,
                               std::min(opt.max_text_len, arm.model->config().text.max_position_embeddings));
    std::vector<int64_t> pall(prompts.size());
    for (size_t i = 0; i < pall.size(); ++i) pall[i] = int64_t(i);
    const auto pe_ = embed_texts(*arm.model, pds, pall, tok, eo);
    for (int64_t p = 0; p < M; ++p) {
      size_t best = 0;
      double bs = -1e300;
      for (size_t j = 0; j < te.size(); ++j) {
        const double s = cosine(pe_[size_t(p)], te[j]);
        if (s > bs) bs = s, best = j;
      }
      const auto& mem = members[best];
      for (int64_t k = 0; k < std::min<int64_t>(opt.per_prompt, int64_t(mem.size())); ++k) {
        nearest.seqs.push_back(train_seqs[size_t(mem[size_t(k)])]);
        nearest.prompt_of.push_back(p);
      }
    }
  }
  MethodOutput held_out{"held_out_natural", "held-out proteins of the prompt", {}, {}};
  for (int64_t p = 0; p < M; ++p)
    for (int64_t k = 0; k < std::min<int64_t>(opt.per_prompt, int64_t(natural[size_t(p)].size())); ++k) {
      held_out.seqs.push_back(natural[size_t(p)][size_t(k)].substr(0, size_t(std::max<int64_t>(0, max_design))));
      held_out.prompt_of.push_back(p);
    }
  std::vector<MethodOutput*> methods = {&designs, &random, &nearest, &held_out};

  // ---- every protein, for inspection
  if (!opt.out_dir.empty()) {
    TextWriter fa(opt.out_dir + "/designs.fasta");
    for (const MethodOutput* m : methods)
      for (size_t k = 0; k < m->seqs.size(); ++k) {
        fa.write_line(">" + m->name + "_" + std::to_string(k) + " prompt=" + std::to_string(m->prompt_of[k] + 1) +
                      " len=" + std::to_string(m->seqs[k].size()));
        fa.write_line(m->seqs[k]);
      }
    for (int64_t p = 0; p < M; ++p) fa.write_line("; prompt " + std::to_string(p + 1) + ": " + prompts[size_t(p)]);
    fa.close();
  }

  // ---- the judge
  std::unique_ptr<LoadedCheckpoint> judge_ck;
  std::unique_ptr<ProtSTModel> judge_model;
  std::unique_ptr<BertTokenizer> judge_tok;
  ProtSTModel* jm = arm.model;
  const BertTokenizer* jt = arm.tok;
  std::string judge_name = arm.checkpoint + " (the arm's own ProtST model)";
  if (!opt.judge_checkpoint.empty()) {
    judge_ck = std::make_unique<LoadedCheckpoint>(load_checkpoint_file(opt.judge_checkpoint));
    judge_model = model_from_checkpoint(*judge_ck, opt.device);
    judge_tok = std::make_unique<BertTokenizer>(tokenizer_from_checkpoint(*judge_ck));
    jm = judge_model.get();
    jt = judge_tok.get();
    judge_name = opt.judge_checkpoint;
  }
  std::printf("retrieval judge: %s\n", judge_name.c_str());
  EvalOptions jo;
  jo.device = opt.device;
  jo.max_protein_len = opt.max_protein_len;
  jo.batch_size = std::max<int64_t>(opt.batch_size, 32);
  const int64_t judge_text_len = std::min(opt.max_text_len, jm->config().text.max_position_embeddings);
  std::vector<std::vector<float>> prompt_emb;
  {
    PairDataset pds = as_pairs(std::vector<std::string>(prompts.size(), "M"), prompts, *jt, judge_text_len);
    std::vector<int64_t> all(prompts.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
    prompt_emb = embed_texts(*jm, pds, all, *jt, jo);
  }

  // ---- novelty: one mmseqs search of the designs and the held-out proteins against training
  Mmseqs mm;
  std::string no_mmseqs;
  const bool have_mmseqs = find_mmseqs(opt.mmseqs_cache, opt.mmseqs_threads, mm, no_mmseqs);
  std::map<std::string, std::unordered_map<std::string, TrainHit>> novelty_hits;
  if (have_mmseqs) {
    std::vector<ProteinRecord> queries;
    for (const MethodOutput* m : {&designs, &held_out})
      for (size_t k = 0; k < m->seqs.size(); ++k)
        if (!m->seqs[k].empty()) queries.push_back({m->name + "_" + std::to_string(k), m->seqs[k], "", 0});
    const std::string work =
        (fs::absolute(opt.out_dir.empty() ? fs::temp_directory_path() : fs::path(opt.out_dir)) / "novelty-search")
            .string();
    auto t0 = Clock::now();
    if (opt.progress)
      std::fprintf(stderr, "design evaluation: mmseqs easy-search of %zu proteins against %zu training proteins\n",
                   queries.size(), train.size());
    auto hits = best_train_hits(mm, train, queries, work, {0.8, 5.7, 10});
    fs::remove_all(work);
    for (auto& [id, h] : hits) novelty_hits[id.substr(0, id.rfind('_'))][id] = h;
    std::printf("novelty search (mmseqs %s, -s 5.7 -e 10, coverage >= 80%% of either protein): %.1f s\n",
                mm.version.c_str(), std::chrono::duration<double>(Clock::now() - t0).count());
  } else {
    std::printf("novelty: skipped — %s\n", no_mmseqs.c_str());
  }

  // ---- per method
  json report;
  report["prompts"] = M;
  report["prompts_shared_with_training_left_out"] = shared_with_train;
  report["per_prompt"] = opt.per_prompt;
  report["sampling"] = {{"strategy", "sample"}, {"temperature", opt.temperature}, {"top_p", opt.top_p}, {"seed", opt.seed}};
  report["judge"] = judge_name;
  report["max_design_length"] = max_design;
  report["novelty_search"] = have_mmseqs ? json("mmseqs easy-search -s 5.7 -e 10, hits covering >= 80% of either "
                                                "protein, fident (identical / alignment length)")
                                         : json("skipped: " + no_mmseqs);
  const Validity train_validity = validity(train_seqs, train_seqs);
  report["training_lengths"] = {{"mean", train_validity.lengths.mean}, {"median", train_validity.lengths.median},
                                {"p5", train_validity.lengths.p5}, {"p95", train_validity.lengths.p95}};
  json jm_methods = json::object();
  struct Row {
    std::string label;
    double valid, len_mean, len_ks, comp_tv, div;
    bool has_div;
    double nov_mean, nov_ge50, nov_nohit;
    bool has_nov;
    std::vector<double> ret;
    double own_cos;
    int64_t n;
  };
  std::vector<Row> rows;
  for (const MethodOutput* m : methods) {
    Row row{m->label, 0, 0, 0, 0, 0, false, 0, 0, 0, false, {}, 0, int64_t(m->seqs.size())};
    json mj;
    mj["proteins"] = m->seqs.size();
    if (m->seqs.empty()) {
      rows.push_back(row);
      jm_methods[m->name] = mj;
      continue;
    }
    const Validity v = validity(m->seqs, train_seqs);
    mj["validity"] = {{"standard_share", v.valid_share},
                      {"length", {{"mean", v.lengths.mean}, {"sd", v.lengths.sd}, {"min", v.lengths.min},
                                  {"p5", v.lengths.p5}, {"median", v.lengths.median}, {"p95", v.lengths.p95},
                                  {"max", v.lengths.max}}},
                      {"length_ks_vs_training", v.length_ks},
                      {"composition_tv_vs_training", v.composition_tv}};
    row.valid = v.valid_share, row.len_mean = v.lengths.mean, row.len_ks = v.length_ks, row.comp_tv = v.composition_tv;
    // Diversity: per prompt with >= 2 proteins, the mean pairwise identity; then the mean over prompts.
    {
      std::map<int64_t, std::vector<std::string>> by_prompt;
      for (size_t k = 0; k < m->seqs.size(); ++k) by_prompt[m->prompt_of[k]].push_back(m->seqs[k]);
      double sum = 0;
      int64_t n = 0;
      for (const auto& [p, s] : by_prompt)
        if (s.size() >= 2) sum += mean_pairwise_identity(s), ++n;
      if (n > 0) {
        row.has_div = true;
        row.div = sum / double(n);
        mj["diversity"] = {{"mean_pairwise_identity", row.div}, {"prompts", n},
                           {"alignment", "global, BLOSUM62, gap open 10 extend 0.5 (EMBOSS needle's defaults), "
                                         "end gaps penalised; identity = identical / columns"}};
      }
    }
    if (have_mmseqs && (m == &designs || m == &held_out)) {
      const auto& hits = novelty_hits[m->name];
      std::vector<ProteinRecord> recs;
      for (size_t k = 0; k < m->seqs.size(); ++k) recs.push_back({m->name + "_" + std::to_string(k), m->seqs[k], "", 0});
      const IdentityDistribution d = identity_distribution(recs, hits);
      double id_sum = 0;
      int64_t ge50 = 0;
      for (const auto& [id, h] : hits) {
        id_sum += h.identity;
        if (is_leaky(h, 0.5)) ++ge50;
      }
      row.has_nov = true;
      row.nov_mean = double(id_sum) / double(m->seqs.size());  // no hit counts as 0
      row.nov_ge50 = double(ge50) / double(m->seqs.size());
      row.nov_nohit = double(d.no_hit) / double(m->seqs.size());
      mj["novelty"] = json::parse(identity_distribution_json(d));
      mj["novelty"]["mean_highest_identity_no_hit_as_0"] = row.nov_mean;
      mj["novelty"]["share_at_least_50pct"] = row.nov_ge50;
    }
    // Retrieval: the judge's cosine of every protein against every prompt.
    {
      std::vector<std::string> nonempty;
      std::vector<size_t> where;
      for (size_t k = 0; k < m->seqs.size(); ++k)
        if (!m->seqs[k].empty()) nonempty.push_back(m->seqs[k]), where.push_back(k);
      PairDataset pds = as_pairs(nonempty, {}, *jt, judge_text_len);
      const auto emb = nonempty.empty() ? std::vector<std::vector<float>>{} : embed_proteins(*jm, pds, *jt, jo);
      // An empty protein cannot be embedded: it fails (its own prompt scores below every other).
      std::vector<std::vector<float>> scores(m->seqs.size(), std::vector<float>(size_t(M), 0.f));
      for (size_t k = 0; k < m->seqs.size(); ++k) scores[k][size_t(m->prompt_of[k])] = -2.f;
      double own = 0;
      for (size_t r = 0; r < where.size(); ++r) {
        const size_t k = where[r];
        for (int64_t p = 0; p < M; ++p) scores[k][size_t(p)] = float(cosine(emb[r], prompt_emb[size_t(p)]));
        own += scores[k][size_t(m->prompt_of[k])];
      }
      row.own_cos = where.empty() ? 0 : own / double(where.size());
      json rj = {{"mean_own_prompt_cosine", row.own_cos}};
      for (int64_t T : opt.retrieval_T) {
        const double s = retrieval_share(scores, m->prompt_of, T);
        row.ret.push_back(s);
        rj["T" + std::to_string(T)] = s;
      }
      mj["retrieval"] = rj;
    }
    jm_methods[m->name] = mj;
    rows.push_back(row);
  }
  report["methods"] = jm_methods;
  json chance = json::object();
  for (int64_t T : opt.retrieval_T) chance["T" + std::to_string(T)] = 1.0 / double(T + 1);
  report["retrieval_chance"] = chance;
  report["seconds"] = std::chrono::duration<double>(Clock::now() - t_start).count();

  // ---- the table
  std::printf("held-out design evaluation (%lld prompts x %lld; training proteins: mean length %.0f; judge %s):\n",
              (long long)M, (long long)opt.per_prompt, train_validity.lengths.mean,
              opt.judge_checkpoint.empty() ? "= the arm's ProtST" : "separate checkpoint");
  std::printf("  %-32s %6s %6s %8s %7s %7s %8s %8s %8s", "method", "n", "valid", "len", "len KS", "comp TV",
              "pair id", "max id", "id>=50%");
  for (int64_t T : opt.retrieval_T) std::printf("  ret T=%-3lld", (long long)T);
  std::printf(" own cos\n");
  for (const Row& r : rows) {
    if (r.n == 0) {
      std::printf("  %-32s %6lld (none)\n", r.label.c_str(), 0LL);
      continue;
    }
    char div[16] = "     -", nov[16] = "       -", ge[16] = "       -";
    if (r.has_div) std::snprintf(div, sizeof div, "%8.3f", r.div);
    if (r.has_nov) std::snprintf(nov, sizeof nov, "%8.3f", r.nov_mean), std::snprintf(ge, sizeof ge, "%8s", pct(r.nov_ge50).c_str());
    std::printf("  %-32s %6lld %6s %8.1f %7.3f %7.3f %8s %8s %8s", r.label.c_str(), (long long)r.n, pct(r.valid).c_str(),
                r.len_mean, r.len_ks, r.comp_tv, div, nov, ge);
    for (double s : r.ret) std::printf("  %9.3f", s);
    std::printf(" %7.3f\n", r.own_cos);
  }
  std::printf("  %-32s %6s %6s %8s %7s %7s %8s %8s %8s", "chance", "", "", "", "", "", "", "", "");
  for (int64_t T : opt.retrieval_T) std::printf("  %9.3f", 1.0 / double(T + 1));
  std::printf("\n  (valid: only the 20 standard residues; len KS / comp TV: lengths / residue composition against the "
              "training proteins; pair id: mean pairwise identity of one prompt's proteins; max id: mean highest "
              "mmseqs identity to training, no hit = 0; ret: ProteinDT retrieval share)\n");
  return report;
}

}  // namespace pe
