// The generative arms' decoder (decoders/decoder.h) and search (decoders/generate.h): causality,
// conditioning, float64 gradients, learning a conditioned task, and each search strategy against
// hand-built models whose best sequences are known.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <random>

#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "autograd/optim.h"
#include "decoders/decoder.h"
#include "decoders/generate.h"
#include "tests/common/compare.h"

using namespace pe;
using pe::testing::rel_err;

namespace {

DecoderConfig tiny_decoder(int64_t vocab = 11, int64_t memory_dim = 6) {
  DecoderConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.intermediate_size = 24;
  c.max_positions = 16;
  c.memory_dim = memory_dim;
  c.bos_id = 1;
  c.eos_id = 2;
  c.pad_id = 0;
  return c;
}

// A session over a fixed table: the next-token log-probabilities depend only on the previous token
// (a first-order Markov model), so the probability of every sequence is known.
class MarkovSession : public DecodeSession {
 public:
  MarkovSession(std::vector<std::vector<double>> logp, int64_t rows) : logp_(std::move(logp)), last_(size_t(rows), -1) {}
  int64_t rows() const override { return int64_t(last_.size()); }
  int64_t vocab_size() const override { return int64_t(logp_.size()); }
  std::vector<float> step(const std::vector<int64_t>& tokens) override {
    std::vector<float> out;
    for (size_t r = 0; r < tokens.size(); ++r) {
      last_[r] = tokens[r];
      for (double x : logp_[size_t(tokens[r])]) out.push_back(float(x));
    }
    ++steps;
    return out;
  }
  void reorder(const std::vector<int64_t>& parent) override {
    std::vector<int64_t> l;
    for (int64_t p : parent) l.push_back(last_[size_t(p)]);
    last_ = l;
  }
  int steps = 0;

 private:
  std::vector<std::vector<double>> logp_;
  std::vector<int64_t> last_;
};

std::vector<double> logs(std::vector<double> p) {
  for (double& x : p) x = x > 0 ? std::log(x) : -1e30;
  return p;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("causal attention reference equals explicit loops in float64") {
    Generator gen(3);
    const int64_t B = 2, Lq = 3, Lk = 5, H = 2, D = 4;
    Tensor q = randn({B, Lq, H, D}, gen, DType::F64), k = randn({B, Lk, H, D}, gen, DType::F64),
           v = randn({B, Lk, H, D}, gen, DType::F64);
    Tensor o = attention_reference(q, k, v, Tensor(), 0.5, /*causal=*/true);
    std::vector<double> Q = q.to_double_vector(), K = k.to_double_vector(), V = v.to_double_vector(),
                        O = o.to_double_vector();
    double worst = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < Lq; ++i) {
          const int64_t last = i + Lk - Lq;  // bottom-right aligned
          std::vector<double> s;
          double mx = -1e300;
          for (int64_t j = 0; j <= last; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d)
              dot += Q[size_t(((b * Lq + i) * H + h) * D + d)] * K[size_t(((b * Lk + j) * H + h) * D + d)];
            s.push_back(0.5 * dot);
            mx = std::max(mx, 0.5 * dot);
          }
          double z = 0;
          for (double& x : s) z += (x = std::exp(x - mx));
          for (int64_t d = 0; d < D; ++d) {
            double acc = 0;
            for (int64_t j = 0; j <= last; ++j) acc += s[size_t(j)] / z * V[size_t(((b * Lk + j) * H + h) * D + d)];
            worst = std::max(worst, std::abs(acc - O[size_t(((b * Lq + i) * H + h) * D + d)]));
          }
        }
    CHECK(worst < 1e-13);
  }

  TEST_CASE("decoder is causal and reads its memory but not padded memory rows") {
    Generator gen(4);
    Decoder dec(tiny_decoder(), gen, {DType::F64, Device::cpu()});
    const int64_t B = 2, L = 6, Lm = 3;
    Tensor mem = randn({B, Lm, 6}, gen, DType::F64);
    Tensor mmask = Tensor::from_vector(std::vector<int64_t>{1, 1, 0, 1, 1, 1}, {B, Lm});
    std::vector<int64_t> ids = {1, 5, 7, 3, 9, 4, 1, 8, 8, 6, 2, 0};
    Tensor h = dec.hidden(Tensor::from_vector(ids, {B, L}), mem, mmask);
    // Changing token 3 of row 0 leaves positions 0..2 unchanged and changes position 3.
    std::vector<int64_t> ids2 = ids;
    ids2[3] = 10;
    Tensor h2 = dec.hidden(Tensor::from_vector(ids2, {B, L}), mem, mmask);
    CHECK(rel_err(h2.narrow(1, 0, 3), h.narrow(1, 0, 3)) == 0.0);
    CHECK(rel_err(h2.narrow(1, 3, 1), h.narrow(1, 3, 1)) > 1e-6);
    CHECK(rel_err(h2.select(0, 1), h.select(0, 1)) == 0.0);  // rows are independent
    // Row 0's third memory row is padding: changing it changes nothing; changing a real one does.
    std::vector<double> m = mem.to_double_vector();
    for (int64_t c = 0; c < 6; ++c) m[size_t(2 * 6 + c)] += 3.0;
    Tensor h3 = dec.hidden(Tensor::from_vector(ids, {B, L}), Tensor::from_vector(m, {B, Lm, 6}), mmask);
    CHECK(rel_err(h3, h) < 1e-15);
    for (int64_t c = 0; c < 6; ++c) m[size_t(0 * 6 + c)] += 3.0;
    Tensor h4 = dec.hidden(Tensor::from_vector(ids, {B, L}), Tensor::from_vector(m, {B, Lm, 6}), mmask);
    CHECK(rel_err(h4.select(0, 0), h.select(0, 0)) > 1e-6);
    // Padding a row on the right does not change its real positions' hidden states.
    Tensor short_ids = Tensor::from_vector(std::vector<int64_t>{1, 8, 8, 6}, {1, 4});
    Tensor hs = dec.hidden(short_ids, mem.narrow(0, 1, 1).contiguous(), mmask.narrow(0, 1, 1).contiguous());
    CHECK(rel_err(hs, h.narrow(0, 1, 1).narrow(1, 0, 4)) < 1e-14);
  }

  TEST_CASE("KV-cached decoding equals full recomputation at every step - with reorders - in float64") {
    Generator gen(21);
    DecoderConfig cfg = tiny_decoder();
    cfg.max_positions = 80;  // past the cache's first capacity (64): the growth is exercised
    Decoder dec(cfg, gen, {DType::F64, Device::cpu()});
    const int64_t B = 3, Lm = 4;
    Tensor mem = randn({B, Lm, 6}, gen, DType::F64);
    Tensor mmask = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1}, {B, Lm});
    auto cached = dec.session(mem, mmask);
    auto full = make_recompute_session(dec, mem, mmask);
    std::vector<int64_t> tokens = {1, 1, 1};
    double worst = 0;
    std::mt19937_64 rng(5);
    for (int t = 0; t < 70; ++t) {
      if (t == 3 || t == 40) {  // beam-search style: rows follow other rows, and the batch grows
        std::vector<int64_t> parent = t == 3 ? std::vector<int64_t>{2, 0, 0, 1} : std::vector<int64_t>{3, 3, 1, 0, 2};
        cached->reorder(parent);
        full->reorder(parent);
        std::vector<int64_t> next;
        for (int64_t p : parent) next.push_back(tokens[size_t(p)]);
        tokens = next;
      }
      std::vector<float> a = cached->step(tokens), b = full->step(tokens);
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
      for (auto& tok : tokens) tok = 3 + int64_t(rng() % 8);
    }
    // Logits are returned as float32: agreement to float32 rounding of values of order 1.
    CHECK(worst < 1e-6);
    // The same search through either session gives the same sequences.
    GenerateOptions opt;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.max_new_tokens = 12;
    opt.strategy = GenerateOptions::Strategy::Beam;
    opt.num_beams = 3;
    opt.num_return = 2;
    auto c1 = dec.session(mem, mmask);
    auto f1 = make_recompute_session(dec, mem, mmask);
    auto g1 = generate(*c1, opt), g2 = generate(*f1, opt);
    for (size_t i = 0; i < g1.size(); ++i)
      for (size_t j = 0; j < g1[i].size(); ++j) {
        CHECK(g1[i][j].tokens == g2[i][j].tokens);
        CHECK(g1[i][j].logprob == doctest::Approx(g2[i][j].logprob).epsilon(1e-6));
      }
  }

  TEST_CASE("prefix decoder: causal, reads its pooled embedding, KV-cached decoding equals recomputation in float64") {
    Generator gen(31);
    DecoderConfig cfg = tiny_decoder();
    cfg.prefix_length = 3;
    cfg.max_positions = 70;  // prefix + tokens pass the cache's first capacity: growth is exercised
    Decoder dec(cfg, gen, {DType::F64, Device::cpu()});
    // No cross-attention in prefix mode; the prefix projection replaces memory_proj.
    for (const std::string& n : dec.params().names()) CHECK(n.find("cross_attn") == std::string::npos);
    CHECK(dec.params().get("decoder.prefix_proj.weight").shape() == Shape({3 * 16, 6}));
    const int64_t B = 2;
    Tensor mem = randn({B, 1, 6}, gen, DType::F64);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 7, 9, 4, 1, 3, 8, 6, 6}, {B, 5});
    Tensor h = dec.hidden(ids, mem, Tensor());
    CHECK(h.shape() == Shape({B, 5, 16}));
    // Causal: changing the last token leaves the earlier positions unchanged.
    Tensor ids2 = Tensor::from_vector(std::vector<int64_t>{1, 5, 7, 9, 10, 1, 3, 8, 6, 10}, {B, 5});
    Tensor h2 = dec.hidden(ids2, mem, Tensor());
    CHECK(rel_err(h2.narrow(1, 0, 4), h.narrow(1, 0, 4)) == 0.0);
    // Every position reads the embedding, and row b only its own.
    std::vector<double> mv = mem.to_double_vector();
    for (size_t i = 6; i < 12; ++i) mv[i] += 0.5;
    Tensor mem2 = Tensor::from_vector(mv, {B, 1, 6});
    Tensor h3 = dec.hidden(ids, mem2, Tensor());
    CHECK(rel_err(h3.narrow(0, 0, 1), h.narrow(0, 0, 1)) == 0.0);
    CHECK(rel_err(h3.narrow(0, 1, 1).narrow(1, 0, 1), h.narrow(0, 1, 1).narrow(1, 0, 1)) > 1e-6);
    // A mask or more than one memory row is refused (the prefix reads one pooled embedding).
    CHECK_THROWS_WITH_AS(dec.hidden(ids, randn({B, 2, 6}, gen, DType::F64), Tensor()),
                         doctest::Contains("one pooled embedding per row"), Error);
    CHECK_THROWS_WITH_AS(dec.hidden(ids, mem, Tensor::from_vector(std::vector<int64_t>{1, 1}, {B, 1})),
                         doctest::Contains("without a mask"), Error);
    auto cached = dec.session(mem, Tensor());
    auto full = make_recompute_session(dec, mem, Tensor());
    std::vector<int64_t> tokens = {1, 1};
    double worst = 0;
    std::mt19937_64 rng(7);
    for (int t = 0; t < 66; ++t) {
      if (t == 4) {  // beam-search style reorder: the prefix caches follow their rows
        const std::vector<int64_t> parent = {1, 1, 0};
        cached->reorder(parent);
        full->reorder(parent);
        tokens = {tokens[1], tokens[1], tokens[0]};
      }
      std::vector<float> a = cached->step(tokens), b = full->step(tokens);
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
      for (auto& tok : tokens) tok = 3 + int64_t(rng() % 8);
    }
    CHECK(worst < 1e-6);
  }

  TEST_CASE("decoder config JSON round-trips and bad fields are named") {
    DecoderConfig c = tiny_decoder();
    DecoderConfig r = DecoderConfig::from_json_text(c.to_json(), "cfg.json");
    CHECK(r.to_json() == c.to_json());
    std::string bad = c.to_json();
    bad.replace(bad.find("\"num_attention_heads\": 2"), 24, "\"num_attention_heads\": 3");
    CHECK_THROWS_WITH_AS(DecoderConfig::from_json_text(bad, "cfg.json"),
                         doctest::Contains("cfg.json: field 'hidden_size' 16 is not a multiple"), Error);
    DecoderConfig pc = tiny_decoder();
    pc.prefix_length = 4;
    CHECK(DecoderConfig::from_json_text(pc.to_json(), "cfg.json").prefix_length == 4);
    // Decoders written before prefix conditioning have no prefix_length: cross-attention.
    std::string old = c.to_json();
    old.replace(old.find("\"prefix_length\": 0,"), 19, "");
    CHECK(old.find("prefix_length") == std::string::npos);
    CHECK(DecoderConfig::from_json_text(old, "cfg.json").prefix_length == 0);
    DecoderConfig e = tiny_decoder();
    e.eos_id = 11;
    CHECK_THROWS_WITH_AS(e.validate("opts"), doctest::Contains("field 'eos_id' is 11"), Error);
  }

  TEST_CASE("decoder loss counts only real targets and rejects ids outside the vocabulary") {
    Generator gen(5);
    Decoder dec(tiny_decoder(), gen, {DType::F64, Device::cpu()});
    Tensor mem = randn({2, 1, 6}, gen, DType::F64);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 7, 2, 0, 1, 3, 2, 0, 0}, {2, 5});
    DecoderLoss l = dec.loss(ids, mem, Tensor());
    CHECK(l.tokens == 5);  // 5, 7, 2 and 3, 2
    // At initialisation the loss is near log(V).
    CHECK(std::abs(l.loss.item() - std::log(11.0)) < 0.5);
    Tensor bad = Tensor::from_vector(std::vector<int64_t>{1, 5, 17, 2}, {1, 4});
    CHECK_THROWS_WITH_AS(dec.loss(bad, mem.narrow(0, 0, 1).contiguous(), Tensor()),
                         doctest::Contains("token id 17 at row 0 position 2"), Error);
  }

  TEST_CASE("beam search finds the most likely sequence where greedy does not") {
    // Tokens: 0 pad, 1 bos, 2 eos, 3 a, 4 b. From bos: a 0.6, b 0.4. After a: eos 0.3, a 0.35, b 0.35.
    // After b: eos 0.9. Greedy takes a first (0.6); the best whole sequence is "b" eos (0.4 * 0.9 =
    // 0.36), then "a b" eos (0.6 * 0.35 * 0.9 = 0.189), ahead of "a" eos (0.18).
    std::vector<std::vector<double>> t(5);
    t[0] = logs({0, 0, 1, 0, 0});
    t[1] = logs({0, 0, 0, 0.6, 0.4});
    t[2] = logs({0, 0, 1, 0, 0});
    t[3] = logs({0, 0, 0.3, 0.35, 0.35});
    t[4] = logs({0, 0, 0.9, 0.05, 0.05});
    GenerateOptions opt;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.max_new_tokens = 6;
    opt.banned = {0, 1};
    {
      MarkovSession s(t, 1);
      auto g = generate(s, opt);
      REQUIRE(g.size() == 1);
      CHECK(g[0][0].tokens.front() == 3);  // greedy starts with a
    }
    opt.strategy = GenerateOptions::Strategy::Beam;
    opt.num_beams = 2;
    opt.num_return = 2;
    opt.length_penalty = 0.0;  // rank by raw log-probability
    MarkovSession s(t, 3);     // three identical inputs, each searched on its own
    auto g = generate(s, opt);
    REQUIRE(g.size() == 3);
    for (const auto& gi : g) {
      REQUIRE(gi.size() == 2);
      CHECK(gi[0].tokens == std::vector<int64_t>{4});
      CHECK(gi[0].finished);
      CHECK(gi[0].logprob == doctest::Approx(std::log(0.4 * 0.9)).epsilon(1e-6));
      CHECK(gi[1].tokens == std::vector<int64_t>{3, 4});
      CHECK(gi[1].logprob == doctest::Approx(std::log(0.6 * 0.35 * 0.9)).epsilon(1e-6));
    }
  }

  TEST_CASE("sampling is deterministic for a seed and honours top-k top-p allowed tokens and lengths") {
    std::vector<std::vector<double>> t(6, logs({0, 0, 0.1, 0.3, 0.3, 0.3}));
    GenerateOptions opt;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.max_new_tokens = 12;
    opt.strategy = GenerateOptions::Strategy::Sample;
    opt.num_return = 4;
    opt.seed = 7;
    auto run = [&](const GenerateOptions& o, int64_t rows) {
      MarkovSession s(t, rows);
      return generate(s, o);
    };
    auto a = run(opt, 2), b = run(opt, 2);
    bool differ_between_samples = false;
    for (size_t i = 0; i < a.size(); ++i)
      for (size_t j = 0; j < a[i].size(); ++j) {
        CHECK(a[i][j].tokens == b[i][j].tokens);
        if (a[i][j].tokens != a[i][0].tokens) differ_between_samples = true;
      }
    CHECK(differ_between_samples);
    // Input 0's samples do not depend on how many other inputs share the batch.
    auto c = run(opt, 1);
    for (size_t j = 0; j < c[0].size(); ++j) CHECK(c[0][j].tokens == a[0][j].tokens);
    GenerateOptions o2 = opt;
    o2.seed = 8;
    auto d = run(o2, 2);
    bool seed_matters = false;
    for (size_t j = 0; j < d[0].size(); ++j) seed_matters |= d[0][j].tokens != a[0][j].tokens;
    CHECK(seed_matters);
    // Allowed tokens: only 4 (and the end) can appear. Minimum length bars the end early.
    GenerateOptions o3 = opt;
    o3.allowed = {4};
    o3.min_new_tokens = 5;
    for (const auto& gi : run(o3, 2))
      for (const auto& s : gi) {
        CHECK(s.tokens.size() >= 5);
        for (int64_t tok : s.tokens) CHECK(tok == 4);
      }
    // top-k 1 is greedy: the first most likely token (3, ties by id) every step until the maximum.
    GenerateOptions o4 = opt;
    o4.top_k = 1;
    for (const auto& gi : run(o4, 1))
      for (const auto& s : gi) CHECK(s.tokens == std::vector<int64_t>(12, 3));
    // top-p 0.25 keeps only the single most likely token as well.
    GenerateOptions o5 = opt;
    o5.top_p = 0.25;
    for (const auto& gi : run(o5, 1))
      for (const auto& s : gi) CHECK(s.tokens == std::vector<int64_t>(12, 3));
  }

  TEST_CASE("repetition penalty steers greedy decoding away from repeated tokens") {
    std::vector<std::vector<double>> t(6, logs({0, 0, 0.05, 0.5, 0.3, 0.15}));
    GenerateOptions opt;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.max_new_tokens = 3;
    MarkovSession s1(t, 1);
    CHECK(generate(s1, opt)[0][0].tokens == std::vector<int64_t>{3, 3, 3});
    opt.repetition_penalty = 3.0;  // log-probs are negative: multiplied by 3 once seen
    MarkovSession s2(t, 1);
    CHECK(generate(s2, opt)[0][0].tokens == std::vector<int64_t>{3, 4, 5});
  }

  TEST_CASE("generation options are validated with the option named") {
    GenerateOptions opt;
    opt.eos_id = 2;
    opt.temperature = 0;
    CHECK_THROWS_WITH_AS(opt.validate(10), doctest::Contains("--temperature"), Error);
    opt.temperature = 1;
    opt.num_return = 3;
    CHECK_THROWS_WITH_AS(opt.validate(10), doctest::Contains("greedy decoding gives one sequence"), Error);
    opt.strategy = GenerateOptions::Strategy::Beam;
    opt.num_beams = 2;
    CHECK_THROWS_WITH_AS(opt.validate(10), doctest::Contains("exceeds --num-beams"), Error);
    CHECK_THROWS_WITH_AS(GenerateOptions::parse_strategy("nucleus"), doctest::Contains("greedy, sample or beam"), Error);
  }

  TEST_CASE("a tiny decoder learns a memory-conditioned task and greedy and beam decoding recover it") {
    // Memory: one of 3 one-hot codes. Target for code c: tokens (3+c) (6+c) then end.
    Generator gen(11);
    DecoderConfig cfg = tiny_decoder(11, 3);
    Decoder dec(cfg, gen, {DType::F32, Device::cpu()});
    std::vector<double> m(9, 0.0);
    for (int c = 0; c < 3; ++c) m[size_t(c * 3 + c)] = 1.0;
    Tensor mem = Tensor::from_vector(m, {3, 1, 3}).to(DType::F32);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 3, 6, 2, 1, 4, 7, 2, 1, 5, 8, 2}, {3, 4});
    Adam adam({ParamGroup{dec.params().parameters()}}, AdamOptions{3e-3});
    double first = 0, last = 0;
    for (int step = 0; step < 300; ++step) {
      adam.zero_grad();
      DecoderLoss l = dec.loss(ids, mem, Tensor());
      if (step == 0) first = l.loss.item();
      last = l.loss.item();
      l.loss.backward();
      adam.step();
    }
    CHECK(last < 0.05 * first);
    GenerateOptions opt;
    opt.bos_id = 1;
    opt.eos_id = 2;
    opt.max_new_tokens = 8;
    auto s = make_recompute_session(dec, mem, Tensor());
    auto g = generate(*s, opt);
    for (int c = 0; c < 3; ++c) {
      CHECK(g[size_t(c)][0].tokens == std::vector<int64_t>{3 + c, 6 + c});
      CHECK(g[size_t(c)][0].finished);
    }
    opt.strategy = GenerateOptions::Strategy::Beam;
    opt.num_beams = 3;
    auto sb = make_recompute_session(dec, mem, Tensor());
    auto gb = generate(*sb, opt);
    for (int c = 0; c < 3; ++c) CHECK(gb[size_t(c)][0].tokens == std::vector<int64_t>{3 + c, 6 + c});
  }
}

TEST_SUITE("gradcheck") {
  TEST_CASE("prefix decoder next-token loss: float64 gradient check of the prefix projection and every parameter") {
    Generator gen(8);
    DecoderConfig cfg = tiny_decoder();
    cfg.prefix_length = 2;
    Decoder dec(cfg, gen, {DType::F64, Device::cpu()});
    Tensor mem = randn({2, 1, 6}, gen, DType::F64).requires_grad_(true);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 7, 9, 2, 1, 3, 2, 0, 0}, {2, 5});
    std::vector<Tensor> inputs = dec.params().parameters();
    inputs.push_back(mem);
    auto f = [&](const std::vector<Tensor>&) { return dec.loss(ids, mem, Tensor()).loss; };
    GradcheckOptions opt;
    opt.max_elements_per_input = 4;
    opt.atol = 1e-7;
    opt.rtol = 1e-5;
    GradcheckResult r = gradcheck(f, inputs, opt);
    INFO(r.detail);
    CHECK(r.ok);
    // The projection itself in full: every element of prefix_proj and of the embedding.
    GradcheckOptions all = opt;
    all.max_elements_per_input = 0;
    GradcheckResult rp = gradcheck(f, {dec.params().get("decoder.prefix_proj.weight"),
                                       dec.params().get("decoder.prefix_proj.bias"), mem}, all);
    INFO(rp.detail);
    CHECK(rp.ok);
  }
  TEST_CASE("decoder next-token loss: float64 gradient check of every parameter tensor") {
    Generator gen(6);
    Decoder dec(tiny_decoder(), gen, {DType::F64, Device::cpu()});
    Tensor mem = randn({2, 3, 6}, gen, DType::F64).requires_grad_(true);
    Tensor mmask = Tensor::from_vector(std::vector<int64_t>{1, 1, 0, 1, 1, 1}, {2, 3});
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 7, 9, 2, 1, 3, 2, 0, 0}, {2, 5});
    std::vector<Tensor> inputs = dec.params().parameters();
    inputs.push_back(mem);
    auto f = [&](const std::vector<Tensor>&) { return dec.loss(ids, mem, mmask).loss; };
    GradcheckOptions opt;
    opt.max_elements_per_input = 4;
    opt.atol = 1e-7;
    opt.rtol = 1e-5;
    GradcheckResult r = gradcheck(f, inputs, opt);
    INFO(r.detail);
    CHECK(r.ok);
  }
}
