#pragma once
// Device choice shared by every command: `--device cpu|cuda|cuda:N|auto`, and the one line that
// says what a run computes on (device, instruction set of this build, threads).
#include <string>

#include "core/device.h"

namespace pe {

// "auto" picks CUDA when a device is visible, else the CPU. A CUDA request without a device (or in
// a build without CUDA) is an error naming the option.
Device resolve_device(const std::string& name);
// E.g. "cpu (native build: avx512f ... fma (16 floats per vector), 2 threads)".
std::string device_summary(const Device& d);

}  // namespace pe
