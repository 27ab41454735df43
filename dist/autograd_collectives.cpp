#include "dist/autograd_collectives.h"

namespace pe::dist {

std::vector<int64_t> all_gather_counts(Communicator& comm, int64_t n) {
  Tensor mine = Tensor::from_vector(std::vector<int64_t>{n}, {1}).to(comm.device());
  Tensor all = Tensor::empty({comm.world_size()}, DType::I64, comm.device());
  comm.all_gather(mine, all);
  return all.to_int_vector();
}

Tensor all_gather_rows(Communicator& comm, const Tensor& x, const std::vector<int64_t>& rows) {
  const char* op = "all_gather_rows";
  PE_CHECK(x.defined() && x.dim() >= 1, op, " on ", comm.describe(), ": needs a tensor with a row dimension, got ",
           x.defined() ? x.str() : "undefined");
  PE_CHECK(rows.size() == size_t(comm.world_size()) && rows[size_t(comm.rank())] == x.size(0), op, " on ",
           comm.describe(), ": row counts (", rows.size(), " of them) do not match ", x.str());
  Shape row_shape(x.shape().begin() + 1, x.shape().end());
  int64_t inner = shape_numel(row_shape);
  std::vector<int64_t> counts;
  for (int64_t n : rows) counts.push_back(n * inner);
  Shape out_shape = row_shape;
  out_shape.insert(out_shape.begin(), shard_offset(rows, comm.world_size()));
  Tensor xd = x.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype(), comm.device());
  comm.all_gather(xd.reshape({xd.numel()}), out.view({out.numel()}), counts);
  Communicator* c = &comm;
  Shape x_shape = x.shape();
  return record(out, op, {x}, [c, counts, x_shape](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor gx = Tensor::empty(x_shape, gc.dtype(), gc.device());
    c->reduce_scatter(gc.view({gc.numel()}), gx.view({gx.numel()}), Reduction::Sum, counts);
    return std::vector<Tensor>{gx};
  });
}

Tensor all_reduce_sum(Communicator& comm, const Tensor& x) {
  PE_CHECK(x.defined(), "all_reduce_sum on ", comm.describe(), ": undefined tensor");
  Tensor out = x.detach().contiguous().clone();
  comm.all_reduce(out, Reduction::Sum);
  Communicator* c = &comm;
  return record(out, "all_reduce_sum", {x}, [c](const Tensor& g) {
    Tensor gs = g.contiguous().clone();  // all_reduce works in place; g may be shared
    c->all_reduce(gs, Reduction::Sum);
    return std::vector<Tensor>{gs};
  });
}

SumAcrossProcesses sum_across(Communicator& comm) {
  Communicator* c = &comm;
  return [c](const Tensor& x) { return all_reduce_sum(*c, x); };
}

void all_reduce_gradients(Communicator& comm, const std::vector<Tensor>& params, Reduction op) {
  if (params.empty()) return;
  std::vector<int64_t> has;
  for (const Tensor& p : params) has.push_back(p.grad().defined() ? 1 : 0);
  Tensor ranks_with = Tensor::from_vector(has, {int64_t(has.size())}).to(comm.device());
  comm.all_reduce(ranks_with, Reduction::Sum);
  std::vector<int64_t> n = ranks_with.to_int_vector();
  for (size_t i = 0; i < params.size(); ++i) {
    if (n[i] == 0) continue;
    const Tensor& p = params[i];
    Tensor g = p.grad();
    if (!g.defined() || !g.is_contiguous()) {
      g = g.defined() ? g.contiguous() : Tensor::zeros(p.shape(), p.dtype(), p.device());
      p.set_grad(g);
    }
    comm.all_reduce(g, op);
  }
}

}  // namespace pe::dist
