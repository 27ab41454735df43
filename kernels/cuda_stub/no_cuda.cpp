// Built instead of kernels/cuda when protst-engine is configured without CUDA: no CUDA device.
#include "core/device.h"
#include "kernels/backend.h"

namespace pe {

Backend* cuda_backend() { return nullptr; }
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }

}  // namespace pe
