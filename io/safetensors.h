#pragma once
// Reader and writer of the Hugging Face safetensors format, independent of any tensor class.
//
// File layout: [u64 little-endian N][N bytes of UTF-8 JSON header][data section].
// The header maps tensor name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
// (offsets relative to the start of the data section) plus an optional "__metadata__" object of
// string -> string. The header is untrusted input: every field is validated on open and every
// error names the file (and the tensor) at fault.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace pe {

// Size in bytes of one element of a safetensors dtype ("F64","F32","F16","BF16","I64","I32",
// "I16","I8","U64","U32","U16","U8","BOOL"); 0 if the dtype is unknown.
size_t safetensors_dtype_size(const std::string& dtype);

// One tensor of a safetensors file. Offsets are relative to the data section.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as spelled in the format, e.g. "BF16"
  std::vector<int64_t> shape;  // [] for a scalar; a 0 anywhere means an empty tensor
  uint64_t begin = 0;          // byte offset of the first byte in the data section
  uint64_t end = 0;            // one past the last byte
  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;       // product of shape (1 for a scalar)
};

// A read-only view of bytes inside a mapped file. Data of a tensor is not necessarily aligned to
// its element size (files from other writers need not be), so copy it out with memcpy.
struct ByteSpan {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// An opened (memory-mapped) safetensors file. Move-only; the mapping lives as long as the object.
class SafetensorsFile {
 public:
  // Maps `path` and validates its header; throws pe::Error naming the file (and tensor) on any defect.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Entries sorted by name.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws pe::Error naming the file and the tensor if absent.
  const SafetensorsEntry& entry(const std::string& name) const;
  ByteSpan data(const SafetensorsEntry& e) const;
  ByteSpan data(const std::string& name) const { return data(entry(name)); }
  // Elements converted to f32 (from F32, F16, BF16 or F64); throws for other dtypes.
  std::vector<float> read_f32(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void unmap();
  std::string path_;
  const uint8_t* map_ = nullptr;  // whole file, mmap'ed read-only
  size_t map_size_ = 0;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

// A checkpoint that may be split into shards. `path` is one of:
//  - a `*.safetensors.index.json` file ({"weight_map": {tensor: shard file name}}, shards beside it);
//  - a directory holding `model.safetensors.index.json` or, failing that, `model.safetensors`;
//  - a single `.safetensors` file.
// Every shard named by the index is opened and every tensor of the weight map is checked to be in
// its shard; errors name the index, the shard and the tensor.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& path);

  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // The shard holding `name`; throws pe::Error naming the tensor and the checkpoint if absent.
  const SafetensorsFile& shard_of(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const { return shard_of(name).entry(name); }
  ByteSpan data(const std::string& name) const { return shard_of(name).data(name); }
  std::vector<float> read_f32(const std::string& name) const { return shard_of(name).read_f32(name); }
  // All tensor names, sorted.
  std::vector<std::string> names() const;

 private:
  std::string source_;  // what the user passed (for error messages)
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> index into shards_
};

// One tensor to write: `nbytes` bytes at `data` (may be null when nbytes == 0), row-major.
struct SafetensorsWriteEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes a safetensors file laid out like the Python `safetensors` library: tensors ordered by dtype
// (widest first, so every tensor is aligned to its element size) then by name, header in that same
// order with "__metadata__" first (omitted when empty), padded with spaces to a multiple of 8 bytes.
// Atomic: the bytes go to `<path>.tmp.<pid>` in the same directory, are fsync'ed, renamed over
// `path`, and the directory is fsync'ed. On any failure the temporary file is removed and pe::Error
// is thrown; an existing file at `path` is never damaged.
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

// ---- 16-bit float conversions (bit patterns as uint16_t) ----
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest, ties to even; NaN stays NaN
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);   // round to nearest, ties to even; overflow -> inf; NaN stays NaN

}  // namespace pe
