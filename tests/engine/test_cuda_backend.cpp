// Every Backend method of the CUDA backend against the CPU backend computed in float64, on random
// (never zero) inputs of odd sizes. Device outputs are poisoned with NaN before each launch, so a
// kernel that skips an element fails. Tolerances are relative to the reference's magnitude:
// |got - ref| <= rtol * (|ref| + max |ref|), rtol 1e-12 (f64), 1e-5 (f32), 1e-3 (tf32), 1e-2 (bf16).
// Without a CUDA device every case prints "[cuda-skipped]" (CTest counts it as skipped).
#include <doctest/doctest.h>

#include "tests/common/cuda_tests.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"
#ifdef PE_WITH_CUDA
#include "kernels/cuda/cuda_api.h"
#endif

using namespace pe;

namespace {


Backend& gpu() { return *cuda_backend(); }
Backend& cpu() { return cpu_backend(); }
const Device kCuda = Device::cuda(0);
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::mt19937_64& rng() {
  static std::mt19937_64 r(20261126);
  return r;
}
// Magnitudes uniform in [lo, hi], random sign when `sign`: never zero for lo > 0.
std::vector<double> random_values(int64_t n, double lo = 0.5, double hi = 1.5, bool sign = true) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::bernoulli_distribution s(0.5);
  std::vector<double> v(static_cast<size_t>(n > 0 ? n : 0));
  for (double& x : v) x = (sign && s(rng())) ? -u(rng()) : u(rng());
  return v;
}
std::vector<int64_t> random_indices(int64_t count, int64_t n) {
  std::uniform_int_distribution<int64_t> u(0, n - 1);
  std::vector<int64_t> v(static_cast<size_t>(count));
  for (int64_t& x : v) x = u(rng());
  return v;
}

double rtol_for(DType t) {
  switch (t) {
    case DType::F64: return 1e-12;
    case DType::F32: return 1e-5;
    case DType::BF16: return 1e-2;
    default: return 0.0;
  }
}

// An input in dtype `dt` on the GPU, and the float64 CPU tensor holding exactly its values.
struct Input {
  Tensor dev, ref;
};
Input make_input(const std::vector<double>& v, const Shape& shape, DType dt) {
  Tensor h = Tensor::from_vector(v, shape).to(dt);
  return {h.to(kCuda), h.to(DType::F64)};
}
Input random_input(const Shape& shape, DType dt, double lo = 0.5, double hi = 1.5, bool sign = true) {
  return make_input(random_values(shape_numel(shape), lo, hi, sign), shape, dt);
}
Input index_input(const std::vector<int64_t>& v, const Shape& shape) {
  Tensor h = Tensor::from_vector(v, shape);
  return {h.to(kCuda), h};
}

// A device tensor filled with NaN (or a value no test writes: 123 for integers, false for bool,
// whose expected values are true): every element must be written.
Tensor poisoned(const Shape& shape, DType dt) {
  return Tensor::full(shape, is_floating(dt) ? kNaN : (dt == DType::Bool ? 0.0 : 123.0), dt, kCuda);
}
Tensor ref_empty(const Shape& shape) { return Tensor::zeros(shape, DType::F64); }

// |got - ref| <= rtol * (|ref| + max |ref|) elementwise; NaN and infinities must match exactly.
void expect_close(const Tensor& got, const Tensor& ref, double rtol, const std::string& what) {
  std::vector<double> g = got.to_double_vector(), r = ref.to_double_vector();
  REQUIRE_MESSAGE(g.size() == r.size(), what);
  double scale = 0;
  for (double x : r)
    if (std::isfinite(x)) scale = std::max(scale, std::abs(x));
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    bool ok;
    if (!std::isfinite(r[i])) {
      ok = std::isnan(r[i]) ? std::isnan(g[i]) : g[i] == r[i];
    } else {
      double err = std::abs(g[i] - r[i]);
      ok = err <= rtol * (std::abs(r[i]) + scale);  // false for NaN
      if (std::isfinite(err) && scale > 0) worst = std::max(worst, err / (std::abs(r[i]) + scale));
    }
    if (!ok && bad++ == 0) first = i;
  }
  std::ostringstream msg;
  msg << what << ": " << bad << " of " << r.size() << " elements off";
  if (bad) msg << "; first at " << first << " (got " << g[first] << ", expected " << r[first] << ")";
  msg << "; worst relative error " << worst << " (rtol " << rtol << ")";
  CHECK_MESSAGE(bad == 0, msg.str());
}

std::string label(const char* op, DType dt, const Shape& s) {
  return std::string(op) + " " + dtype_name(dt) + shape_str(s);
}

const DType kFloatTypes[] = {DType::F32, DType::F64, DType::BF16};
const DType kAllTypes[] = {DType::F32, DType::F64, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool};

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("cuda allocation host copies through the staging buffers and fill") {
    if (skip_without_cuda()) return;
    // Sizes around the 4 MiB staging chunk, and odd ones.
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003), int64_t(3 << 20)}) {
      std::vector<double> v = random_values(n);
      Tensor d = Tensor::from_vector(v, {n}, kCuda);
      CHECK(d.to_double_vector() == v);
    }
    for (DType dt : kAllTypes) {
      for (int64_t n : {int64_t(1), int64_t(33), int64_t(4099)}) {
        for (double value : {0.0, 3.0, -1.0}) {
          if ((dt == DType::U8 || dt == DType::Bool) && value < 0) continue;
          Tensor d = poisoned({n}, dt);
          gpu().fill(d, value);
          Tensor h = Tensor::empty({n}, dt);
          cpu().fill(h, value);
          expect_close(d, h, 0.0, label("fill", dt, {n}));
        }
      }
    }
    // An unaligned start (one element in) takes the scalar path.
    Tensor base = poisoned({1001}, DType::F32);
    Tensor view = base.narrow(0, 1, 1000);
    gpu().fill(view, 2.5);
    std::vector<double> got = view.to_double_vector();
    CHECK(std::all_of(got.begin(), got.end(), [](double x) { return x == 2.5; }));
  }

  TEST_CASE("cuda copy_strided converts every dtype pair") {
    if (skip_without_cuda()) return;
    for (DType from : kAllTypes) {
      for (DType to : kAllTypes) {
        for (int64_t n : {int64_t(1), int64_t(7), int64_t(1025)}) {
          // Non-negative with fractions: float -> integer truncation is defined for these.
          Tensor h = Tensor::from_vector(random_values(n, 0.25, 100.75, false), {n}).to(from);
          Tensor d = poisoned({n}, to);
          gpu().copy_strided(h.to(kCuda), d);
          Tensor r = Tensor::empty({n}, to);
          cpu().copy_strided(h, r);
          expect_close(d, r, 0.0, std::string("copy ") + dtype_name(from) + " -> " + label("", to, {n}));
        }
      }
    }
  }

  TEST_CASE("cuda copy_strided handles transposes narrows broadcasts and strided destinations") {
    if (skip_without_cuda()) return;
    struct Layout {
      const char* name;
      Shape shape;
      std::function<Tensor(const Tensor&)> src_view;  // applied to the same base on both devices
    };
    std::vector<Layout> layouts = {
        {"transpose", {33, 257}, [](const Tensor& t) { return t.transpose(0, 1); }},
        {"permute4d", {2, 7, 3, 5}, [](const Tensor& t) { return t.permute({3, 1, 0, 2}); }},
        {"narrow", {33, 257}, [](const Tensor& t) { return t.narrow(1, 3, 200).narrow(0, 1, 30); }},
        {"broadcast", {1, 257}, [](const Tensor& t) { return t.expand({65, 257}); }},
        {"broadcast-col", {33, 1}, [](const Tensor& t) { return t.expand({33, 129}); }},
        {"scalar", {1}, [](const Tensor& t) { return t.expand({7, 1, 5}); }},
    };
    for (const Layout& l : layouts) {
      for (DType from : {DType::F32, DType::BF16, DType::I64, DType::U8}) {
        for (DType to : {DType::F32, DType::BF16, DType::I64}) {
          Tensor h = Tensor::from_vector(random_values(shape_numel(l.shape), 0.25, 100.75, false), l.shape).to(from);
          Tensor hs = l.src_view(h), ds = l.src_view(h.to(kCuda));
          Tensor d = poisoned(hs.shape(), to);
          gpu().copy_strided(ds, d);
          Tensor r = Tensor::empty(hs.shape(), to);
          cpu().copy_strided(hs, r);
          expect_close(d, r, 0.0, std::string("copy ") + l.name + " " + dtype_name(from) + " -> " + dtype_name(to));
        }
      }
    }
    // Strided destination: write a [30, 200] block into the middle of a transposed buffer.
    Tensor src = Tensor::from_vector(random_values(30 * 200), {30, 200}).to(DType::F32);
    Tensor dbuf = poisoned({257, 33}, DType::F32);
    Tensor dview = dbuf.transpose(0, 1).narrow(0, 2, 30).narrow(1, 5, 200);
    gpu().copy_strided(src.to(kCuda), dview);
    expect_close(dview.contiguous(), src, 0.0, "copy into a strided destination");
  }

  TEST_CASE("cuda random matches the CPU Philox stream") {
    if (skip_without_cuda()) return;
    for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
      for (RandomKind kind : {RandomKind::Uniform, RandomKind::Normal, RandomKind::Bernoulli}) {
        if (dt == DType::I32 && kind == RandomKind::Normal) continue;  // truncating near-integers may differ
        int64_t n = 4099;
        double a = kind == RandomKind::Bernoulli ? 0.3 : -2.0, b = 3.0;
        Tensor d = poisoned({n}, dt);
        gpu().random(d, kind, a, b, 77, 1000003);
        Tensor h = Tensor::empty({n}, dt);
        cpu().random(h, kind, a, b, 77, 1000003);
        // Device log/cos differ from glibc's in the last bits; the stream itself must be identical.
        double rtol = dt == DType::F64 ? 1e-12 : (dt == DType::I32 ? 0.0 : rtol_for(dt));
        expect_close(d, h, rtol, label("random", dt, {n}));
      }
    }
  }

  TEST_CASE("cuda unary and unary_backward every op and float dtype") {
    if (skip_without_cuda()) return;
    const UnaryOp ops[] = {UnaryOp::Neg,  UnaryOp::Exp,     UnaryOp::Log,      UnaryOp::Sqrt,      UnaryOp::Rsqrt,
                           UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Relu,     UnaryOp::Gelu,      UnaryOp::Abs,
                           UnaryOp::Square, UnaryOp::PowScalar, UnaryOp::AddScalar, UnaryOp::MulScalar,
                           UnaryOp::ClampMin, UnaryOp::Recip};
    for (UnaryOp op : ops) {
      bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt || op == UnaryOp::PowScalar;
      double s = op == UnaryOp::PowScalar ? 1.7 : (op == UnaryOp::ClampMin ? 0.3 : -0.75);
      for (DType dt : kFloatTypes) {
        for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(4099)}) {
          for (bool unaligned : {false, true}) {
            std::string what = label(unary_name(op), dt, {n}) + (unaligned ? " unaligned" : "");
            // The unaligned case views elements [1, n] of an n+1 buffer.
            Input buf = random_input({n + 1}, dt, 0.5, 1.5, !positive);
            Tensor xd = buf.dev.narrow(0, unaligned ? 1 : 0, n), xr = buf.ref.narrow(0, unaligned ? 1 : 0, n);
            if (!unaligned) {
              xd = xd.contiguous();
              xr = xr.contiguous();
            }
            Tensor yd = poisoned({n}, dt), yr = ref_empty({n});
            gpu().unary(op, xd, yd, s);
            cpu().unary(op, xr, yr, s);
            expect_close(yd, yr, rtol_for(dt), what);

            Input g = random_input({n}, dt);
            for (bool with_y : {true, false}) {
              Tensor gxd = poisoned({n}, dt), gxr = ref_empty({n});
              Tensor y_dev = with_y ? yd : Tensor(), y_ref = with_y ? yd.to(Device::cpu()).to(DType::F64) : Tensor();
              gpu().unary_backward(op, xd, y_dev, g.dev, gxd, s);
              cpu().unary_backward(op, xr, y_ref, g.ref, gxr, s);
              expect_close(gxd, gxr, rtol_for(dt), what + (with_y ? " backward(y)" : " backward"));
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda binary ops on contiguous and broadcast operands") {
    if (skip_without_cuda()) return;
    const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max,
                            BinaryOp::Min, BinaryOp::Eq,  BinaryOp::Gt,  BinaryOp::Lt};
    struct Bcast {
      Shape a, b, out;
      bool transpose_a;
    };
    const Bcast shapes[] = {{{1}, {1}, {1}, false},           {{7, 33}, {7, 33}, {7, 33}, false},
                            {{257, 33}, {33}, {257, 33}, false}, {{257, 33}, {257, 1}, {257, 33}, false},
                            {{1, 1000}, {7, 1}, {7, 1000}, false}, {{33, 257}, {1}, {257, 33}, true},
                            {{4099}, {4099}, {4099}, false}};
    for (BinaryOp op : ops) {
      for (DType dt : kFloatTypes) {
        for (const Bcast& bc : shapes) {
          Input a = random_input(bc.a, dt);
          // b repeats some of a's values so that Eq, Max and Min meet ties.
          std::vector<double> av = a.ref.to_double_vector(), bv = random_values(shape_numel(bc.b));
          for (size_t i = 0; i < bv.size(); i += 3) bv[i] = av[i % av.size()];
          Input b = make_input(bv, bc.b, dt);
          auto expand = [&](const Tensor& t, bool tr) { return (tr ? t.transpose(0, 1) : t).expand(bc.out); };
          Tensor od = poisoned(bc.out, dt), orf = ref_empty(bc.out);
          gpu().binary(op, expand(a.dev, bc.transpose_a), expand(b.dev, false), od);
          cpu().binary(op, expand(a.ref, bc.transpose_a), expand(b.ref, false), orf);
          expect_close(od, orf, rtol_for(dt), label(binary_name(op), dt, bc.out));
        }
      }
    }
  }

  TEST_CASE("cuda where with every condition dtype and broadcasting") {
    if (skip_without_cuda()) return;
    for (DType cdt : kAllTypes) {
      for (DType dt : kFloatTypes) {
        Shape out{33, 257};
        std::vector<double> cv(257);
        std::bernoulli_distribution coin(0.5);
        for (double& c : cv) c = coin(rng()) ? 2.0 : 0.0;
        Tensor ch = Tensor::from_vector(cv, {257}).to(cdt);
        Input a = random_input({33, 1}, dt), b = random_input(out, dt);
        Tensor od = poisoned(out, dt), orf = ref_empty(out);
        gpu().where(ch.to(kCuda).expand(out), a.dev.expand(out), b.dev, od);
        cpu().where(ch.expand(out), a.ref.expand(out), b.ref, orf);
        expect_close(od, orf, 0.0, std::string("where cond ") + dtype_name(cdt) + " " + dtype_name(dt));
      }
    }
  }

  TEST_CASE("cuda reduce_rows sum mean and max") {
    if (skip_without_cuda()) return;
    const Shape shapes[] = {{1, 1}, {7, 33}, {33, 1000}, {5, 4099}, {1000, 7}, {3, 1025}, {2, 20000}, {4, 0},
                            {2048, 1500}};
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
      for (DType dt : kFloatTypes) {
        for (const Shape& s : shapes) {
          // Positive values for sums (no cancellation: the tolerance is relative to the sum).
          Input x = random_input(s, dt, 0.5, 1.5, op == ReduceOp::Max);
          Tensor od = poisoned({s[0]}, dt), orf = ref_empty({s[0]});
          gpu().reduce_rows(op, x.dev, od);
          cpu().reduce_rows(op, x.ref, orf);
          const char* name = op == ReduceOp::Sum ? "sum" : (op == ReduceOp::Mean ? "mean" : "max");
          expect_close(od, orf, rtol_for(dt), label(name, dt, s));
        }
      }
    }
  }

  TEST_CASE("cuda softmax and log_softmax forward and backward masked rows") {
    if (skip_without_cuda()) return;
    const Shape shapes[] = {{1, 1}, {7, 33}, {33, 1000}, {3, 1025}, {2, 5000}, {1000, 7}, {4, 30522}, {2048, 1280}};
    for (bool log : {false, true}) {
      for (DType dt : kFloatTypes) {
        for (const Shape& s : shapes) {
          std::vector<double> xv = random_values(shape_numel(s), 0.0, 4.0);
          if (s[0] >= 3) {  // row 0 fully masked (NaN, as on the CPU), row 1 partly
            for (int64_t i = 0; i < s[1]; ++i) xv[size_t(i)] = -kInf;
            for (int64_t i = 0; i < s[1]; i += 2) xv[size_t(s[1] + i)] = -kInf;
          }
          Input x = make_input(xv, s, dt);
          std::string what = label(log ? "log_softmax" : "softmax", dt, s);
          Tensor yd = poisoned(s, dt), yr = ref_empty(s);
          gpu().softmax(x.dev, yd, log);
          cpu().softmax(x.ref, yr, log);
          expect_close(yd, yr, rtol_for(dt), what);

          // Backward from the reference output rounded to dt (finite rows only).
          Input y = make_input(yr.to_double_vector(), s, dt);
          std::vector<double> yv = y.ref.to_double_vector();
          for (double& v : yv)
            if (!std::isfinite(v)) v = log ? -30.0 : 0.0;
          y = make_input(yv, s, dt);
          Input g = random_input(s, dt);
          Tensor gd = poisoned(s, dt), gr = ref_empty(s);
          gpu().softmax_backward(y.dev, g.dev, gd, log);
          cpu().softmax_backward(y.ref, g.ref, gr, log);
          expect_close(gd, gr, rtol_for(dt), what + " backward");
        }
      }
    }
  }

  TEST_CASE("cuda layer_norm forward and backward with f32 statistics") {
    if (skip_without_cuda()) return;
    const Shape shapes[] = {{1, 1}, {7, 33}, {33, 320}, {5, 1280}, {3, 1025}, {2, 4099}, {2000, 33}, {2048, 1281}};
    for (DType dt : kFloatTypes) {
      std::vector<DType> stats = {DType::F32};
      if (dt != DType::F32) stats.push_back(dt);  // ops.cpp stores statistics in x's dtype
      for (DType stat : stats) {
        for (const Shape& s : shapes) {
          for (bool affine : {true, false}) {
            int64_t rows = s[0], n = s[1];
            std::string what = label("layer_norm", dt, s) + " stats " + dtype_name(stat) + (affine ? "" : " no affine");
            // Offset mean: the variance must come from centred values.
            std::vector<double> xv = random_values(rows * n);
            for (double& v : xv) v += 5.0;
            Input x = make_input(xv, s, dt);
            Input w = random_input({n}, dt), b = random_input({n}, dt);
            Tensor wd = affine ? w.dev : Tensor(), bd = affine ? b.dev : Tensor();
            Tensor wr = affine ? w.ref : Tensor(), br = affine ? b.ref : Tensor();
            Tensor yd = poisoned(s, dt), md = poisoned({rows}, stat), rd = poisoned({rows}, stat);
            Tensor yr = ref_empty(s), mr = ref_empty({rows}), rr = ref_empty({rows});
            gpu().layer_norm(x.dev, wd, bd, 1e-5, yd, md, rd);
            cpu().layer_norm(x.ref, wr, br, 1e-5, yr, mr, rr);
            // y is rounded to dt from values of size ~ |xhat * w + b| <= a few units.
            expect_close(yd, yr, rtol_for(dt), what);
            expect_close(md, mr, rtol_for(stat), what + " mean");
            expect_close(rd, rr, n == 1 ? 1e-3 : rtol_for(stat), what + " rstd");

            // Backward from the reference statistics rounded to `stat`.
            Tensor ms = mr.to(stat), rs = rr.to(stat);
            Input g = random_input(s, dt);
            Tensor gxd = poisoned(s, dt), gwd = affine ? poisoned({n}, dt) : Tensor(),
                   gbd = affine ? poisoned({n}, dt) : Tensor();
            Tensor gxr = ref_empty(s), gwr = affine ? ref_empty({n}) : Tensor(), gbr = affine ? ref_empty({n}) : Tensor();
            gpu().layer_norm_backward(x.dev, wd, ms.to(kCuda), rs.to(kCuda), g.dev, gxd, gwd, gbd);
            cpu().layer_norm_backward(x.ref, wr, ms.to(DType::F64), rs.to(DType::F64), g.ref, gxr, gwr, gbr);
            if (n > 1) expect_close(gxd, gxr, rtol_for(dt), what + " gx");
            if (affine) {
              expect_close(gwd, gwr, rtol_for(dt), what + " gweight");
              expect_close(gbd, gbr, rtol_for(dt), what + " gbias");
              // Deterministic: the same call gives the same bits.
              Tensor gw2 = poisoned({n}, dt);
              gpu().layer_norm_backward(x.dev, wd, ms.to(kCuda), rs.to(kCuda), g.dev, poisoned(s, dt), gw2, Tensor());
              expect_close(gw2, gwd, 0.0, what + " gweight repeat");
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda add_layer_norm writes x + r and its layer norm in one pass") {
    if (skip_without_cuda()) return;
    const Shape shapes[] = {{1, 1}, {7, 33}, {5, 1280}, {3, 1025}, {2, 4099}, {2000, 33}, {300, 768}};
    for (DType dt : kFloatTypes) {
      for (const Shape& s : shapes) {
        for (bool affine : {true, false}) {
          int64_t rows = s[0], n = s[1];
          std::string what = label("add_layer_norm", dt, s) + (affine ? "" : " no affine");
          std::vector<double> xv = random_values(rows * n);
          for (double& v : xv) v += 5.0;  // offset mean: the variance must come from centred values
          Input x = make_input(xv, s, dt), r = random_input(s, dt);
          Input w = random_input({n}, dt), b = random_input({n}, dt);
          Tensor wd = affine ? w.dev : Tensor(), bd = affine ? b.dev : Tensor();
          Tensor wr = affine ? w.ref : Tensor(), br = affine ? b.ref : Tensor();
          DType stat = dt == DType::F64 ? DType::F64 : DType::F32;  // as autograd/ops.cpp allocates them
          Tensor sd = poisoned(s, dt), yd = poisoned(s, dt), md = poisoned({rows}, stat), rd = poisoned({rows}, stat);
          Tensor sr = ref_empty(s), yr = ref_empty(s), mr = ref_empty({rows}), rr = ref_empty({rows});
          gpu().add_layer_norm(x.dev, r.dev, wd, bd, 1e-5, sd, yd, md, rd);
          cpu().add_layer_norm(x.ref, r.ref, wr, br, 1e-5, sr, yr, mr, rr);
          expect_close(sd, sr, rtol_for(dt), what + " sum");
          expect_close(yd, yr, rtol_for(dt), what);
          expect_close(md, mr, rtol_for(dt), what + " mean");
          expect_close(rd, rr, n == 1 ? 1e-3 : rtol_for(dt), what + " rstd");
        }
      }
    }
  }

  TEST_CASE("cuda matmul in f64 f32 tf32 and bf16 with every transpose and broadcast batches") {
    if (skip_without_cuda()) return;
    struct Mm {
      int64_t batch, M, N, K;
    };
    const Mm shapes[] = {{1, 1, 1, 1}, {1, 7, 33, 257}, {3, 33, 7, 1000}, {2, 257, 129, 65}, {1, 1000, 1, 33},
                         {4, 64, 64, 24}, {2, 3, 4, 0}};
    struct Mode {
      DType in, out;
      bool tf32;
      double rtol;
    };
    const Mode modes[] = {{DType::F64, DType::F64, false, 1e-12},
                          {DType::F32, DType::F32, false, 1e-5},
                          {DType::F32, DType::F32, true, 1e-3},
                          {DType::BF16, DType::BF16, false, 1e-2},
                          {DType::BF16, DType::F32, false, 1e-4}};  // fp32 accumulation and output
    for (const Mode& mode : modes) {
#ifdef PE_WITH_CUDA
      pe::cuda::set_allow_tf32(mode.tf32);
#endif
      for (const Mm& mm : shapes) {
        for (int tr = 0; tr < 4; ++tr) {
          bool ta = tr & 1, tb = tr & 2;
          for (int bcast = 0; bcast < 3; ++bcast) {  // 0: none, 1: a shared by the batch, 2: b shared
            for (double beta : {0.0, 0.5}) {
              Shape sa = ta ? Shape{mm.batch, mm.K, mm.M} : Shape{mm.batch, mm.M, mm.K};
              Shape sb = tb ? Shape{mm.batch, mm.N, mm.K} : Shape{mm.batch, mm.K, mm.N};
              Shape so{mm.batch, mm.M, mm.N};
              Input a = random_input({bcast == 1 ? 1 : mm.batch, sa[1], sa[2]}, mode.in);
              Input b = random_input({bcast == 2 ? 1 : mm.batch, sb[1], sb[2]}, mode.in);
              auto batch_view = [&](const Tensor& t, const Shape& s, bool shared) {
                return make_view(t, s, {shared ? 0 : s[1] * s[2], s[2], 1}, t.offset());
              };
              Input c = random_input(so, mode.out);
              Tensor od = beta == 0.0 ? poisoned(so, mode.out) : c.dev.clone();
              Tensor orf = c.ref.clone();
              gpu().matmul(batch_view(a.dev, sa, bcast == 1), batch_view(b.dev, sb, bcast == 2), od, ta, tb, 1.5, beta);
              cpu().matmul(batch_view(a.ref, sa, bcast == 1), batch_view(b.ref, sb, bcast == 2), orf, ta, tb, 1.5, beta);
              std::ostringstream what;
              what << "matmul " << dtype_name(mode.in) << "->" << dtype_name(mode.out) << (mode.tf32 ? " tf32" : "")
                   << " b" << mm.batch << " M" << mm.M << " N" << mm.N << " K" << mm.K << " ta" << ta << " tb" << tb
                   << " bcast" << bcast << " beta" << beta;
              expect_close(od, orf, mode.rtol, what.str());
            }
          }
        }
      }
    }
#ifdef PE_WITH_CUDA
    pe::cuda::set_allow_tf32(false);
#endif
  }

  TEST_CASE("cuda matmul_bias puts the linear bias in the GEMM epilogue - and adds it itself where none applies") {
    if (skip_without_cuda()) return;
    struct Mode {
      DType in, out;
      double rtol;
    };
    const Mode modes[] = {{DType::F64, DType::F64, 1e-12},
                          {DType::F32, DType::F32, 1e-5},
                          {DType::BF16, DType::BF16, 1e-2},
                          {DType::BF16, DType::F32, 1e-4}};  // the autocast linear: f32 bias and output
    const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 257}, {257, 129, 65}, {1000, 3, 33}, {5, 8, 0}};
    for (const Mode& mode : modes) {
      for (const auto& sz : sizes) {
        const int64_t M = sz[0], N = sz[1], K = sz[2];
        for (int tr = 0; tr < 4; ++tr) {
          bool ta = tr & 1, tb = tr & 2;
          // offset 1 element: operands no longer 16-byte aligned (cuBLASLt may offer no algorithm)
          for (int64_t off : {int64_t(0), int64_t(1)}) {
            Shape sa = ta ? Shape{1, K, M} : Shape{1, M, K}, sb = tb ? Shape{1, N, K} : Shape{1, K, N};
            Input a = random_input({shape_numel(sa) + off}, mode.in), b = random_input({shape_numel(sb) + off}, mode.in);
            Input bias = random_input({N}, mode.out);
            auto view = [&](const Tensor& t, const Shape& s) { return t.narrow(0, off, shape_numel(s)).view(s); };
            Tensor od = poisoned({1, M, N}, mode.out), orf = ref_empty({1, M, N});
            gpu().matmul_bias(view(a.dev, sa), view(b.dev, sb), bias.dev, od, ta, tb);
            cpu().matmul_bias(view(a.ref, sa), view(b.ref, sb), bias.ref, orf, ta, tb);
            std::ostringstream what;
            what << "matmul_bias " << dtype_name(mode.in) << "->" << dtype_name(mode.out) << " M" << M << " N" << N
                 << " K" << K << " ta" << ta << " tb" << tb << " offset" << off;
            expect_close(od, orf, mode.rtol, what.str());
          }
        }
      }
    }
  }

  TEST_CASE("cuda index_select for every dtype wide and narrow rows") {
    if (skip_without_cuda()) return;
    struct Is {
      int64_t outer, n, inner, k;
    };
    const Is shapes[] = {{1, 33, 1280, 257}, {3, 7, 5, 11}, {2, 50, 33, 1000}, {1, 33, 8, 4099}, {4, 1, 1, 3}};
    for (DType dt : kAllTypes) {
      for (const Is& s : shapes) {
        Tensor h = Tensor::from_vector(random_values(s.outer * s.n * s.inner, 0.25, 100.75, false),
                                       {s.outer, s.n, s.inner})
                       .to(dt);
        Input idx = index_input(random_indices(s.k, s.n), {s.k});
        Shape so{s.outer, s.k, s.inner};
        Tensor od = poisoned(so, dt), orf = Tensor::empty(so, dt);
        gpu().index_select(h.to(kCuda), idx.dev, od);
        cpu().index_select(h, idx.ref, orf);
        expect_close(od, orf, 0.0, label("index_select", dt, so));
      }
    }
  }

  TEST_CASE("cuda index_add in index order column and sorted paths deterministic") {
    if (skip_without_cuda()) return;
    struct Ia {
      int64_t outer, n, inner, k;
    };
    // outer * inner >= 8192 takes the column path for f32/f64; the others (and bf16) sort by target.
    const Ia shapes[] = {{2, 40, 4100, 257}, {1, 33, 1280, 4000}, {3, 7, 5, 1000}, {1, 1, 1, 1}, {2, 30522, 3, 77}};
    for (DType dt : kFloatTypes) {
      for (const Ia& s : shapes) {
        Input dst = random_input({s.outer, s.n, s.inner}, dt);
        Input src = random_input({s.outer, s.k, s.inner}, dt);
        Input idx = index_input(random_indices(s.k, s.n), {s.k});
        Tensor dd = dst.dev.clone(), dr = dst.ref.clone();
        gpu().index_add(dd, idx.dev, src.dev);
        cpu().index_add(dr, idx.ref, src.ref);
        // Several additions per target: bf16 rounds once at the end, so 1e-2 of the magnitude holds.
        expect_close(dd, dr, rtol_for(dt), label("index_add", dt, {s.outer, s.n, s.inner, s.k}));
        Tensor again = dst.dev.clone();
        gpu().index_add(again, idx.dev, src.dev);
        expect_close(again, dd, 0.0, label("index_add repeat", dt, {s.outer, s.n, s.inner, s.k}));
      }
    }
  }

  TEST_CASE("cuda gather_rows for every dtype and scatter_add_rows for float dtypes") {
    if (skip_without_cuda()) return;
    struct Gr {
      int64_t rows, n, k;
    };
    const Gr shapes[] = {{1000, 33, 1}, {7, 257, 33}, {3, 5, 20}, {1, 1, 1}, {2, 30522, 1025}};
    for (const Gr& s : shapes) {
      Input idx = index_input(random_indices(s.rows * s.k, s.n), {s.rows, s.k});
      for (DType dt : kAllTypes) {
        Tensor h = Tensor::from_vector(random_values(s.rows * s.n, 0.25, 100.75, false), {s.rows, s.n}).to(dt);
        Tensor od = poisoned({s.rows, s.k}, dt), orf = Tensor::empty({s.rows, s.k}, dt);
        gpu().gather_rows(h.to(kCuda), idx.dev, od);
        cpu().gather_rows(h, idx.ref, orf);
        expect_close(od, orf, 0.0, label("gather", dt, {s.rows, s.n, s.k}));
      }
      for (DType dt : kFloatTypes) {
        Input dst = random_input({s.rows, s.n}, dt), src = random_input({s.rows, s.k}, dt);
        Tensor dd = dst.dev.clone(), dr = dst.ref.clone();
        gpu().scatter_add_rows(dd, idx.dev, src.dev);
        cpu().scatter_add_rows(dr, idx.ref, src.ref);
        expect_close(dd, dr, rtol_for(dt), label("scatter_add", dt, {s.rows, s.n, s.k}));
      }
    }
  }

  TEST_CASE("cuda index errors are raised as pe::Error at the next synchronisation") {
    if (skip_without_cuda()) return;
    Input x = random_input({1, 10, 4}, DType::F32);
    Input bad = index_input({0, 3, 10}, {3});
    Tensor out = poisoned({1, 3, 4}, DType::F32);
    auto select_bad = [&] {
      gpu().index_select(x.dev, bad.dev, out);
      gpu().synchronize();
    };
    CHECK_THROWS_AS(select_bad(), Error);
    // The error was consumed: later work runs normally.
    Input good = index_input({0, 3, 9}, {3});
    gpu().index_select(x.dev, good.dev, out);
    CHECK_NOTHROW(gpu().synchronize());
    Tensor g = poisoned({1, 1}, DType::F32);
    auto gather_bad = [&] {
      gpu().gather_rows(x.dev.view({10, 4}).narrow(0, 0, 1), index_input({-1}, {1, 1}).dev, g);
      (void)g.to_double_vector();  // copy_to_host synchronises and raises
    };
    CHECK_THROWS_AS(gather_bad(), Error);
  }

  TEST_CASE("cuda rotary forward and inverse") {
    if (skip_without_cuda()) return;
    const Shape shapes[] = {{1, 1, 1, 2}, {2, 33, 3, 24}, {1, 257, 20, 64}, {2, 7, 1, 130}, {1, 1025, 2, 32}};
    for (DType dt : kFloatTypes) {
      for (const Shape& s : shapes) {
        for (double base : {10000.0, 500.0}) {
          for (bool inverse : {false, true}) {
            Input x = random_input(s, dt);
            Tensor od = poisoned(s, dt), orf = ref_empty(s);
            gpu().rotary(x.dev, od, base, inverse);
            cpu().rotary(x.ref, orf, base, inverse);
            std::string what = label(inverse ? "rotary inverse" : "rotary", dt, s);
            // f32 angles are rounded to f32 (as on the CPU in f32): at position 1024 that is up to
            // 6e-5 rad, so against float64 the f32 result holds to ~1e-4 of the magnitude.
            expect_close(od, orf, dt == DType::F32 ? 3e-4 : rtol_for(dt), what);
            if (dt == DType::F32) {  // same formula in the same precision as the CPU backend
              Tensor o32 = Tensor::empty(s, DType::F32);
              cpu().rotary(x.ref.to(DType::F32), o32, base, inverse);
              expect_close(od, o32, 1e-5, what + " vs CPU f32");
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda rotary with per-token positions (packed rows) forward and inverse") {
    if (skip_without_cuda()) return;
    // Packed layouts [1, T, H, D]: positions restart per sequence; and [B, L] rows with offsets.
    struct Case {
      Shape s;
      std::vector<int64_t> lens;  // sequence lengths summing to B * L (positions 0..len-1 each)
    };
    const Case cases[] = {{{1, 1, 1, 2}, {1}}, {{1, 40, 3, 24}, {17, 1, 22}}, {{2, 9, 20, 16}, {5, 13}},
                          {{1, 530, 2, 34}, {7, 511, 12}}};
    for (DType dt : kFloatTypes) {
      for (const Case& c : cases) {
        std::vector<int64_t> pos;
        for (int64_t n : c.lens)
          for (int64_t l = 0; l < n; ++l) pos.push_back(l);
        Input p = index_input(pos, {int64_t(pos.size())});
        for (bool inverse : {false, true}) {
          Input x = random_input(c.s, dt);
          Tensor od = poisoned(c.s, dt), orf = ref_empty(c.s);
          gpu().rotary(x.dev, od, 10000.0, inverse, p.dev);
          cpu().rotary(x.ref, orf, 10000.0, inverse, p.ref);
          std::string what = label(inverse ? "rotary positions inverse" : "rotary positions", dt, c.s);
          expect_close(od, orf, dt == DType::F32 ? 3e-4 : rtol_for(dt), what);
          if (dt == DType::F32) {
            Tensor o32 = Tensor::empty(c.s, DType::F32);
            cpu().rotary(x.ref.to(DType::F32), o32, 10000.0, inverse, p.ref);
            expect_close(od, o32, 1e-5, what + " vs CPU f32");
          }
        }
      }
    }
  }

  TEST_CASE("cuda bias_act (bias add + gelu or relu, with and without pre) against the CPU") {
    if (skip_without_cuda()) return;
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {7, 33}, {130, 257}};
    for (DType dt : kFloatTypes) {
      for (auto [rows, n] : shapes) {
        for (UnaryOp op : {UnaryOp::Gelu, UnaryOp::Relu}) {
          for (bool with_pre : {false, true}) {
            Input y = random_input({rows, n}, dt), b = random_input({n}, dt);
            Tensor od = poisoned({rows, n}, dt), pd = with_pre ? poisoned({rows, n}, dt) : Tensor();
            Tensor orf = ref_empty({rows, n}), prf = with_pre ? ref_empty({rows, n}) : Tensor();
            gpu().bias_act(y.dev, b.dev, op, pd, od);
            cpu().bias_act(y.ref, b.ref, op, prf, orf);
            std::string what = label(op == UnaryOp::Gelu ? "bias_act gelu" : "bias_act relu", dt, {rows, n});
            expect_close(od, orf, rtol_for(dt), what);
            if (with_pre) expect_close(pd, prf, rtol_for(dt), what + " pre");
          }
        }
      }
    }
  }

  TEST_CASE("cuda adam_step for f32 f64 and bf16 parameters") {
    if (skip_without_cuda()) return;
    for (DType dt : kFloatTypes) {
      DType state = dt == DType::F64 ? DType::F64 : DType::F32;
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(4099)}) {
        for (bool decoupled : {true, false}) {
          AdamParams p;
          p.lr = 1e-2;
          p.weight_decay = 0.1;
          p.decoupled = decoupled;
          p.step = 10;
          Input w = random_input({n}, dt), g = random_input({n}, dt);
          Input m = random_input({n}, state, 0.01, 0.1), v = random_input({n}, state, 0.01, 0.1, false);
          Tensor wd = w.dev.clone(), md = m.dev.clone(), vd = v.dev.clone();
          Tensor wr = w.ref.clone(), mr = m.ref.clone(), vr = v.ref.clone();
          gpu().adam_step(wd, g.dev, md, vd, p);
          cpu().adam_step(wr, g.ref, mr, vr, p);
          std::string what = label("adam_step", dt, {n}) + (decoupled ? " adamw" : " l2");
          expect_close(wd, wr, rtol_for(dt), what + " param");
          expect_close(md, mr, rtol_for(state), what + " m");
          expect_close(vd, vr, rtol_for(state), what + " v");
        }
      }
    }
  }

  TEST_CASE("cuda multi-tensor Adam with fp32 master weights and bf16 working copies") {
    if (skip_without_cuda()) return;
    // 41 tensors (more than one launch holds), one spanning several 64K chunks, odd sizes; once
    // with a tensor of 21M elements (more blocks than one launch holds).
    for (DType gdt : {DType::F32, DType::BF16}) {
      for (int out_kind = 0; out_kind < 3; ++out_kind) {  // none, bf16, f32 working copy
        for (bool unaligned : {false, true}) {
          std::vector<int64_t> sizes;
          for (int i = 0; i < 40; ++i) sizes.push_back(1 + 97 * i);
          sizes.push_back(200003);
          if (gdt == DType::BF16 && out_kind == 1 && !unaligned) sizes.push_back(21000001);
          AdamParams p;
          p.lr = 1e-2;
          p.weight_decay = 0.05;
          p.step = 3;
          std::vector<Tensor> wd, gd, md, vd, od, wr, gr, mr, vr, orf;
          for (int64_t n : sizes) {
            int64_t off = unaligned ? 1 : 0;
            Input w = random_input({n + off}, DType::F32), g = random_input({n + off}, gdt);
            Input m = random_input({n + off}, DType::F32, 0.01, 0.1),
                  v = random_input({n + off}, DType::F32, 0.01, 0.1, false);
            auto cut = [&](const Tensor& t) { return t.narrow(0, off, n); };
            wd.push_back(cut(w.dev.clone()));
            gd.push_back(cut(g.dev));
            md.push_back(cut(m.dev.clone()));
            vd.push_back(cut(v.dev.clone()));
            wr.push_back(cut(w.ref).contiguous().clone());
            gr.push_back(cut(g.ref).contiguous());
            mr.push_back(cut(m.ref).contiguous().clone());
            vr.push_back(cut(v.ref).contiguous().clone());
            if (out_kind) {
              DType odt = out_kind == 1 ? DType::BF16 : DType::F32;
              od.push_back(poisoned({n}, odt));
              orf.push_back(ref_empty({n}));
            }
          }
          gpu().adam_multi_tensor(wd, gd, md, vd, od, p);
          cpu().adam_multi_tensor(wr, gr, mr, vr, orf, p);
          for (size_t t = 0; t < sizes.size(); t += 1) {
            if (sizes.size() > 10 && t % 7 != 0 && t + 2 < sizes.size()) continue;  // a sample, plus the big ones
            std::ostringstream what;
            what << "adam_multi_tensor grad " << dtype_name(gdt) << " out " << out_kind << (unaligned ? " unaligned" : "")
                 << " tensor " << t << " (" << sizes[t] << ")";
            expect_close(wd[t], wr[t], 1e-5, what.str() + " master");
            expect_close(md[t], mr[t], 1e-5, what.str() + " m");
            expect_close(vd[t], vr[t], 1e-5, what.str() + " v");
            if (out_kind) expect_close(od[t], orf[t], out_kind == 1 ? 1e-2 : 1e-5, what.str() + " working");
          }
        }
      }
    }
  }

  TEST_CASE("cuda has_nonfinite finds a single NaN or infinity") {
    if (skip_without_cuda()) return;
    for (DType dt : kFloatTypes) {
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)}) {
        Input x = random_input({n}, dt);
        CHECK_FALSE(gpu().has_nonfinite(x.dev));
        for (double bad : {kNaN, kInf, -kInf}) {
          for (int64_t at : {int64_t(0), n / 2, n - 1}) {
            std::vector<double> v = x.ref.to_double_vector();
            v[size_t(at)] = bad;
            Input y = make_input(v, {n}, dt);
            CHECK_MESSAGE(gpu().has_nonfinite(y.dev), label("has_nonfinite", dt, {n}) << " at " << at);
            CHECK(cpu().has_nonfinite(y.ref));
          }
        }
      }
      // Strided and list forms.
      std::vector<double> v = random_values(33 * 257);
      v[5 * 257 + 200] = kNaN;
      Input m = make_input(v, {33, 257}, dt);
      CHECK(gpu().has_nonfinite(m.dev.transpose(0, 1)));
      CHECK_FALSE(gpu().has_nonfinite(m.dev.narrow(0, 0, 5)));
      CHECK(gpu().any_nonfinite({random_input({7}, dt).dev, m.dev}));
      CHECK_FALSE(gpu().any_nonfinite({random_input({7}, dt).dev, m.dev.narrow(0, 6, 27)}));
    }
    CHECK_FALSE(gpu().has_nonfinite(Tensor::full({9}, 3.0, DType::I64, kCuda)));
  }

#ifdef PE_WITH_CUDA
  TEST_CASE("cuda the caching allocator reuses freed blocks and tracks peak bytes") {
    if (skip_without_cuda()) return;
    gpu().synchronize();
    pe::cuda::empty_cache();
    pe::cuda::reset_peak_memory();
    pe::cuda::MemoryStats s0 = pe::cuda::memory_stats();
    {
      Tensor a = Tensor::empty({1000003}, DType::F32, kCuda);
      pe::cuda::MemoryStats s1 = pe::cuda::memory_stats();
      CHECK(s1.allocated_bytes - s0.allocated_bytes >= 4000012);
      CHECK(s1.allocated_bytes - s0.allocated_bytes <= 4000012 + 4000012 / 8 + 512);
      CHECK(s1.num_device_mallocs == s0.num_device_mallocs + 1);
    }
    pe::cuda::MemoryStats s2 = pe::cuda::memory_stats();
    CHECK(s2.allocated_bytes == s0.allocated_bytes);
    CHECK(s2.cached_bytes > s0.cached_bytes);
    {
      Tensor b = Tensor::empty({1000001}, DType::F32, kCuda);  // same size class: no cudaMalloc
      CHECK(pe::cuda::memory_stats().num_device_mallocs == s2.num_device_mallocs);
    }
    CHECK(pe::cuda::memory_stats().peak_allocated_bytes >= s2.peak_allocated_bytes);
    pe::cuda::empty_cache();
    pe::cuda::MemoryStats s3 = pe::cuda::memory_stats();
    CHECK(s3.cached_bytes == 0);
    CHECK(s3.reserved_bytes == s3.allocated_bytes);
  }

  TEST_CASE("cuda out of device memory is a pe::Error naming the request - the cache is released first") {
    if (skip_without_cuda()) return;
    { Tensor cached = Tensor::empty({123457}, DType::F32, kCuda); }  // freed into the cache
    CHECK(pe::cuda::memory_stats().cached_bytes > 0);
    pe::cuda::MemoryStats s0 = pe::cuda::memory_stats();
    // 2^45 floats: 128 TiB, more than any device holds.
    CHECK_THROWS_WITH_AS(Tensor::empty({int64_t(1) << 45}, DType::F32, kCuda),
                         doctest::Contains("out of device memory requesting 140737488355328 bytes"), pe::Error);
    pe::cuda::MemoryStats s1 = pe::cuda::memory_stats();
    CHECK(s1.cached_bytes == 0);  // returned to the driver before the retry
    CHECK(s1.allocated_bytes == s0.allocated_bytes);
    // The allocator and the device still work.
    Tensor t = Tensor::full({1000}, 2.5, DType::F32, kCuda);
    std::vector<double> v = t.to_double_vector();
    CHECK(v.size() == 1000);
    CHECK(v[999] == 2.5);
  }
#endif
}

// The CPU reference of the appended Backend methods (kernels/cpu/extra.cpp), which the CUDA cases
// above compare against; runs everywhere.
TEST_SUITE("unit") {
  TEST_CASE("cpu has_nonfinite and multi-tensor Adam match their definitions") {
    Tensor x = Tensor::from_vector(random_values(1001), {7, 143});
    CHECK_FALSE(cpu().has_nonfinite(x));
    CHECK_FALSE(cpu().has_nonfinite(Tensor::full({5}, 2.0, DType::I32)));
    std::vector<double> v = x.to_double_vector();
    v[500] = kInf;
    Tensor y = Tensor::from_vector(v, {7, 143});
    CHECK(cpu().has_nonfinite(y));
    CHECK(cpu().has_nonfinite(y.transpose(0, 1)));
    CHECK(cpu().any_nonfinite({x, y.to(DType::BF16)}));
    CHECK_FALSE(cpu().any_nonfinite({x, x.narrow(0, 1, 2)}));

    AdamParams p;
    p.lr = 1e-2;
    p.weight_decay = 0.1;
    p.step = 4;
    for (bool decoupled : {true, false}) {
      p.decoupled = decoupled;
      std::vector<Tensor> w, g, m, v2, work, w_ref, m_ref, v_ref;
      for (int64_t n : {int64_t(1), int64_t(33), int64_t(1000)}) {
        Tensor wi = Tensor::from_vector(random_values(n), {n});
        Tensor gi = Tensor::from_vector(random_values(n), {n});
        Tensor mi = Tensor::from_vector(random_values(n, 0.01, 0.1), {n});
        Tensor vi = Tensor::from_vector(random_values(n, 0.01, 0.1, false), {n});
        w.push_back(wi.clone());
        g.push_back(gi.to(DType::BF16));
        m.push_back(mi.clone());
        v2.push_back(vi.clone());
        work.push_back(Tensor::empty({n}, DType::F32));
        w_ref.push_back(wi.clone());
        m_ref.push_back(mi.clone());
        v_ref.push_back(vi.clone());
        cpu().adam_step(w_ref.back(), g.back().to(DType::F64), m_ref.back(), v_ref.back(), p);
      }
      cpu().adam_multi_tensor(w, g, m, v2, work, p);
      for (size_t t = 0; t < w.size(); ++t) {
        expect_close(w[t], w_ref[t], 0.0, "adam_multi_tensor master");
        expect_close(m[t], m_ref[t], 0.0, "adam_multi_tensor m");
        expect_close(v2[t], v_ref[t], 0.0, "adam_multi_tensor v");
        expect_close(work[t], w_ref[t].to(DType::F32), 0.0, "adam_multi_tensor working copy");
      }
    }
  }
}
