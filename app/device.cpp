#include "app/device.h"

#include <omp.h>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_api.h"

namespace pe {

Device resolve_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? Device::cuda() : Device::cpu();
  Device d = Device::parse(name);
  PE_CHECK(!d.is_cuda() || cuda_available(), "--device ", name, ": no CUDA device is available",
           cuda_backend() ? "" : " (this build has no CUDA backend)");
  return d;
}

std::string device_summary(const Device& d) {
  std::string s = d.str() + " (host " + cpu_isa_summary() + ", " + std::to_string(omp_get_max_threads()) +
                  " thread" + (omp_get_max_threads() == 1 ? "" : "s") +
                  ", f32 GEMM " + cpu::gemm_library_name(cpu::gemm_library()) + ")";
  return s;
}

}  // namespace pe
