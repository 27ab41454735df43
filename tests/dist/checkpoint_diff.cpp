// checkpoint_diff A B TOL [FLOOR]: compares two training checkpoints (app/model_io.h) tensor by tensor --
// every model tensor (BatchNorm running statistics included) and every optimizer tensor -- and
// prints the largest relative difference, max |a - b| / max(max |b|, FLOOR) per tensor (FLOOR default
// 1e-6). The floor matters only for tensors that hold round-off alone: BERT's attention key biases
// have an exact gradient of zero, so they and their Adam moments hold what Adam made of round-off
// (values near 1e-12 in f64), which differs between two summation orders (another world size). With
// TOL > 0 those biases ("text_model.*attention.self.key.bias") must instead stay below 1e-9 in both. Exit 0 when every
// tensor is within TOL (0: bit for bit) and the step and tensor names match; 1 otherwise.
// Used by tests/dist/mpi_cli.sh.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "app/model_io.h"

namespace {
double g_floor = 1e-6;
double rel(const pe::Tensor& a, const pe::Tensor& b, bool& bitwise) {
  std::vector<double> x = a.to_double_vector(), y = b.to_double_vector();
  double err = 0, mag = g_floor;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::memcmp(&x[i], &y[i], sizeof(double)) != 0) bitwise = false;
    err = std::max(err, std::fabs(x[i] - y[i]));
    mag = std::max(mag, std::fabs(y[i]));
  }
  return err / mag;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: checkpoint_diff A.safetensors B.safetensors TOL [FLOOR]\n");
    return 2;
  }
  if (argc == 5) g_floor = std::atof(argv[4]);
  try {
    pe::LoadedCheckpoint a = pe::load_checkpoint_file(argv[1]), b = pe::load_checkpoint_file(argv[2]);
    double tol = std::atof(argv[3]), worst = 0;
    std::string worst_name;
    bool ok = a.progress.step == b.progress.step, bitwise = true;
    if (!ok) std::printf("steps differ: %lld vs %lld\n", (long long)a.progress.step, (long long)b.progress.step);
    size_t n = 0;
    for (auto* maps : {&a.model, &a.optim}) {
      const auto& other = maps == &a.model ? b.model : b.optim;
      if (maps->size() != other.size()) {
        std::printf("tensor counts differ: %zu vs %zu\n", maps->size(), other.size());
        ok = false;
      }
      for (const auto& [name, t] : *maps) {
        auto it = other.find(name);
        if (it == other.end() || it->second.shape() != t.shape() || it->second.dtype() != t.dtype()) {
          std::printf("%s: missing or of another shape or dtype in %s\n", name.c_str(), argv[2]);
          ok = false;
          continue;
        }
        if (tol > 0 && name.rfind("text_model.", 0) == 0 && name.find("attention.self.key.bias") != std::string::npos) {
          // Exact gradient zero: what matters is that both stayed at zero (lr x 1e-6), as test_train_dp checks.
          bool bits = true;
          rel(t, it->second, bits);
          bitwise = bitwise && bits;
          ++n;
          for (const pe::Tensor* x : {&t, &it->second})
            for (double v : x->to_double_vector())
              if (!(std::fabs(v) < 1e-9)) {
                std::printf("%s moved to %g (exact gradient zero)\n", name.c_str(), v);
                ok = false;
              }
          continue;
        }
        double e = rel(t, it->second, bitwise);
        ++n;
        if (e >= worst) {
          worst = e;
          worst_name = name;
        }
        if (e > tol) {
          std::printf("%s differs by %g (tolerance %g)\n", name.c_str(), e, tol);
          ok = false;
        }
      }
    }
    std::printf("checkpoint_diff: %zu tensors, %s, largest relative difference %g (%s)\n", n,
                bitwise ? "bit for bit equal" : "not bit for bit equal", worst, worst_name.c_str());
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_diff: %s\n", e.what());
    return 1;
  }
}
