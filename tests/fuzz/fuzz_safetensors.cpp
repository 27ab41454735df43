// safetensors files (io/safetensors.h): the 8-byte length, the JSON header and its validation, then
// every tensor's bytes read through data() / read_f32().
#include "io/safetensors.h"

#include <cstring>

#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pe::fuzz::MemFile f(data, size, "fuzz.safetensors");
  try {
    const pe::SafetensorsFile st(f.path());
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
    const uint64_t data_size = size - 8 - header_len;  // the constructor accepted header_len
    for (const pe::SafetensorsEntry& e : st.entries()) {
      // What the header validation promises: the bytes lie inside the data section and match
      // dtype x shape.
      PE_FUZZ_ASSERT(e.begin <= e.end && e.end <= data_size);
      const size_t elem = pe::safetensors_dtype_size(e.dtype);
      PE_FUZZ_ASSERT(elem > 0);
      PE_FUZZ_ASSERT(e.numel() >= 0 && e.nbytes() == static_cast<uint64_t>(e.numel()) * elem);
      const pe::ByteSpan s = st.data(e);
      PE_FUZZ_ASSERT(s.size == e.nbytes());
      // Same bytes as the input at that offset (so the span lies inside the mapping).
      PE_FUZZ_ASSERT(s.size == 0 || std::memcmp(s.data, data + 8 + header_len + e.begin, s.size) == 0);
      try {
        const std::vector<float> v = st.read_f32(e.name);
        PE_FUZZ_ASSERT(v.size() == static_cast<size_t>(e.numel()));
      } catch (const pe::Error&) {
        // not a floating-point dtype
      }
    }
    for (const auto& [k, v] : st.metadata()) (void)k, (void)v;
  } catch (const pe::Error&) {
  }
  return 0;
}
