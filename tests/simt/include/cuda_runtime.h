#pragma once
// Stand-in for the CUDA runtime header when the CUDA sources are compiled for the SIMT emulator.
#include "simt_cuda.h"
