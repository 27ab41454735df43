#include "autograd/fused.h"

#include <algorithm>
#include <cmath>

namespace pe {

namespace {

using Grads = std::vector<Tensor>;

Backend& be(const Tensor& t) { return backend_for(t.device()); }
DType acc_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

void check_floats(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor& a = **ts.begin();
  for (const Tensor* t : ts) {
    PE_CHECK(t->defined(), op, ": undefined input");
    PE_CHECK(is_floating(t->dtype()), op, ": expected floating tensors, got ", t->str());
    PE_CHECK(t->dtype() == a.dtype() && t->device() == a.device(), op, ": inputs ", a.str(), " and ", t->str(),
             " differ in dtype or device");
  }
}

// ------------------------------------------------------------------ attention
Tensor attention_node(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionLayout& L) {
  Tensor qd = q.detach().contiguous(), kd = k.detach().contiguous(), vd = v.detach().contiguous();
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  Shape ls(q.shape().begin(), q.shape().end() - 1);
  Tensor lse = Tensor::empty(ls, acc_dtype(q.dtype()), q.device());
  if (out.numel()) be(q).attention_forward(qd, kd, vd, L, out, lse);
  Tensor od = out.detach();
  return record(out, op, {q, k, v}, [qd, kd, vd, od, lse, L](const Tensor& g) {
    Tensor gq = Tensor::empty(qd.shape(), qd.dtype(), qd.device());
    Tensor gk = Tensor::empty(kd.shape(), kd.dtype(), kd.device());
    Tensor gv = Tensor::empty(vd.shape(), vd.dtype(), vd.device());
    if (qd.numel() && kd.numel()) {
      be(qd).attention_backward(qd, kd, vd, od, lse, g.contiguous(), L, gq, gk, gv);
    } else {
      if (gq.numel()) be(qd).fill(gq, 0.0);
      if (gk.numel()) be(kd).fill(gk, 0.0);
      if (gv.numel()) be(vd).fill(gv, 0.0);
    }
    return Grads{gq, gk, gv};
  });
}

// cu_seqlens on q's device; from the CPU: checked, with the longest length returned through `max_len`.
Tensor prepare_cu(const char* op, const char* what, const Tensor& cu, int64_t rows, const Device& dev,
                  int64_t& max_len) {
  PE_CHECK(cu.defined() && (cu.dtype() == DType::I32 || cu.dtype() == DType::I64) && cu.dim() == 1 && cu.numel() >= 1,
           op, ": ", what, " must be i32 or i64 [B+1], got ", cu.defined() ? cu.str() : "undefined");
  if (!cu.device().is_cpu()) {
    PE_CHECK(cu.device() == dev, op, ": ", what, " ", cu.str(), " is on another device than q");
    PE_CHECK(max_len > 0, op, ": ", what, " on the device needs the longest length passed (got ", max_len, ")");
    return cu.contiguous();
  }
  std::vector<int64_t> c = cu.to_int_vector();
  PE_CHECK(c.front() == 0 && c.back() == rows, op, ": ", what, " must run from 0 to ", rows, ", got ", c.front(),
           " .. ", c.back());
  int64_t longest = 0;
  for (size_t i = 1; i < c.size(); ++i) {
    PE_CHECK(c[i] >= c[i - 1], op, ": ", what, " decreases at ", i);
    longest = std::max(longest, c[i] - c[i - 1]);
  }
  PE_CHECK(max_len <= 0 || max_len >= longest, op, ": max length ", max_len, " is below the longest sequence of ", what,
           " (", longest, ")");
  if (max_len <= 0) max_len = longest;
  return cu.contiguous().to(dev);
}

// ------------------------------------------------------------------ InfoNCE
// dL/d logit_scale from the per-row shares of dL/d log(a): zero where the scale is clamped
// (the reference min(s, max) passes the gradient for s <= max).
Tensor logit_scale_grad(const Tensor& glog, const Tensor& s, double max_logit_scale) {
  Tensor sv = s.reshape({}).to(glog.dtype());
  Tensor clamped = gt(sv, Tensor::full({}, max_logit_scale, glog.dtype(), glog.device()));
  return mul(sum(glog), add(neg(clamped), 1.0)).reshape(s.shape());
}

void check_info_nce_inputs(const char* op, const Tensor& x, const Tensor& y, const Tensor& logit_scale) {
  check_floats(op, {&x, &y});
  PE_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1), op, ": embeddings must be [R, D] and [C, D], got ",
           x.str(), " and ", y.str());
  PE_CHECK(x.size(0) > 0 && y.size(0) > 0, op, ": no rows in ", x.str(), " or ", y.str());
  PE_CHECK(logit_scale.defined() && logit_scale.numel() == 1 && is_floating(logit_scale.dtype()), op,
           ": logit scale must be one floating element, got ", logit_scale.defined() ? logit_scale.str() : "undefined");
  PE_CHECK(logit_scale.device() == x.device(), op, ": logit scale ", logit_scale.str(), " is not on ",
           x.device().str());
}

Tensor prepare_group(const char* op, const Tensor& group, int64_t n, const Device& dev) {
  if (!group.defined()) return Tensor();
  PE_CHECK(group.dtype() == DType::I64 && group.shape() == Shape{n}, op, ": group must be i64 [", n, "], got ",
           group.str());
  return group.detach().contiguous().to(dev);
}

}  // namespace

Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, double scale,
                       bool causal) {
  const char* op = "flash_attention";
  check_floats(op, {&q, &k, &v});
  PE_CHECK(q.dim() == 4 && k.dim() == 4 && k.shape() == v.shape() && k.size(0) == q.size(0) && k.size(2) == q.size(2) &&
               k.size(3) == q.size(3),
           op, ": q [B, Lq, H, D], k, v [B, Lk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
  AttentionLayout L;
  L.scale = scale;
  L.causal = causal;
  if (key_mask.defined()) {
    PE_CHECK(key_mask.shape() == (Shape{q.size(0), k.size(1)}), op, ": key mask ", key_mask.str(), " is not [",
             q.size(0), ", ", k.size(1), "]");
    Tensor m = key_mask.detach();
    if (m.dtype() != DType::Bool && m.dtype() != DType::U8) m = m.to(DType::Bool);  // nonzero = real
    L.key_mask = m.to(q.device()).contiguous();
  }
  return attention_node(op, q, k, v, L);
}

Tensor flash_attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu_q, const Tensor& cu_k,
                              int64_t max_q, int64_t max_k, double scale, bool causal) {
  const char* op = "flash_attention_varlen";
  check_floats(op, {&q, &k, &v});
  PE_CHECK(q.dim() == 3 && k.dim() == 3 && k.shape() == v.shape() && k.size(1) == q.size(1) && k.size(2) == q.size(2),
           op, ": q [Tq, H, D], k, v [Tk, H, D] expected, got ", q.str(), ", ", k.str(), ", ", v.str());
  AttentionLayout L;
  L.scale = scale;
  L.causal = causal;
  L.max_q = max_q;
  L.max_k = max_k;
  L.cu_q = prepare_cu(op, "cu_q", cu_q, q.size(0), q.device(), L.max_q);
  L.cu_k = prepare_cu(op, "cu_k", cu_k, k.size(0), q.device(), L.max_k);
  PE_CHECK(L.cu_q.numel() == L.cu_k.numel(), op, ": cu_q ", cu_q.str(), " and cu_k ", cu_k.str(), " differ in length");
  if (L.cu_k.dtype() != L.cu_q.dtype()) L.cu_k = L.cu_k.to(L.cu_q.dtype());  // the kernels read one index type
  return attention_node(op, q, k, v, L);
}

Tensor attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& cache_len,
                        double scale) {
  const char* op = "attention_decode";
  check_floats(op, {&q, &k_cache, &v_cache});
  PE_CHECK(q.dim() == 4 && k_cache.dim() == 4 && k_cache.shape() == v_cache.shape() && k_cache.size(0) == q.size(0) &&
               k_cache.size(2) == q.size(2) && k_cache.size(3) == q.size(3),
           op, ": q [B, Lnew, H, D], caches [B, Lmax, H, D] expected, got ", q.str(), ", ", k_cache.str(), ", ",
           v_cache.str());
  PE_CHECK(cache_len.defined() && (cache_len.dtype() == DType::I32 || cache_len.dtype() == DType::I64) &&
               cache_len.shape() == Shape{q.size(0)},
           op, ": cache lengths must be i32 or i64 [", q.size(0), "], got ",
           cache_len.defined() ? cache_len.str() : "undefined");
  Tensor len = cache_len.detach().contiguous();
  if (len.device().is_cpu()) {
    for (int64_t n : len.to_int_vector())
      PE_CHECK(n >= 0 && n <= k_cache.size(1), op, ": cache length ", n, " outside [0, ", k_cache.size(1), "]");
    len = len.to(q.device());
  } else {
    PE_CHECK(len.device() == q.device(), op, ": cache lengths ", cache_len.str(), " are on another device than q");
  }
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (out.numel())
    be(q).attention_decode(q.detach().contiguous(), k_cache.detach().contiguous(), v_cache.detach().contiguous(), len,
                           scale, out);
  return out;
}

FusedInfoNce fused_info_nce_terms(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                                  const Tensor& group) {
  const char* op = "fused_info_nce";
  check_info_nce_inputs(op, p, t, logit_scale);
  PE_CHECK(p.shape() == t.shape(), op, ": embeddings must both be [B, D], got ", p.str(), " and ", t.str());
  int64_t B = p.size(0);
  DType acc = acc_dtype(p.dtype());
  Tensor pd = p.detach().contiguous(), td = t.detach().contiguous();
  InfoNceArgs args;
  args.logit_scale = logit_scale.detach().contiguous();
  args.max_logit_scale = max_logit_scale;
  args.row_group = args.col_group = prepare_group(op, group, B, p.device());
  // p->t: rows of p against columns t; t->p: rows of t against columns p, i.e. the column statistics.
  Tensor stats_r = Tensor::empty({B, 2}, acc, p.device()), loss_r = Tensor::empty({B}, acc, p.device());
  Tensor stats_c = Tensor::empty({B, 2}, acc, p.device()), loss_c = Tensor::empty({B}, acc, p.device());
  be(p).info_nce_forward(pd, td, args, stats_r, loss_r);
  be(p).info_nce_forward(td, pd, args, stats_c, loss_c);
  FusedInfoNce r;
  {
    NoGradGuard ng;
    r.p2t = mean(loss_r);
    r.t2p = mean(loss_c);
    Tensor s = logit_scale.detach().reshape({}).to(acc);
    r.scale = exp(neg(clamp_min(neg(s), -max_logit_scale)));
  }
  Tensor loss = add(r.p2t, r.t2p);
  Tensor sd = args.logit_scale;
  r.loss =
      record(loss, op, {p, t, logit_scale}, [pd, td, args, stats_r, stats_c, sd, max_logit_scale](const Tensor& g) {
        int64_t n = pd.size(0);
        Tensor gp = Tensor::empty(pd.shape(), pd.dtype(), pd.device());
        Tensor gt_ = Tensor::empty(td.shape(), td.dtype(), td.device());
        Tensor glog = Tensor::empty({n}, stats_r.dtype(), pd.device());
        be(pd).info_nce_backward(pd, td, args, stats_r, stats_c, g.contiguous(), 1.0 / double(n), 1.0 / double(n), gp,
                                 gt_, glog);
        return Grads{gp, gt_, logit_scale_grad(glog, sd, max_logit_scale)};
      });
  return r;
}

Tensor fused_info_nce(const Tensor& p, const Tensor& t, const Tensor& logit_scale, double max_logit_scale,
                      const Tensor& group) {
  return fused_info_nce_terms(p, t, logit_scale, max_logit_scale, group).loss;
}

Tensor info_nce_direction(const Tensor& x, const Tensor& y, const Tensor& logit_scale, double max_logit_scale,
                          const Tensor& group, int64_t row_offset) {
  const char* op = "info_nce_direction";
  check_info_nce_inputs(op, x, y, logit_scale);
  int64_t R = x.size(0), C = y.size(0);
  PE_CHECK(row_offset >= 0 && row_offset + R <= C, op, ": rows ", row_offset, " .. ", row_offset + R - 1,
           " are not among the ", C, " columns");
  DType acc = acc_dtype(x.dtype());
  Tensor xd = x.detach().contiguous(), yd = y.detach().contiguous();
  InfoNceArgs args;
  args.logit_scale = logit_scale.detach().contiguous();
  args.max_logit_scale = max_logit_scale;
  args.row_offset = row_offset;
  args.col_group = prepare_group(op, group, C, x.device());
  if (args.col_group.defined()) args.row_group = args.col_group.narrow(0, row_offset, R).contiguous();
  Tensor stats = Tensor::empty({R, 2}, acc, x.device()), loss = Tensor::empty({R}, acc, x.device());
  be(x).info_nce_forward(xd, yd, args, stats, loss);
  Tensor m;
  {
    NoGradGuard ng;
    m = mean(loss);
  }
  Tensor sd = args.logit_scale;
  return record(m, op, {x, y, logit_scale}, [xd, yd, args, stats, sd, max_logit_scale](const Tensor& g) {
    Tensor gx = Tensor::empty(xd.shape(), xd.dtype(), xd.device());
    Tensor gy = Tensor::empty(yd.shape(), yd.dtype(), yd.device());
    Tensor glog = Tensor::empty({xd.size(0)}, stats.dtype(), xd.device());
    be(xd).info_nce_backward(xd, yd, args, stats, Tensor(), g.contiguous(), 1.0 / double(xd.size(0)), 0.0, gx, gy,
                             glog);
    return Grads{gx, gy, logit_scale_grad(glog, sd, max_logit_scale)};
  });
}

Tensor fused_masked_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                                  const Tensor& targets) {
  const char* op = "fused_masked_cross_entropy";
  if (bias.defined())
    check_floats(op, {&hidden, &weight, &bias});
  else
    check_floats(op, {&hidden, &weight});
  PE_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1), op,
           ": hidden [M, d] and weight [V, d] expected, got ", hidden.str(), " and ", weight.str());
  int64_t M = hidden.size(0), V = weight.size(0);
  PE_CHECK(V > 0, op, ": empty vocabulary ", weight.str());
  PE_CHECK(!bias.defined() || bias.shape() == Shape{V}, op, ": bias ", bias.str(), " is not [", V, "]");
  PE_CHECK(targets.defined() && targets.dtype() == DType::I64 && targets.shape() == Shape{M}, op,
           ": targets must be i64 [", M, "], got ", targets.defined() ? targets.str() : "undefined");
  DType acc = acc_dtype(hidden.dtype());
  Device dev = hidden.device();
  if (M == 0) {
    Tensor zero = Tensor::zeros({}, acc, dev);
    Shape sh = hidden.shape(), sw = weight.shape(), sb = bias.defined() ? bias.shape() : Shape{};
    DType dt = hidden.dtype();
    bool has_bias = bias.defined();
    return record(zero, op, {hidden, weight, bias}, [sh, sw, sb, dt, dev, has_bias](const Tensor&) {
      return Grads{Tensor::zeros(sh, dt, dev), Tensor::zeros(sw, dt, dev),
                   has_bias ? Tensor::zeros(sb, dt, dev) : Tensor()};
    });
  }
  if (targets.device().is_cpu()) {
    const int64_t* t = targets.contiguous().data<int64_t>();
    for (int64_t i = 0; i < M; ++i)
      PE_CHECK(t[i] >= 0 && t[i] < V, op, ": target ", t[i], " of row ", i, " outside [0, ", V, ")");
  }
  Tensor hd = hidden.detach().contiguous(), wd = weight.detach().contiguous();
  Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor td = targets.detach().contiguous().to(dev);
  Tensor stats = Tensor::empty({M, 2}, acc, dev), loss = Tensor::empty({M}, acc, dev);
  be(hidden).masked_ce_forward(hd, wd, bd, td, stats, loss);
  Tensor m;
  {
    NoGradGuard ng;
    m = mean(loss);
  }
  return record(m, op, {hidden, weight, bias}, [hd, wd, bd, td, stats](const Tensor& g) {
    Tensor gh = Tensor::empty(hd.shape(), hd.dtype(), hd.device());
    Tensor gw = Tensor::empty(wd.shape(), wd.dtype(), wd.device());
    Tensor gb = bd.defined() ? Tensor::empty(bd.shape(), bd.dtype(), bd.device()) : Tensor();
    be(hd).masked_ce_backward(hd, wd, bd, td, stats, g.contiguous(), 1.0 / double(hd.size(0)), gh, gw, gb);
    return Grads{gh, gw, gb};
  });
}

}  // namespace pe
