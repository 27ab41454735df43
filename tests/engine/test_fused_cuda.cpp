// The fused ops on CUDA (kernels/cuda/{attention,info_nce,masked_ce}.cu) against the float64 CPU
// reference (kernels/cpu/fused.cpp, itself checked against the compositions in test_fused.cpp), on
// the cases of test_fused.cpp: f32 within 1e-5 and bf16 within 1e-2 (outputs) / 2e-2 (gradients) of
// the reference's magnitude, bf16 on both kernel families (tensor cores, and the simple kernels
// through PE_FUSED_SIMPLE=1). Backend calls write into outputs poisoned with NaN, so a kernel that
// skips an element fails; the autograd ops are then run end to end. Without a CUDA device every case
// prints "[cuda-skipped]" (CTest counts it as skipped).
#include <doctest/doctest.h>

#include "tests/common/cuda_tests.h"

#include "tests/common/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "autograd/fused.h"
#include "autograd/kv_cache.h"

using namespace pe;
using pe::testing::rel_err;

namespace {


const Device kCuda = Device::cuda(0);
const double kNaN = std::numeric_limits<double>::quiet_NaN();

Backend& gpu() { return *cuda_backend(); }
Backend& cpu() { return cpu_backend(); }
DType acc_of(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }


// An input rounded to dt: on the GPU, and its exact values in f64 on the CPU.
struct Pair {
  Tensor dev, ref;
};
Pair to_pair(const Tensor& host_f64, DType dt) {
  Tensor h = host_f64.to(dt);
  return {h.to(kCuda), h.to(DType::F64)};
}
Pair random_pair(const Shape& s, DType dt, Generator& gen, double std = 1.0) {
  return to_pair(randn(s, gen, DType::F64, Device::cpu(), 0.0, std), dt);
}
Tensor poisoned(const Shape& s, DType dt) {
  Tensor t = Tensor::empty(s, dt, kCuda);
  if (t.numel()) gpu().fill(t, kNaN);
  return t;
}
Tensor cpu_empty(const Shape& s) { return Tensor::empty(s, DType::F64); }

struct Mode {
  DType dt;
  bool simple;
  double tol_out, tol_grad;
  const char* name;
};
const Mode kModes[] = {{DType::F32, false, 1e-5, 1e-5, "f32"},
                       {DType::BF16, false, 1e-2, 2e-2, "bf16 tensor cores"},
                       {DType::BF16, true, 1e-2, 2e-2, "bf16 simple"}};

// PE_FUSED_SIMPLE for the scope of one mode.
struct SimpleScope {
  explicit SimpleScope(bool on) { setenv("PE_FUSED_SIMPLE", on ? "1" : "0", 1); }
  ~SimpleScope() { unsetenv("PE_FUSED_SIMPLE"); }
};

// ------------------------------------------------------------------ attention
struct AttnCase {
  int64_t B, Lq, Lk, H, D;
  int mask;  // 0 none, 1 random with batch 0 empty and batch 1 full, 2 prefix lengths
  bool inv_sqrt;
};

std::vector<uint8_t> make_mask(int kind, int64_t B, int64_t Lk, Generator& gen) {
  std::vector<uint8_t> m(size_t(B * Lk), 1);
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = 1 + gen.randint(0, Lk);
    for (int64_t j = 0; j < Lk; ++j) {
      uint8_t v = kind == 1 ? uint8_t(gen.randint(0, 10) < 6) : uint8_t(j < len);
      if (kind == 1 && b == 0) v = 0;
      if (kind == 1 && b == 1) v = 1;
      m[size_t(b * Lk + j)] = v;
    }
  }
  return m;
}

Tensor mask_tensor(const std::vector<uint8_t>& m, const Shape& s, Device dev) {
  std::vector<int32_t> v(m.begin(), m.end());
  return Tensor::from_vector(v, s).to(DType::U8).to(dev);
}

// Runs one attention problem in every mode against the f64 CPU reference.
void check_attention(const Shape& qs, const Shape& ks, const AttentionLayout& cpu_layout,
                     const AttentionLayout& gpu_layout, uint64_t seed, const std::string& label) {
  const double scale = cpu_layout.scale;
  int64_t D = qs.back();
  double std_ = scale == 1.0 ? std::pow(double(D), -0.25) : 1.0;
  for (const Mode& mode : kModes) {
    INFO(label, " mode ", std::string(mode.name));
    SimpleScope simple(mode.simple);
    Generator gen(seed);
    Pair q = random_pair(qs, mode.dt, gen, std_), k = random_pair(ks, mode.dt, gen, std_),
         v = random_pair(ks, mode.dt, gen);
    Pair go = random_pair(qs, mode.dt, gen);
    Shape ls(qs.begin(), qs.end() - 1);
    Tensor out_ref = cpu_empty(qs), lse_ref = cpu_empty(ls);
    cpu().attention_forward(q.ref, k.ref, v.ref, cpu_layout, out_ref, lse_ref);
    Tensor gq_ref = cpu_empty(qs), gk_ref = cpu_empty(ks), gv_ref = cpu_empty(ks);
    cpu().attention_backward(q.ref, k.ref, v.ref, out_ref, lse_ref, go.ref, cpu_layout, gq_ref, gk_ref, gv_ref);

    Tensor out = poisoned(qs, mode.dt), lse = poisoned(ls, acc_of(mode.dt));
    gpu().attention_forward(q.dev, k.dev, v.dev, gpu_layout, out, lse);
    CHECK(rel_err(out, out_ref) <= mode.tol_out);
    CHECK(rel_err(lse, lse_ref) <= mode.tol_out);
    Tensor gq = poisoned(qs, mode.dt), gk = poisoned(ks, mode.dt), gv = poisoned(ks, mode.dt);
    gpu().attention_backward(q.dev, k.dev, v.dev, out, lse, go.dev, gpu_layout, gq, gk, gv);
    CHECK(rel_err(gq, gq_ref) <= mode.tol_grad);
    CHECK(rel_err(gk, gk_ref) <= mode.tol_grad);
    CHECK(rel_err(gv, gv_ref) <= mode.tol_grad);
    // Deterministic: a second backward repeats bit for bit.
    Tensor gk2 = poisoned(ks, mode.dt), gq2 = poisoned(qs, mode.dt), gv2 = poisoned(ks, mode.dt);
    gpu().attention_backward(q.dev, k.dev, v.dev, out, lse, go.dev, gpu_layout, gq2, gk2, gv2);
    CHECK(gk2.to_double_vector() == gk.to_double_vector());
    CHECK(gq2.to_double_vector() == gq.to_double_vector());
  }
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("attention on CUDA matches the float64 CPU reference (padded)") {
    if (skip_without_cuda()) return;
    const AttnCase cases[] = {
        {2, 5, 7, 3, 8, 1, false},     {1, 1, 1, 1, 24, 0, true},     {3, 17, 33, 2, 32, 1, true},
        {2, 64, 48, 2, 64, 2, false},  {2, 9, 130, 1, 128, 1, true},  {2, 1024, 1024, 1, 24, 2, true},
        {1, 1024, 3, 2, 16, 0, false}, {1, 1, 1024, 1, 64, 2, false}, {2, 100, 77, 4, 40, 1, true},
        {1, 20, 20, 2, 12, 1, true},   {2, 70, 200, 3, 96, 2, true},
    };
    uint64_t seed = 100;
    for (const AttnCase& c : cases) {
      if (!run_case(c.Lq * c.Lk)) {
        ++seed;
        continue;
      }
      Generator mg(seed);
      AttentionLayout lc, lg;
      lc.scale = lg.scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      if (c.mask) {
        std::vector<uint8_t> m = make_mask(c.mask, c.B, c.Lk, mg);
        lc.key_mask = mask_tensor(m, {c.B, c.Lk}, Device::cpu());
        lg.key_mask = mask_tensor(m, {c.B, c.Lk}, kCuda);
      }
      std::string label = "B " + std::to_string(c.B) + " Lq " + std::to_string(c.Lq) + " Lk " + std::to_string(c.Lk) +
                          " H " + std::to_string(c.H) + " D " + std::to_string(c.D) + " mask " + std::to_string(c.mask);
      check_attention({c.B, c.Lq, c.H, c.D}, {c.B, c.Lk, c.H, c.D}, lc, lg, seed++, label);
    }
  }

  TEST_CASE("attention on CUDA matches the float64 CPU reference (packed varlen)") {
    if (skip_without_cuda()) return;
    struct Lens {
      std::vector<int64_t> q, k;
      int64_t H, D;
      bool i64;
    };
    const Lens sets[] = {{{5, 1, 12}, {7, 3, 1}, 2, 24, false},
                         {{40, 9, 17, 2}, {33, 40, 1, 8}, 2, 64, true},
                         {{300, 1024, 65}, {300, 1024, 65}, 1, 32, false},
                         {{3, 0, 70}, {0, 5, 129}, 2, 128, true}};
    uint64_t seed = 200;
    for (const Lens& ls : sets) {
      int64_t work = 0;
      for (size_t b = 0; b < ls.q.size(); ++b) work += ls.q[b] * ls.k[b];
      if (!run_case(work)) {
        ++seed;
        continue;
      }
      std::vector<int64_t> cq{0}, ck{0};
      for (size_t b = 0; b < ls.q.size(); ++b) {
        cq.push_back(cq.back() + ls.q[b]);
        ck.push_back(ck.back() + ls.k[b]);
      }
      int64_t B = int64_t(ls.q.size());
      AttentionLayout lc, lg;
      lc.scale = lg.scale = 1.0 / std::sqrt(double(ls.D));
      lc.cu_q = Tensor::from_vector(cq, {B + 1});
      lc.cu_k = Tensor::from_vector(ck, {B + 1});
      if (!ls.i64) {
        lc.cu_q = lc.cu_q.to(DType::I32);
        lc.cu_k = lc.cu_k.to(DType::I32);
      }
      lg.cu_q = lc.cu_q.to(kCuda);
      lg.cu_k = lc.cu_k.to(kCuda);
      lg.max_q = *std::max_element(ls.q.begin(), ls.q.end());
      lg.max_k = *std::max_element(ls.k.begin(), ls.k.end());
      std::string label = "packed B " + std::to_string(B) + " D " + std::to_string(ls.D);
      check_attention({cq.back(), ls.H, ls.D}, {ck.back(), ls.H, ls.D}, lc, lg, seed++, label);
    }
  }

  TEST_CASE("flash_attention and flash_attention_varlen ops on CUDA match the CPU ops") {
    if (skip_without_cuda()) return;
    for (DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype ", std::string(dtype_name(dt)));
      double tol = dt == DType::F32 ? 1e-5 : 2e-2;
      Generator gen(300);
      Tensor q = randn({3, 37, 2, 32}, gen, DType::F64), k = randn({3, 29, 2, 32}, gen, DType::F64);
      Tensor v = randn({3, 29, 2, 32}, gen, DType::F64), w = randn({3, 37, 2, 32}, gen, DType::F64);
      std::vector<double> m(3 * 29, 1.0);
      for (int j = 0; j < 29; ++j) m[size_t(j)] = 0.0;  // batch 0: no real key
      for (int j = 10; j < 29; ++j) m[size_t(29 + j)] = 0.0;
      Tensor mask = Tensor::from_vector(m, {3, 29});
      auto run = [&](Device dev, DType t) {
        std::vector<Tensor> xs;
        for (const Tensor& x : {q, k, v}) {
          Tensor y = x.to(dt).to(t).to(dev);
          y.requires_grad_(true);
          xs.push_back(y);
        }
        Tensor out = flash_attention(xs[0], xs[1], xs[2], mask.to(t).to(dev), 0.25);
        sum(mul(out, w.to(dt).to(t).to(dev))).backward();
        return std::vector<Tensor>{out, xs[0].grad(), xs[1].grad(), xs[2].grad()};
      };
      std::vector<Tensor> ref = run(Device::cpu(), DType::F64), got = run(kCuda, dt);
      CHECK(rel_err(got[0], ref[0]) <= (dt == DType::F32 ? 1e-5 : 1e-2));
      for (int i = 1; i < 4; ++i) CHECK(rel_err(got[size_t(i)], ref[size_t(i)]) <= tol);

      // Varlen with cu_seqlens from the host and from the device.
      Tensor cu_q = Tensor::from_vector(std::vector<int32_t>{0, 30, 37}, {3});
      Tensor cu_k = Tensor::from_vector(std::vector<int32_t>{0, 4, 29}, {3});
      Tensor qp = q.reshape({-1, 2, 32}).narrow(0, 0, 37), kp = k.reshape({-1, 2, 32}).narrow(0, 0, 29);
      Tensor vp = v.reshape({-1, 2, 32}).narrow(0, 0, 29);
      Tensor ref_out = flash_attention_varlen(qp, kp, vp, cu_q, cu_k, 0, 0, 0.5);
      Tensor host_cu =
          flash_attention_varlen(qp.to(dt).to(kCuda), kp.to(dt).to(kCuda), vp.to(dt).to(kCuda), cu_q, cu_k, 0, 0, 0.5);
      Tensor dev_cu = flash_attention_varlen(qp.to(dt).to(kCuda), kp.to(dt).to(kCuda), vp.to(dt).to(kCuda),
                                             cu_q.to(kCuda), cu_k.to(kCuda), 30, 25, 0.5);
      CHECK(rel_err(host_cu, ref_out) <= (dt == DType::F32 ? 1e-5 : 1e-2));
      CHECK(rel_err(dev_cu, host_cu) == 0.0);
    }
  }

  TEST_CASE("info_nce on CUDA matches the float64 CPU reference") {
    if (skip_without_cuda()) return;
    struct Case {
      int64_t B, D;
      bool groups;
      double logit_scale;
    };
    const Case cases[] = {{1, 16, false, 2.6592}, {7, 8, true, 2.6592},  {64, 512, false, 4.0},
                          {300, 33, true, 3.1},   {1000, 64, true, 5.5}, {130, 512, false, 2.0}};
    const double max_scale = std::log(100.0);
    uint64_t seed = 400;
    for (const Case& c : cases) {
      if (!run_case(c.B * c.B * c.D, 10000000)) {
        ++seed;
        continue;
      }
      for (const Mode& mode : kModes) {
        INFO("B ", c.B, " D ", c.D, " groups ", c.groups, " mode ", std::string(mode.name));
        SimpleScope simple(mode.simple);
        Generator gen(seed);
        Pair p = to_pair(l2_normalize(randn({c.B, c.D}, gen, DType::F64)), mode.dt);
        Pair t = to_pair(l2_normalize(randn({c.B, c.D}, gen, DType::F64)), mode.dt);
        InfoNceArgs ac, ag;
        ac.max_logit_scale = ag.max_logit_scale = max_scale;
        ac.logit_scale = Tensor::scalar(c.logit_scale, DType::F64);
        ag.logit_scale = Tensor::scalar(c.logit_scale, DType::F32, kCuda);
        if (c.groups) {
          std::vector<int64_t> g(size_t(c.B));
          for (auto& x : g) x = gen.randint(0, std::max<int64_t>(1, c.B / 3));
          ac.row_group = ac.col_group = Tensor::from_vector(g, {c.B});
          ag.row_group = ag.col_group = ac.row_group.to(kCuda);
        }
        const int64_t B = c.B;
        Tensor sr = cpu_empty({B, 2}), lr = cpu_empty({B}), sc = cpu_empty({B, 2}), lc = cpu_empty({B});
        cpu().info_nce_forward(p.ref, t.ref, ac, sr, lr);
        cpu().info_nce_forward(t.ref, p.ref, ac, sc, lc);
        Tensor gp_ref = cpu_empty({B, c.D}), gt_ref = cpu_empty({B, c.D}), glog_ref = cpu_empty({B});
        cpu().info_nce_backward(p.ref, t.ref, ac, sr, sc, Tensor::scalar(1.0, DType::F64), 1.0 / double(B),
                                1.0 / double(B), gp_ref, gt_ref, glog_ref);

        DType acc = acc_of(mode.dt);
        Tensor sr_d = poisoned({B, 2}, acc), lr_d = poisoned({B}, acc), sc_d = poisoned({B, 2}, acc),
               lc_d = poisoned({B}, acc);
        gpu().info_nce_forward(p.dev, t.dev, ag, sr_d, lr_d);
        gpu().info_nce_forward(t.dev, p.dev, ag, sc_d, lc_d);
        CHECK(rel_err(sr_d, sr) <= mode.tol_out);
        CHECK(rel_err(lr_d, lr) <= mode.tol_out);
        CHECK(rel_err(sc_d, sc) <= mode.tol_out);
        Tensor gp = poisoned({B, c.D}, mode.dt), gt_ = poisoned({B, c.D}, mode.dt), glog = poisoned({B}, acc);
        gpu().info_nce_backward(p.dev, t.dev, ag, sr_d, sc_d, Tensor::scalar(1.0, DType::F32, kCuda), 1.0 / double(B),
                                1.0 / double(B), gp, gt_, glog);
        CHECK(rel_err(gp, gp_ref) <= mode.tol_grad);
        CHECK(rel_err(gt_, gt_ref) <= mode.tol_grad);
        CHECK(rel_err(glog, glog_ref) <= mode.tol_grad);
        CHECK(std::abs(sum(glog).item() - sum(glog_ref).item()) <=
              mode.tol_grad * std::max(1e-3, std::abs(sum(glog_ref).item())));

        // One direction with local rows at an offset among the columns, no column term.
        int64_t R = std::max<int64_t>(1, B / 3), off = B - R;
        InfoNceArgs dc = ac, dg = ag;
        dc.row_offset = dg.row_offset = off;
        if (c.groups) {
          dc.row_group = ac.col_group.narrow(0, off, R).contiguous();
          dg.row_group = ag.col_group.narrow(0, off, R).contiguous();
        }
        Pair x{p.dev.narrow(0, off, R).contiguous(), p.ref.narrow(0, off, R).contiguous()};
        Tensor s1 = cpu_empty({R, 2}), l1 = cpu_empty({R}), gx_ref = cpu_empty({R, c.D}), gy_ref = cpu_empty({B, c.D});
        cpu().info_nce_forward(x.ref, t.ref, dc, s1, l1);
        cpu().info_nce_backward(x.ref, t.ref, dc, s1, Tensor(), Tensor::scalar(2.0, DType::F64), 1.0 / double(R), 0.0,
                                gx_ref, gy_ref, Tensor());
        Tensor s1_d = poisoned({R, 2}, acc), l1_d = poisoned({R}, acc);
        gpu().info_nce_forward(x.dev, t.dev, dg, s1_d, l1_d);
        CHECK(rel_err(l1_d, l1) <= mode.tol_out);
        Tensor gx = poisoned({R, c.D}, mode.dt), gy = poisoned({B, c.D}, mode.dt);
        gpu().info_nce_backward(x.dev, t.dev, dg, s1_d, Tensor(), Tensor::scalar(2.0, DType::F32, kCuda),
                                1.0 / double(R), 0.0, gx, gy, Tensor());
        CHECK(rel_err(gx, gx_ref) <= mode.tol_grad);
        CHECK(rel_err(gy, gy_ref) <= mode.tol_grad);
      }
      ++seed;
    }
  }

  TEST_CASE("fused_info_nce op on CUDA matches the CPU op") {
    if (skip_without_cuda()) return;
    Generator gen(500);
    Tensor praw = randn({96, 64}, gen, DType::F64), traw = randn({96, 64}, gen, DType::F64);
    std::vector<int64_t> g(96);
    for (auto& x : g) x = gen.randint(0, 60);
    Tensor group = Tensor::from_vector(g, {96});
    for (DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype ", std::string(dtype_name(dt)));
      double tol = dt == DType::F32 ? 1e-5 : 2e-2;
      auto run = [&](Device dev, DType t) {
        Tensor p = l2_normalize(praw).to(dt).to(t).to(dev).requires_grad_(true);
        Tensor q = l2_normalize(traw).to(dt).to(t).to(dev).requires_grad_(true);
        Tensor s = Tensor::scalar(2.6592, t == DType::F64 ? DType::F64 : DType::F32, dev).requires_grad_(true);
        FusedInfoNce r = fused_info_nce_terms(p, q, s, std::log(100.0), group);
        r.loss.backward();
        return std::vector<Tensor>{r.loss, r.p2t, r.t2p, p.grad(), q.grad(), s.grad()};
      };
      std::vector<Tensor> ref = run(Device::cpu(), DType::F64), got = run(kCuda, dt);
      for (size_t i = 0; i < ref.size(); ++i) {
        INFO("output ", i);
        CHECK(rel_err(got[i], ref[i]) <= (i < 3 ? (dt == DType::F32 ? 1e-5 : 1e-2) : tol));
      }
    }
  }

  TEST_CASE("masked_cross_entropy on CUDA matches the float64 CPU reference") {
    if (skip_without_cuda()) return;
    struct Case {
      int64_t M, d, V;
      bool bias;
    };
    const Case cases[] = {{13, 24, 33, true},    {1, 8, 3, false},      {300, 512, 33, true}, {200, 64, 1000, true},
                          {64, 64, 30522, true}, {40, 640, 100, false}, {50, 20, 77, true},
                          {5, 24, 30522, false}};
    uint64_t seed = 600;
    for (const Case& c : cases) {
      if (!run_case(c.M * c.d * c.V, 20000000)) {
        ++seed;
        continue;
      }
      for (const Mode& mode : kModes) {
        INFO("M ", c.M, " d ", c.d, " V ", c.V, " bias ", c.bias, " mode ", std::string(mode.name));
        SimpleScope simple(mode.simple);
        Generator gen(seed);
        Pair h = random_pair({c.M, c.d}, mode.dt, gen), w = random_pair({c.V, c.d}, mode.dt, gen, 0.3);
        Pair b = c.bias ? random_pair({c.V}, mode.dt, gen) : Pair{};
        std::vector<int64_t> tg(size_t(c.M));
        for (auto& x : tg) x = gen.randint(0, c.V);
        Tensor t_cpu = Tensor::from_vector(tg, {c.M}), t_dev = t_cpu.to(kCuda);
        Tensor st = cpu_empty({c.M, 2}), ls = cpu_empty({c.M});
        cpu().masked_ce_forward(h.ref, w.ref, b.ref, t_cpu, st, ls);
        Tensor gh_ref = cpu_empty({c.M, c.d}), gw_ref = cpu_empty({c.V, c.d});
        Tensor gb_ref = c.bias ? cpu_empty({c.V}) : Tensor();
        cpu().masked_ce_backward(h.ref, w.ref, b.ref, t_cpu, st, Tensor::scalar(1.0, DType::F64), 1.0 / double(c.M),
                                 gh_ref, gw_ref, gb_ref);
        DType acc = acc_of(mode.dt);
        Tensor st_d = poisoned({c.M, 2}, acc), ls_d = poisoned({c.M}, acc);
        gpu().masked_ce_forward(h.dev, w.dev, b.dev, t_dev, st_d, ls_d);
        CHECK(rel_err(st_d, st) <= mode.tol_out);
        CHECK(rel_err(ls_d, ls) <= mode.tol_out);
        Tensor gh = poisoned({c.M, c.d}, mode.dt), gw = poisoned({c.V, c.d}, mode.dt);
        Tensor gb = c.bias ? poisoned({c.V}, mode.dt) : Tensor();
        gpu().masked_ce_backward(h.dev, w.dev, b.dev, t_dev, st_d, Tensor::scalar(1.0, DType::F32, kCuda),
                                 1.0 / double(c.M), gh, gw, gb);
        CHECK(rel_err(gh, gh_ref) <= mode.tol_grad);
        CHECK(rel_err(gw, gw_ref) <= mode.tol_grad);
        if (c.bias) CHECK(rel_err(gb, gb_ref) <= mode.tol_grad);
        Tensor gw2 = poisoned({c.V, c.d}, mode.dt), gh2 = poisoned({c.M, c.d}, mode.dt);
        gpu().masked_ce_backward(h.dev, w.dev, b.dev, t_dev, st_d, Tensor::scalar(1.0, DType::F32, kCuda),
                                 1.0 / double(c.M), gh2, gw2, c.bias ? poisoned({c.V}, mode.dt) : Tensor());
        CHECK(gw2.to_double_vector() == gw.to_double_vector());  // deterministic
      }
      ++seed;
    }
  }

  TEST_CASE("fused_masked_cross_entropy op on CUDA matches the CPU op") {
    if (skip_without_cuda()) return;
    Generator gen(700);
    Tensor h = randn({45, 48}, gen, DType::F64), w = randn({33, 48}, gen, DType::F64, Device::cpu(), 0.0, 0.3);
    Tensor b = randn({33}, gen, DType::F64);
    std::vector<int64_t> tg(45);
    for (auto& x : tg) x = gen.randint(0, 33);
    Tensor targets = Tensor::from_vector(tg, {45});
    for (DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype ", std::string(dtype_name(dt)));
      double tol = dt == DType::F32 ? 1e-5 : 2e-2;
      auto run = [&](Device dev, DType t, bool targets_on_device) {
        Tensor hh = h.to(dt).to(t).to(dev).requires_grad_(true), ww = w.to(dt).to(t).to(dev).requires_grad_(true);
        Tensor bb = b.to(dt).to(t).to(dev).requires_grad_(true);
        Tensor loss = fused_masked_cross_entropy(hh, ww, bb, targets_on_device ? targets.to(dev) : targets);
        loss.backward();
        return std::vector<Tensor>{loss, hh.grad(), ww.grad(), bb.grad()};
      };
      std::vector<Tensor> ref = run(Device::cpu(), DType::F64, false);
      for (bool on_device : {false, true}) {
        std::vector<Tensor> got = run(kCuda, dt, on_device);
        CHECK(rel_err(got[0], ref[0]) <= (dt == DType::F32 ? 1e-5 : 1e-2));
        for (size_t i = 1; i < ref.size(); ++i) CHECK(rel_err(got[i], ref[i]) <= tol);
      }
    }
  }
}

// ------------------------------------------------------------------ causal attention
TEST_SUITE("cuda") {
  TEST_CASE("causal attention on CUDA matches the float64 CPU reference (padded)") {
    if (skip_without_cuda()) return;
    // Lq == Lk, Lq < Lk (bottom-right aligned), Lq > Lk (leading rows see no key), lengths off the
    // 64-row tiles, key masks, odd D on the simple kernels (bf16 with D % 8 != 0 falls back to them).
    const AttnCase cases[] = {
        {2, 5, 5, 3, 8, 1, false},      {1, 1, 1, 1, 24, 0, true},    {3, 17, 33, 2, 32, 1, true},
        {2, 70, 40, 2, 64, 2, true},    {2, 64, 64, 2, 64, 0, false}, {1, 130, 130, 2, 128, 2, true},
        {2, 100, 77, 4, 40, 1, true},   {1, 200, 200, 1, 96, 0, true}, {2, 33, 45, 1, 7, 1, true},
        {1, 1024, 1024, 1, 64, 2, true}, {1, 3, 300, 2, 16, 0, true},
    };
    uint64_t seed = 500;
    for (const AttnCase& c : cases) {
      if (!run_case(c.Lq * c.Lk)) {
        ++seed;
        continue;
      }
      Generator mg(seed);
      AttentionLayout lc, lg;
      lc.scale = lg.scale = c.inv_sqrt ? 1.0 / std::sqrt(double(c.D)) : 1.0;
      lc.causal = lg.causal = true;
      if (c.mask) {
        std::vector<uint8_t> m = make_mask(c.mask, c.B, c.Lk, mg);
        lc.key_mask = mask_tensor(m, {c.B, c.Lk}, Device::cpu());
        lg.key_mask = mask_tensor(m, {c.B, c.Lk}, kCuda);
      }
      std::string label = "causal B " + std::to_string(c.B) + " Lq " + std::to_string(c.Lq) + " Lk " +
                          std::to_string(c.Lk) + " H " + std::to_string(c.H) + " D " + std::to_string(c.D) + " mask " +
                          std::to_string(c.mask);
      check_attention({c.B, c.Lq, c.H, c.D}, {c.B, c.Lk, c.H, c.D}, lc, lg, seed++, label);
    }
  }

  TEST_CASE("causal attention on CUDA matches the float64 CPU reference (packed varlen)") {
    if (skip_without_cuda()) return;
    struct Lens {
      std::vector<int64_t> q, k;
      int64_t H, D;
      bool i64;
    };
    const Lens sets[] = {{{5, 1, 12}, {7, 3, 1}, 2, 24, false},
                         {{40, 9, 17, 2}, {33, 40, 1, 8}, 2, 64, true},
                         {{300, 65, 1}, {300, 65, 1}, 1, 32, false},
                         {{3, 0, 70, 129}, {0, 5, 129, 70}, 2, 128, true}};
    uint64_t seed = 600;
    for (const Lens& ls : sets) {
      int64_t work = 0;
      for (size_t b = 0; b < ls.q.size(); ++b) work += ls.q[b] * ls.k[b];
      if (!run_case(work)) {
        ++seed;
        continue;
      }
      std::vector<int64_t> cq{0}, ck{0};
      for (size_t b = 0; b < ls.q.size(); ++b) {
        cq.push_back(cq.back() + ls.q[b]);
        ck.push_back(ck.back() + ls.k[b]);
      }
      int64_t B = int64_t(ls.q.size());
      AttentionLayout lc, lg;
      lc.scale = lg.scale = 1.0 / std::sqrt(double(ls.D));
      lc.causal = lg.causal = true;
      lc.cu_q = Tensor::from_vector(cq, {B + 1});
      lc.cu_k = Tensor::from_vector(ck, {B + 1});
      if (!ls.i64) {
        lc.cu_q = lc.cu_q.to(DType::I32);
        lc.cu_k = lc.cu_k.to(DType::I32);
      }
      lg.cu_q = lc.cu_q.to(kCuda);
      lg.cu_k = lc.cu_k.to(kCuda);
      lg.max_q = *std::max_element(ls.q.begin(), ls.q.end());
      lg.max_k = *std::max_element(ls.k.begin(), ls.k.end());
      std::string label = "causal packed B " + std::to_string(B) + " D " + std::to_string(ls.D);
      check_attention({cq.back(), ls.H, ls.D}, {ck.back(), ls.H, ls.D}, lc, lg, seed++, label);
    }
  }

  TEST_CASE("causal flash_attention op on CUDA matches the CPU op") {
    if (skip_without_cuda()) return;
    for (DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype ", std::string(dtype_name(dt)));
      double tol = dt == DType::F32 ? 1e-5 : 2e-2;
      Generator gen(700);
      Tensor q = randn({2, 37, 2, 32}, gen, DType::F64), k = randn({2, 37, 2, 32}, gen, DType::F64);
      Tensor v = randn({2, 37, 2, 32}, gen, DType::F64), w = randn({2, 37, 2, 32}, gen, DType::F64);
      std::vector<double> m(2 * 37, 1.0);
      for (int j = 20; j < 37; ++j) m[size_t(37 + j)] = 0.0;  // row 1: a 20-token prefix
      Tensor mask = Tensor::from_vector(m, {2, 37});
      auto run = [&](Device dev, DType t) {
        std::vector<Tensor> xs;
        for (const Tensor& x : {q, k, v}) {
          Tensor y = x.to(dt).to(t).to(dev);
          y.requires_grad_(true);
          xs.push_back(y);
        }
        Tensor out = flash_attention(xs[0], xs[1], xs[2], mask.to(t).to(dev), 0.25, true);
        sum(mul(out, w.to(dt).to(t).to(dev))).backward();
        return std::vector<Tensor>{out, xs[0].grad(), xs[1].grad(), xs[2].grad()};
      };
      std::vector<Tensor> ref = run(Device::cpu(), DType::F64), got = run(kCuda, dt);
      CHECK(rel_err(got[0], ref[0]) <= (dt == DType::F32 ? 1e-5 : 1e-2));
      for (int i = 1; i < 4; ++i) CHECK(rel_err(got[size_t(i)], ref[size_t(i)]) <= tol);
      Tensor cu = Tensor::from_vector(std::vector<int32_t>{0, 30, 37}, {3});
      Tensor qp = q.reshape({-1, 2, 32}).narrow(0, 0, 37), kp = k.reshape({-1, 2, 32}).narrow(0, 0, 37);
      Tensor vp = v.reshape({-1, 2, 32}).narrow(0, 0, 37);
      Tensor ref_out = flash_attention_varlen(qp, kp, vp, cu, cu, 0, 0, 0.5, true);
      Tensor dev_out = flash_attention_varlen(qp.to(dt).to(kCuda), kp.to(dt).to(kCuda), vp.to(dt).to(kCuda), cu, cu, 0,
                                              0, 0.5, true);
      CHECK(rel_err(dev_out, ref_out) <= (dt == DType::F32 ? 1e-5 : 1e-2));
    }
  }
}

// ------------------------------------------------------------------ the decode step with a KV cache
TEST_SUITE("cuda") {
  TEST_CASE("attention_decode on CUDA matches the float64 CPU reference") {
    if (skip_without_cuda()) return;
    // Split across CTAs (long caches with few rows and heads; splits past a row's length), one split
    // (many rows x heads), several query groups, rows whose first queries see no key, an empty row.
    struct Case {
      int64_t B, Lnew, Lmax, H, D;
      std::vector<int32_t> len;
    };
    const Case cases[] = {{2, 1, 300, 2, 64, {300, 123}},
                          {3, 3, 40, 2, 13, {40, 2, 0}},
                          {2, 6, 200, 1, 128, {200, 150}},
                          {5, 1, 70, 4, 32, {70, 1, 64, 65, 33}},
                          {1, 5, 1000, 1, 8, {999}}};
    struct DMode {
      DType dt;
      double tol;
    };
    uint64_t seed = 800;
    for (const Case& c : cases) {
      for (const DMode& mode : {DMode{DType::F32, 1e-5}, DMode{DType::F64, 1e-12}, DMode{DType::BF16, 1e-2}}) {
        INFO("B ", c.B, " Lnew ", c.Lnew, " Lmax ", c.Lmax, " H ", c.H, " D ", c.D, " dtype ",
             std::string(dtype_name(mode.dt)));
        Generator gen(seed);
        const double scale = 1.0 / std::sqrt(double(c.D));
        Pair q = random_pair({c.B, c.Lnew, c.H, c.D}, mode.dt, gen), k = random_pair({c.B, c.Lmax, c.H, c.D}, mode.dt, gen);
        Pair v = random_pair({c.B, c.Lmax, c.H, c.D}, mode.dt, gen);
        Tensor len = Tensor::from_vector(c.len, {c.B});
        Tensor ref = cpu_empty({c.B, c.Lnew, c.H, c.D});
        cpu().attention_decode(q.ref, k.ref, v.ref, len, scale, ref);
        for (bool i64 : {false, true}) {
          Tensor out = poisoned({c.B, c.Lnew, c.H, c.D}, mode.dt);
          gpu().attention_decode(q.dev, k.dev, v.dev, (i64 ? len.to(DType::I64) : len).to(kCuda), scale, out);
          CHECK(rel_err(out, ref) <= mode.tol);
          Tensor again = poisoned({c.B, c.Lnew, c.H, c.D}, mode.dt);
          gpu().attention_decode(q.dev, k.dev, v.dev, len.to(kCuda), scale, again);
          CHECK(again.to_double_vector() == out.to_double_vector());  // deterministic
        }
      }
      ++seed;
    }
  }

  TEST_CASE("KvCache decoding on CUDA matches the CPU cache step by step") {
    if (skip_without_cuda()) return;
    const int64_t B = 3, H = 2, D = 32, T = 80;
    const std::vector<int64_t> prompt{20, 3, 45};
    Generator gen(900);
    Tensor Q = randn({B, T, H, D}, gen, DType::F64), K = randn({B, T, H, D}, gen, DType::F64);
    Tensor V = randn({B, T, H, D}, gen, DType::F64);
    auto rows = [&](const Tensor& x, const std::vector<int64_t>& pos, int64_t n) {
      std::vector<double> all;
      for (int64_t b = 0; b < B; ++b) {
        std::vector<double> r = x.select(0, b).narrow(0, pos[size_t(b)], n).contiguous().to_double_vector();
        all.insert(all.end(), r.begin(), r.end());
      }
      return Tensor::from_vector(all, {B, n, H, D});
    };
    for (DType dt : {DType::F32, DType::BF16}) {
      INFO("dtype ", std::string(dtype_name(dt)));
      KvCache dev(B, H, D, dt, kCuda, 16), host(B, H, D, DType::F64, Device::cpu(), 16);
      std::vector<int64_t> zero(size_t(B), 0);
      const int64_t P = 45;
      // The device cache takes the rounded values the host cache holds exactly.
      auto both = [&](const Tensor& k, const Tensor& v, const std::vector<int64_t>& counts) {
        Tensor kr = k.to(dt), vr = v.to(dt);
        dev.append(kr.to(kCuda), vr.to(kCuda), counts);
        host.append(kr.to(DType::F64), vr.to(DType::F64), counts);
      };
      both(rows(K, zero, P), rows(V, zero, P), prompt);
      for (int step = 0; step < 8; ++step) {
        const int64_t n = step == 3 ? 4 : 1;
        std::vector<int64_t> pos = host.lengths();
        both(rows(K, pos, n), rows(V, pos, n), {});
        Tensor qr = rows(Q, pos, n).to(dt);
        Tensor got = dev.attend(qr.to(kCuda), 0.125), ref = host.attend(qr.to(DType::F64), 0.125);
        CHECK(dev.lengths() == host.lengths());
        CHECK(rel_err(got, ref) <= (dt == DType::F32 ? 1e-5 : 1e-2));
      }
      CHECK(dev.capacity() == host.capacity());
      CHECK(dev.capacity() > 45);
    }
  }
}
