#include "decoders/generate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "autograd/graph.h"

namespace pe {

// ------------------------------------------------------------------------------ recompute session

namespace {

class RecomputeSession : public DecodeSession {
 public:
  RecomputeSession(const Decoder& dec, const Tensor& memory, const Tensor& memory_mask)
      : dec_(dec), memory_(memory.detach()), mask_(memory_mask.defined() ? memory_mask.detach() : Tensor()) {
    PE_CHECK(memory.dim() == 3, "decode session: memory must be [B, Lm, d], got ", memory.str());
    const int64_t B = memory.size(0);
    prefix_.assign(size_t(B), {});
    mem_row_.resize(size_t(B));
    std::iota(mem_row_.begin(), mem_row_.end(), 0);
  }
  int64_t rows() const override { return int64_t(prefix_.size()); }
  int64_t vocab_size() const override { return dec_.config().vocab_size; }

  std::vector<float> step(const std::vector<int64_t>& tokens) override {
    PE_CHECK(int64_t(tokens.size()) == rows(), "decode session: ", tokens.size(), " tokens for ", rows(), " rows");
    int64_t L = 0;
    for (size_t r = 0; r < prefix_.size(); ++r) {
      prefix_[r].push_back(tokens[r]);
      L = std::max<int64_t>(L, int64_t(prefix_[r].size()));
    }
    PE_CHECK(L <= dec_.config().max_positions, "decode: sequence of ", L, " tokens exceeds the decoder's ",
             dec_.config().max_positions, " positions (lower the maximum length)");
    const int64_t R = rows(), d = dec_.config().hidden_size;
    std::vector<int64_t> ids(static_cast<size_t>(R * L), dec_.config().pad_id), last(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) {
      std::copy(prefix_[size_t(r)].begin(), prefix_[size_t(r)].end(), ids.begin() + r * L);
      last[size_t(r)] = r * L + int64_t(prefix_[size_t(r)].size()) - 1;
    }
    NoGradGuard ng;
    const Device dev = memory_.device();
    Tensor rows_idx = Tensor::from_vector(mem_row_, {R}).to(dev);
    Tensor mem = index_select(memory_, 0, rows_idx);
    Tensor mask = mask_.defined() ? index_select(mask_, 0, rows_idx.to(mask_.device())) : Tensor();
    Tensor h = dec_.hidden(Tensor::from_vector(ids, {R, L}), mem, mask).reshape({R * L, d});
    h = index_select(h, 0, Tensor::from_vector(last, {R}).to(h.device()));
    return dec_.logits(h).to(Device::cpu()).to(DType::F32).contiguous().to_float_vector();
  }

  void reorder(const std::vector<int64_t>& parent) override {
    std::vector<std::vector<int64_t>> prefix;
    std::vector<int64_t> mem_row;
    for (int64_t p : parent) {
      PE_CHECK(p >= 0 && p < rows(), "decode session: reorder parent ", p, " outside [0, ", rows(), ")");
      prefix.push_back(prefix_[size_t(p)]);
      mem_row.push_back(mem_row_[size_t(p)]);
    }
    prefix_ = std::move(prefix);
    mem_row_ = std::move(mem_row);
  }

 private:
  const Decoder& dec_;
  Tensor memory_, mask_;
  std::vector<std::vector<int64_t>> prefix_;
  std::vector<int64_t> mem_row_;
};

}  // namespace

std::unique_ptr<DecodeSession> make_recompute_session(const Decoder& decoder, const Tensor& memory,
                                                      const Tensor& memory_mask) {
  return std::make_unique<RecomputeSession>(decoder, memory, memory_mask);
}

// ---------------------------------------------------------------------------------------- options

GenerateOptions::Strategy GenerateOptions::parse_strategy(const std::string& name) {
  if (name == "greedy") return Strategy::Greedy;
  if (name == "sample") return Strategy::Sample;
  if (name == "beam") return Strategy::Beam;
  PE_FAIL("--strategy ", name, ": expected greedy, sample or beam");
}

void GenerateOptions::validate(int64_t V) const {
  PE_CHECK(max_new_tokens >= 1 && max_new_tokens <= (int64_t(1) << 20), "--max-length ", max_new_tokens,
           ": must be at least 1");
  PE_CHECK(min_new_tokens >= 0 && min_new_tokens <= max_new_tokens, "--min-length ", min_new_tokens,
           ": must be in [0, max length ", max_new_tokens, "]");
  PE_CHECK(std::isfinite(temperature) && temperature > 0, "--temperature ", temperature, ": must be finite and > 0");
  PE_CHECK(top_k >= 0, "--top-k ", top_k, ": must be >= 0 (0 = no limit)");
  PE_CHECK(std::isfinite(top_p) && top_p > 0 && top_p <= 1, "--top-p ", top_p, ": must be in (0, 1]");
  PE_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0, "--repetition-penalty ", repetition_penalty,
           ": must be finite and > 0 (1 = none)");
  PE_CHECK(num_beams >= 1 && num_beams <= 1024, "--num-beams ", num_beams, ": must be in [1, 1024]");
  PE_CHECK(std::isfinite(length_penalty), "--length-penalty must be finite");
  PE_CHECK(num_return >= 1 && num_return <= 100000, "--num ", num_return, ": must be at least 1");
  PE_CHECK(strategy != Strategy::Greedy || num_return == 1,
           "--num ", num_return, ": greedy decoding gives one sequence per input (use sample or beam)");
  PE_CHECK(strategy != Strategy::Beam || num_return <= num_beams, "--num ", num_return, " exceeds --num-beams ",
           num_beams);
  PE_CHECK(bos_id >= 0 && bos_id < V && eos_id >= 0 && eos_id < V, "generate: start/end token ids ", bos_id, "/",
           eos_id, " outside the vocabulary of ", V);
  for (int64_t t : allowed) PE_CHECK(t >= 0 && t < V, "generate: allowed token ", t, " outside the vocabulary of ", V);
  for (int64_t t : banned) PE_CHECK(t >= 0 && t < V, "generate: banned token ", t, " outside the vocabulary of ", V);
}

// ----------------------------------------------------------------------------------------- search

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Applies repetition penalty, allowed/banned tokens and the minimum length to one row's logits.
struct Processor {
  const GenerateOptions& opt;
  int64_t V;
  std::vector<char> blocked;  // banned, or outside `allowed`
  Processor(const GenerateOptions& o, int64_t vocab) : opt(o), V(vocab), blocked(size_t(vocab), 0) {
    if (!o.allowed.empty()) {
      std::fill(blocked.begin(), blocked.end(), 1);
      for (int64_t t : o.allowed) blocked[size_t(t)] = 0;
    }
    for (int64_t t : o.banned) blocked[size_t(t)] = 1;
    blocked[size_t(o.eos_id)] = 0;  // the end token stays possible (the minimum length bars it early)
  }
  std::vector<double> operator()(const float* logits, const std::vector<int64_t>& history) const {
    std::vector<double> l(logits, logits + V);
    if (opt.repetition_penalty != 1.0) {
      std::set<int64_t> seen(history.begin(), history.end());
      for (int64_t t : seen) l[size_t(t)] = l[size_t(t)] > 0 ? l[size_t(t)] / opt.repetition_penalty
                                                             : l[size_t(t)] * opt.repetition_penalty;
    }
    for (int64_t t = 0; t < V; ++t)
      if (blocked[size_t(t)]) l[size_t(t)] = kNegInf;
    if (int64_t(history.size()) < opt.min_new_tokens) l[size_t(opt.eos_id)] = kNegInf;
    return l;
  }
};

void log_softmax_inplace(std::vector<double>& l) {
  double mx = *std::max_element(l.begin(), l.end());
  PE_CHECK(mx > kNegInf && std::isfinite(mx), "generate: every token is barred or a logit is not finite");
  double s = 0;
  for (double x : l) s += std::exp(x - mx);
  const double lse = mx + std::log(s);
  for (double& x : l) x -= lse;
}

int64_t argmax(const std::vector<double>& l) { return int64_t(std::max_element(l.begin(), l.end()) - l.begin()); }

// Uniform double in [0, 1) from 53 random bits (the same on every platform for a seed).
double uniform(std::mt19937_64& rng) { return double(rng() >> 11) * (1.0 / 9007199254740992.0); }

int64_t sample(std::vector<double> l, const GenerateOptions& opt, std::mt19937_64& rng) {
  for (double& x : l) x /= opt.temperature;
  log_softmax_inplace(l);
  std::vector<int64_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  // Most likely first; ties by token id so the order never depends on the sort's implementation.
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return l[size_t(a)] != l[size_t(b)] ? l[size_t(a)] > l[size_t(b)] : a < b;
  });
  size_t keep = order.size();
  if (opt.top_k > 0) keep = std::min(keep, size_t(opt.top_k));
  if (opt.top_p < 1.0) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += std::exp(l[size_t(order[i])]);
      if (cum >= opt.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += std::exp(l[size_t(order[i])]);
  double u = uniform(rng) * total, cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    const double p = std::exp(l[size_t(order[i])]);
    if (p == 0) break;  // barred tokens (probability 0) are never drawn
    cum += p;
    if (u < cum) return order[i];
  }
  return order[0];  // rounding at the top of the range
}

std::vector<std::vector<Generated>> generate_simple(DecodeSession& session, const GenerateOptions& opt) {
  const int64_t B = session.rows(), V = session.vocab_size(), n = opt.num_return, R = B * n;
  const bool sampling = opt.strategy == GenerateOptions::Strategy::Sample;
  if (n > 1) {
    std::vector<int64_t> parent;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t j = 0; j < n; ++j) parent.push_back(i);
    session.reorder(parent);
  }
  std::vector<std::mt19937_64> rngs;
  for (int64_t i = 0; i < B; ++i) {
    std::seed_seq seq{uint32_t(opt.seed), uint32_t(opt.seed >> 32), uint32_t(i), uint32_t(uint64_t(i) >> 32)};
    rngs.emplace_back(seq);
  }
  Processor proc(opt, V);
  std::vector<Generated> out(static_cast<size_t>(R));
  std::vector<char> done(static_cast<size_t>(R), 0);
  std::vector<int64_t> tokens(static_cast<size_t>(R), opt.bos_id);
  for (int64_t t = 0; t < opt.max_new_tokens; ++t) {
    std::vector<float> logits = session.step(tokens);
    PE_CHECK(int64_t(logits.size()) == R * V, "generate: the session returned ", logits.size(), " logits, expected ",
             R * V);
    bool all_done = true;
    for (int64_t r = 0; r < R; ++r) {
      if (done[size_t(r)]) {
        tokens[size_t(r)] = opt.eos_id;
        continue;
      }
      Generated& g = out[size_t(r)];
      std::vector<double> l = proc(logits.data() + r * V, g.tokens);
      int64_t tok;
      std::vector<double> lp = l;
      log_softmax_inplace(lp);
      // Rows of one input draw from that input's stream in row order: the result for a seed does not
      // depend on the other inputs of the batch.
      tok = sampling ? sample(l, opt, rngs[size_t(r / n)]) : argmax(lp);
      g.logprob += lp[size_t(tok)];
      tokens[size_t(r)] = tok;
      if (tok == opt.eos_id) {
        g.finished = true;
        done[size_t(r)] = 1;
      } else {
        g.tokens.push_back(tok);
        all_done = false;
      }
    }
    if (all_done) break;
  }
  std::vector<std::vector<Generated>> res(static_cast<size_t>(B));
  for (int64_t r = 0; r < R; ++r) {
    out[size_t(r)].score = out[size_t(r)].logprob;
    res[size_t(r / n)].push_back(std::move(out[size_t(r)]));
  }
  return res;
}

// Beam search as Hugging Face's (early_stopping=False): per input, num_beams live hypotheses; the
// 2 * num_beams best continuations of all of them are ranked, those ending in the end token (within
// the first num_beams ranks) are set aside as finished with score logprob / length^length_penalty, the
// best num_beams others continue. An input is done when it has num_beams finished hypotheses and the
// best live one, normalised at the current length, cannot beat the worst of them.
std::vector<std::vector<Generated>> generate_beam(DecodeSession& session, const GenerateOptions& opt) {
  const int64_t B = session.rows(), V = session.vocab_size(), nb = opt.num_beams, R = B * nb;
  {
    std::vector<int64_t> parent;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t j = 0; j < nb; ++j) parent.push_back(i);
    session.reorder(parent);
  }
  Processor proc(opt, V);
  struct Beam {
    std::vector<int64_t> tokens;
    double logprob = 0;
  };
  std::vector<Beam> beams(static_cast<size_t>(R));
  // Only the first beam of each input is live at the start, so the first step picks distinct tokens.
  for (int64_t r = 0; r < R; ++r) beams[size_t(r)].logprob = (r % nb == 0) ? 0.0 : kNegInf;
  std::vector<std::vector<Generated>> finished(static_cast<size_t>(B));
  std::vector<char> done(static_cast<size_t>(B), 0);
  auto norm = [&](double lp, size_t len) { return lp / std::pow(double(std::max<size_t>(len, 1)), opt.length_penalty); };
  auto worst = [&](const std::vector<Generated>& f) {
    double w = std::numeric_limits<double>::infinity();
    for (const Generated& g : f) w = std::min(w, g.score);
    return w;
  };
  auto add_finished = [&](int64_t i, Generated g) {
    auto& f = finished[size_t(i)];
    f.push_back(std::move(g));
    std::stable_sort(f.begin(), f.end(), [](const Generated& a, const Generated& b) { return a.score > b.score; });
    if (int64_t(f.size()) > nb) f.pop_back();
  };
  std::vector<int64_t> tokens(static_cast<size_t>(R), opt.bos_id);
  for (int64_t t = 0; t < opt.max_new_tokens; ++t) {
    std::vector<float> logits = session.step(tokens);
    PE_CHECK(int64_t(logits.size()) == R * V, "generate: the session returned ", logits.size(), " logits, expected ",
             R * V);
    std::vector<int64_t> parent(static_cast<size_t>(R));
    std::vector<Beam> next(static_cast<size_t>(R));
    bool all_done = true;
    for (int64_t i = 0; i < B; ++i) {
      if (done[size_t(i)]) {
        for (int64_t j = 0; j < nb; ++j) {
          parent[size_t(i * nb + j)] = i * nb + j;
          next[size_t(i * nb + j)].tokens.swap(beams[size_t(i * nb + j)].tokens);
          next[size_t(i * nb + j)].logprob = beams[size_t(i * nb + j)].logprob;
          tokens[size_t(i * nb + j)] = opt.eos_id;
        }
        continue;
      }
      struct Cand {
        double score;
        int64_t beam, token;
      };
      std::vector<Cand> cands;
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t r = i * nb + j;
        if (beams[size_t(r)].logprob == kNegInf) continue;
        std::vector<double> lp = proc(logits.data() + r * V, beams[size_t(r)].tokens);
        log_softmax_inplace(lp);
        std::vector<int64_t> order(static_cast<size_t>(V));
        std::iota(order.begin(), order.end(), 0);
        const size_t k = size_t(std::min<int64_t>(2 * nb, V));
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
          return lp[size_t(a)] != lp[size_t(b)] ? lp[size_t(a)] > lp[size_t(b)] : a < b;
        });
        for (size_t c = 0; c < k; ++c)
          if (lp[size_t(order[c])] > kNegInf)
            cands.push_back({beams[size_t(r)].logprob + lp[size_t(order[c])], r, order[c]});
      }
      std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
        return a.score != b.score ? a.score > b.score : (a.beam != b.beam ? a.beam < b.beam : a.token < b.token);
      });
      int64_t filled = 0;
      for (size_t c = 0; c < cands.size() && filled < nb; ++c) {
        const Cand& cd = cands[c];
        if (cd.token == opt.eos_id) {
          if (int64_t(c) >= nb) continue;  // an end beyond the first num_beams ranks is not taken
          Generated g;
          const std::vector<int64_t>& seq = beams[size_t(cd.beam)].tokens;
          g.tokens.assign(seq.begin(), seq.end());
          g.logprob = cd.score;
          g.score = norm(cd.score, g.tokens.size() + 1);
          g.finished = true;
          add_finished(i, std::move(g));
          continue;
        }
        const int64_t r = i * nb + filled;
        parent[size_t(r)] = cd.beam;
        const std::vector<int64_t>& from = beams[size_t(cd.beam)].tokens;
        next[size_t(r)].tokens.assign(from.begin(), from.end());
        next[size_t(r)].tokens.push_back(cd.token);
        next[size_t(r)].logprob = cd.score;
        tokens[size_t(r)] = cd.token;
        ++filled;
      }
      for (int64_t j = filled; j < nb; ++j) {  // fewer candidates than beams (a tiny allowed set)
        const int64_t r = i * nb + j;
        parent[size_t(r)] = i * nb;
        next[size_t(r)] = Beam{{}, kNegInf};
        tokens[size_t(r)] = opt.eos_id;
      }
      // Done when no live beam, normalised at its current length, can beat the worst finished one.
      const auto& f = finished[size_t(i)];
      double best_live = filled > 0 ? next[size_t(i * nb)].logprob : kNegInf;
      if (filled == 0 || (int64_t(f.size()) >= nb && norm(best_live, next[size_t(i * nb)].tokens.size()) <= worst(f)))
        done[size_t(i)] = 1;
      else
        all_done = false;
    }
    beams = std::move(next);
    session.reorder(parent);
    if (all_done) break;
  }
  std::vector<std::vector<Generated>> res(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    if (!done[size_t(i)])  // stopped at the maximum length: live beams compete unfinished
      for (int64_t j = 0; j < nb; ++j) {
        const Beam& b = beams[size_t(i * nb + j)];
        if (b.logprob == kNegInf) continue;
        Generated g;
        g.tokens.assign(b.tokens.begin(), b.tokens.end());
        g.logprob = b.logprob;
        g.score = norm(b.logprob, b.tokens.size());
        add_finished(i, std::move(g));
      }
    auto& f = finished[size_t(i)];
    f.resize(std::min<size_t>(f.size(), size_t(opt.num_return)));
    res[size_t(i)] = std::move(f);
  }
  return res;
}

}  // namespace

std::vector<std::vector<Generated>> generate(DecodeSession& session, const GenerateOptions& opt) {
  opt.validate(session.vocab_size());
  if (opt.strategy == GenerateOptions::Strategy::Beam) return generate_beam(session, opt);
  return generate_simple(session, opt);
}

}  // namespace pe
