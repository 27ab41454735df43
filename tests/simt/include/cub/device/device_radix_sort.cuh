#pragma once
// Stand-in for cub::DeviceRadixSort in the SIMT emulator: a stable sort by the bits
// [begin_bit, end_bit) of the keys (signed keys ordered as CUB orders them: sign bit flipped).
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "simt_cuda.h"

namespace cub {
struct DeviceRadixSort {
  template <typename K, typename V, typename N>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* vals_in,
                               V* vals_out, N count, int begin_bit = 0, int end_bit = int(sizeof(K) * 8),
                               cudaStream_t = nullptr) {
    static_assert(std::is_integral_v<K>, "emulated radix sort: integer keys only");
    if (!temp) {
      temp_bytes = 256;  // something to allocate, as CUB always asks for
      return cudaSuccess;
    }
    if (temp_bytes < 256 || begin_bit < 0 || end_bit > int(sizeof(K) * 8) || begin_bit > end_bit)
      return cudaErrorInvalidValue;
    using U = std::make_unsigned_t<K>;
    auto digit = [&](K k) {
      U u = U(k);
      if constexpr (std::is_signed_v<K>) u ^= U(U(1) << (sizeof(K) * 8 - 1));
      u >>= begin_bit;
      int width = end_bit - begin_bit;
      if (width < int(sizeof(K) * 8)) u &= U((U(1) << width) - 1);
      return u;
    };
    std::vector<size_t> order(static_cast<size_t>(count));
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return digit(keys_in[a]) < digit(keys_in[b]); });
    std::vector<K> k(static_cast<size_t>(count));
    std::vector<V> v(static_cast<size_t>(count));
    for (size_t i = 0; i < order.size(); ++i) {
      k[i] = keys_in[order[i]];
      v[i] = vals_in[order[i]];
    }
    std::copy(k.begin(), k.end(), keys_out);
    std::copy(v.begin(), v.end(), vals_out);
    return cudaSuccess;
  }
};
}  // namespace cub
