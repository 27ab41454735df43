// The SIMT emulator itself: collectives give the right answers, launch configurations the CUDA
// runtime rejects are rejected, kernel bugs (divergent barriers, shuffles with exited lanes) are
// reported instead of hanging, and the stand-in cuBLASLt / CUB compute what they should.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "cub/device/device_radix_sort.cuh"
#include "cublasLt.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace {

template <typename T>
T* device_copy(const std::vector<T>& h) {
  T* d = nullptr;
  REQUIRE(cudaMalloc(&d, h.size() * sizeof(T) + 1) == cudaSuccess);
  REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  return d;
}

// Block sum: warp shuffles, then one value per warp through shared memory.
void block_sum_kernel(const float* x, int n, float* out) {
  __shared__ float part[32];
  float v = 0;
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) v += x[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0;
    for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) s += part[w];
    out[blockIdx.x] = s;
  }
}

void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 40) __syncthreads();  // threads 40.. never arrive, but stay alive in a loop below
  else
    for (int i = 0; i < 3; ++i) __syncwarp();
  out[threadIdx.x] = 1;
  __syncthreads();
}

void shuffle_after_exit_kernel(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

void read_before_write_kernel(float* out) {
  __shared__ float s[64];
  if (blockIdx.x == 0) s[threadIdx.x] = 1.f;  // only the first block writes
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
}

// Each thread reads its left neighbour's shared value, with or without the barrier that makes it safe.
void neighbour_kernel(float* out, bool barrier) {
  __shared__ float s[64];
  s[threadIdx.x] = float(threadIdx.x);
  if (barrier) __syncthreads();
  if (threadIdx.x > 0) out[threadIdx.x] = s[threadIdx.x - 1];
}

void smem_kernel(float* out) {
  float* s = reinterpret_cast<float*>(::simt::dynamic_smem());
  s[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

}  // namespace

TEST_SUITE("simt") {
  TEST_CASE("emulator: shuffles and shared memory give a block sum for odd sizes") {
    for (int n : {1, 31, 33, 1000, 4099}) {
      std::vector<float> h(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) h[size_t(i)] = float((i * 7) % 13) - 6.0f;
      float* x = device_copy(h);
      float* out = device_copy(std::vector<float>(3, -1.f));
      ::simt::launch("block_sum", nullptr, ::simt::LaunchConfig(3, 96), [&] { block_sum_kernel(x, n, out); });
      REQUIRE(cudaGetLastError() == cudaSuccess);
      std::vector<float> r(3);
      REQUIRE(cudaMemcpy(r.data(), out, 12, cudaMemcpyDeviceToHost) == cudaSuccess);
      double want = std::accumulate(h.begin(), h.end(), 0.0);
      for (float v : r) CHECK(v == doctest::Approx(want));
      cudaFree(x);
      cudaFree(out);
    }
  }

  TEST_CASE("emulator: a barrier not every thread reaches is reported as a launch failure") {
    int* out = device_copy(std::vector<int>(64, 0));
    ::simt::launch("divergent", nullptr, ::simt::LaunchConfig(1, 64), [&] { divergent_barrier_kernel(out); });
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaSuccess);  // reported once
    cudaFree(out);
  }

  TEST_CASE("emulator: a shuffle waiting for an exited lane is reported") {
    float* out = device_copy(std::vector<float>(32, 0.f));
    ::simt::launch("shuffle_after_exit", nullptr, ::simt::LaunchConfig(1, 32), [&] { shuffle_after_exit_kernel(out); });
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    cudaFree(out);
  }

  TEST_CASE("emulator: invalid launch configurations and the dynamic shared memory opt-in") {
    float* out = device_copy(std::vector<float>(1024, 0.f));
    auto run = [&](dim3 grid, dim3 block, size_t smem, const void* id) {
      ::simt::launch("smem", id, ::simt::LaunchConfig(grid, block, smem), [&] { smem_kernel(out); });
      return cudaGetLastError();
    };
    const void* id = reinterpret_cast<const void*>(&smem_kernel);
    CHECK(run(1, 1025, 4096, id) == cudaErrorInvalidConfiguration);
    CHECK(run(dim3(1, 70000), 32, 4096, id) == cudaErrorInvalidConfiguration);
    CHECK(run(1, 128, 64 * 1024, id) == cudaErrorInvalidValue);  // over 48 KiB without the opt-in
    CHECK(cudaFuncSetAttribute(&smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess);
    CHECK(run(1, 128, 64 * 1024, id) == cudaSuccess);
    CHECK(cudaFuncSetAttribute(&smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
          cudaErrorInvalidValue);
    (void)cudaGetLastError();  // the refused call above set it; later cases expect a clean state
    std::vector<float> r(128);
    REQUIRE(cudaMemcpy(r.data(), out, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < 128; ++i) CHECK(r[size_t(i)] == float(127 - i));
    cudaFree(out);
  }

  TEST_CASE("emulator: shared memory starts as NaN in every block - not as the previous block left it") {
    float* out = device_copy(std::vector<float>(128, 0.f));
    ::simt::launch("read_before_write", nullptr, ::simt::LaunchConfig(2, 64), [&] { read_before_write_kernel(out); });
    REQUIRE(cudaGetLastError() == cudaSuccess);
    std::vector<float> r(128);
    REQUIRE(cudaMemcpy(r.data(), out, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int i = 0; i < 64; ++i) CHECK(r[size_t(i)] == 1.f);
    for (int i = 64; i < 128; ++i) CHECK(std::isnan(r[size_t(i)]));
    cudaFree(out);
  }

  TEST_CASE("emulator: threads run in shuffled order - a missing __syncthreads shows") {
    for (bool barrier : {false, true}) {
      float* out = device_copy(std::vector<float>(64, 0.f));
      ::simt::launch("neighbour", nullptr, ::simt::LaunchConfig(1, 64), [&] { neighbour_kernel(out, barrier); });
      REQUIRE(cudaGetLastError() == cudaSuccess);
      std::vector<float> r(64);
      REQUIRE(cudaMemcpy(r.data(), out, r.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
      int stale = 0;
      for (int i = 1; i < 64; ++i) stale += r[size_t(i)] != float(i - 1);
      CAPTURE(barrier);
      // In thread order every read would come after its neighbour's write and the race would hide.
      if (barrier) CHECK(stale == 0);
      else CHECK(stale > 0);
      cudaFree(out);
    }
  }

  TEST_CASE("emulator: device copies are checked against the allocations") {
    std::vector<float> h(8, 1.f);
    float* d = device_copy(h);
    CHECK(cudaMemcpy(d, h.data(), 64 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(h.data(), h.data() + 1, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
    CHECK(cudaFree(d) == cudaSuccess);
    CHECK(cudaFree(d) == cudaErrorInvalidValue);  // double free
    (void)cudaGetLastError();
  }

  TEST_CASE("emulator: mma.m16n8k16 fragments multiply as the PTX ISA lays them out") {
    // A (16x16) and B (16x8) with small integer values (exact in bf16 and fp32).
    float A[16][16], B[16][8];
    for (int r = 0; r < 16; ++r)
      for (int k = 0; k < 16; ++k) A[r][k] = float((r * 3 + k * 5) % 7 - 3);
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < 8; ++n) B[k][n] = float((k * 2 + n * 3) % 5 - 2);
    auto bits = [](float f) { return uint32_t(__float2bfloat16_rn(f).__x); };
    auto pack = [&](float lo, float hi) { return bits(lo) | (bits(hi) << 16); };
    std::vector<float> C(16 * 8, 0.f);
    ::simt::launch("mma", nullptr, ::simt::LaunchConfig(1, 32), [&] {
      int lane = int(threadIdx.x), g = lane / 4, t = lane % 4;
      uint32_t a[4] = {pack(A[g][2 * t], A[g][2 * t + 1]), pack(A[g + 8][2 * t], A[g + 8][2 * t + 1]),
                       pack(A[g][2 * t + 8], A[g][2 * t + 9]), pack(A[g + 8][2 * t + 8], A[g + 8][2 * t + 9])};
      uint32_t b0 = pack(B[2 * t][g], B[2 * t + 1][g]), b1 = pack(B[2 * t + 8][g], B[2 * t + 9][g]);
      float c[4] = {1.f, 1.f, 1.f, 1.f};
      ::simt::mma_m16n8k16_bf16(c, a, b0, b1);
      C[size_t(g * 8 + 2 * t)] = c[0];
      C[size_t(g * 8 + 2 * t + 1)] = c[1];
      C[size_t((g + 8) * 8 + 2 * t)] = c[2];
      C[size_t((g + 8) * 8 + 2 * t + 1)] = c[3];
    });
    REQUIRE(cudaGetLastError() == cudaSuccess);
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 8; ++n) {
        float want = 1.f;
        for (int k = 0; k < 16; ++k) want += A[r][k] * B[k][n];
        CHECK(C[size_t(r * 8 + n)] == want);
      }
  }

  TEST_CASE("stand-in cuBLASLt: row-major product through the column-major descriptors, batch strides") {
    // out[b] (M x N, row-major) = a[b] (M x K) @ b[b] (K x N), as kernels/cuda/matmul.cu maps it:
    // cuBLAS A := b (N x K col-major view), B := a, m = N, n = M.
    const int M = 5, N = 3, K = 7, batch = 2;
    std::vector<float> a(size_t(batch * M * K)), b(size_t(batch * K * N));
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(int(i % 11) - 5) * 0.25f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(int(i % 7) - 3) * 0.5f;
    float *da = device_copy(a), *db = device_copy(b), *dout = device_copy(std::vector<float>(size_t(batch * M * N)));
    cublasLtHandle_t h;
    REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t desc;
    REQUIRE(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    auto layout = [&](uint64_t rows, uint64_t cols, int64_t stride) {
      cublasLtMatrixLayout_t l;
      REQUIRE(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, rows, cols, int64_t(rows)) == CUBLAS_STATUS_SUCCESS);
      int32_t count = batch;
      REQUIRE(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)) ==
              CUBLAS_STATUS_SUCCESS);
      REQUIRE(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                               sizeof(stride)) == CUBLAS_STATUS_SUCCESS);
      return l;
    };
    cublasLtMatrixLayout_t la = layout(N, K, K * N), lb = layout(K, M, M * K), ld = layout(N, M, M * N);
    float alpha = 1.f, beta = 0.f;
    REQUIRE(cublasLtMatmul(h, desc, &alpha, db, la, da, lb, &beta, dout, ld, dout, ld, nullptr, nullptr, 0, nullptr) ==
            CUBLAS_STATUS_SUCCESS);
    std::vector<float> out(size_t(batch * M * N));
    REQUIRE(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int bt = 0; bt < batch; ++bt)
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          double want = 0;
          for (int k = 0; k < K; ++k) want += double(a[size_t(bt * M * K + i * K + k)]) * b[size_t(bt * K * N + k * N + j)];
          CHECK(out[size_t(bt * M * N + i * N + j)] == doctest::Approx(want));
        }
    // A layout that does not fit the product is refused, as cuBLAS does.
    cublasLtMatrixLayout_t bad = layout(N + 1, K, K * N);
    CHECK(cublasLtMatmul(h, desc, &alpha, db, bad, da, lb, &beta, dout, ld, dout, ld, nullptr, nullptr, 0, nullptr) ==
          CUBLAS_STATUS_INVALID_VALUE);
    for (auto l : {la, lb, ld, bad}) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(h);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dout);
  }

  TEST_CASE("stand-in CUB radix sort: stable pairs by the low bits") {
    std::vector<int64_t> keys = {5, 3, 5, 0, 9, 3, 1}, vals = {0, 1, 2, 3, 4, 5, 6};
    std::vector<int64_t> ko(keys.size()), vo(keys.size());
    size_t temp_bytes = 0;
    REQUIRE(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys.data(), ko.data(), vals.data(), vo.data(),
                                            int64_t(keys.size()), 0, 4) == cudaSuccess);
    std::vector<char> temp(temp_bytes);
    REQUIRE(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys.data(), ko.data(), vals.data(), vo.data(),
                                            int64_t(keys.size()), 0, 4) == cudaSuccess);
    CHECK(ko == std::vector<int64_t>{0, 1, 3, 3, 5, 5, 9});
    CHECK(vo == std::vector<int64_t>{3, 6, 1, 5, 0, 2, 4});
  }

  TEST_CASE("emulator: created streams hold stand-in work until CUDA's ordering needs it") {
    // What fake_nccl.cpp relies on: work enqueued on a created stream completes when an event recorded
    // after it is waited on, the stream is synchronised, or (blocking streams only) the legacy
    // default stream does work; the default streams complete it at once.
    cudaStream_t nb = nullptr, bl = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaStreamCreate(&bl) == cudaSuccess);
    std::vector<int> done;
    simt::stream_enqueue(cudaStreamLegacy, [&] { done.push_back(0); });
    CHECK(done == std::vector<int>{0});
    simt::stream_enqueue(nb, [&] { done.push_back(1); });
    cudaEvent_t e1 = nullptr, e2 = nullptr;
    REQUIRE(cudaEventCreateWithFlags(&e1, cudaEventDisableTiming) == cudaSuccess);
    REQUIRE(cudaEventCreateWithFlags(&e2, cudaEventDisableTiming) == cudaSuccess);
    REQUIRE(cudaEventRecord(e1, nb) == cudaSuccess);
    simt::stream_enqueue(nb, [&] { done.push_back(2); });
    REQUIRE(cudaEventRecord(e2, nb) == cudaSuccess);
    simt::stream_enqueue(bl, [&] { done.push_back(3); });
    int* d = nullptr;
    REQUIRE(cudaMalloc(&d, 4) == cudaSuccess);
    REQUIRE(cudaMemset(d, 0, 4) == cudaSuccess);  // legacy-stream work: the blocking stream's comes first
    CHECK(done == std::vector<int>{0, 3});
    REQUIRE(cudaStreamWaitEvent(cudaStreamLegacy, e1, 0) == cudaSuccess);  // up to e1 only
    CHECK(done == std::vector<int>{0, 3, 1});
    REQUIRE(cudaEventSynchronize(e2) == cudaSuccess);
    CHECK(done == std::vector<int>{0, 3, 1, 2});
    simt::stream_enqueue(nb, [&] { done.push_back(4); });
    REQUIRE(cudaStreamSynchronize(nb) == cudaSuccess);
    CHECK(done.back() == 4);
    simt::stream_enqueue(nb, [&] { done.push_back(5); });
    REQUIRE(cudaStreamDestroy(nb) == cudaSuccess);  // in-flight work still completes
    CHECK(done.back() == 5);
    CHECK(!simt::stream_exists(nb));
    CHECK(cudaStreamSynchronize(nb) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
    cudaEventDestroy(e1);
    cudaEventDestroy(e2);
    cudaStreamDestroy(bl);
    cudaFree(d);
  }
}
