#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace pe {

namespace {

using json = nlohmann::json;

// Largest header we accept (the Rust reference implementation uses the same bound).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  size_t size;
  int rank;  // order of the Rust `Dtype` enum; the writer lays out tensors by descending rank
};

constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 1, 0}, {"U8", 1, 1},   {"I8", 1, 2},   {"I16", 2, 5},  {"U16", 2, 6},
    {"F16", 2, 7},  {"BF16", 2, 8}, {"I32", 4, 9},  {"U32", 4, 10}, {"F32", 4, 11},
    {"F64", 8, 12}, {"I64", 8, 13}, {"U64", 8, 14},
};

const DtypeInfo* find_dtype(const std::string& dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.name) return &d;
  return nullptr;
}

std::string errno_text() { return std::strerror(errno); }

// a*b, or false on uint64 overflow.
bool mul_checked(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

// Bytes that a tensor of `shape` and element size `elem` needs, or false on overflow/negative dims.
bool tensor_nbytes(const std::vector<int64_t>& shape, size_t elem, uint64_t* out) {
  uint64_t n = elem;
  for (int64_t d : shape) {
    if (d < 0 || !mul_checked(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << "]";
  return os.str();
}

// Parses JSON, rejecting duplicate keys in any object (nlohmann would silently keep the last one,
// which would hide a tensor from the overlap checks). Throws pe::Error naming `what`.
json parse_json_strict(const char* begin, const char* end, const std::string& what) {
  std::vector<std::set<std::string>> keys;  // one key set per open object
  std::string duplicate;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const json::exception& e) {
    PE_FAIL(what, ": header is not valid JSON: ", e.what());
  }
  PE_CHECK(duplicate.empty(), what, ": header has the key '", duplicate, "' twice");
  return j;
}

// Reads a non-negative JSON integer (rejects floats, negatives, booleans).
bool json_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->size : 0;
}

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------- reader

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const std::string what = "safetensors file '" + path + "'";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PE_CHECK(fd >= 0, what, ": cannot open: ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string err = errno_text();
    ::close(fd);
    PE_FAIL(what, ": cannot stat: ", err);
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    PE_FAIL(what, ": file is ", file_size, " bytes, too short for the 8-byte header length");
  }
  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  std::string map_err = errno_text();
  ::close(fd);  // the mapping keeps the file alive
  PE_CHECK(m != MAP_FAILED, what, ": cannot mmap ", file_size, " bytes: ", map_err);
  map_ = static_cast<const uint8_t*>(m);
  map_size_ = file_size;

  try {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];  // little-endian u64
    PE_CHECK(header_len <= file_size - 8, what, ": header length ", header_len,
             " exceeds the file size (", file_size, " bytes)");
    PE_CHECK(header_len <= kMaxHeaderBytes, what, ": header length ", header_len,
             " exceeds the limit of ", kMaxHeaderBytes, " bytes");
    data_start_ = 8 + header_len;
    const uint64_t data_size = file_size - data_start_;

    const char* hb = reinterpret_cast<const char*>(map_ + 8);
    json header = parse_json_strict(hb, hb + header_len, what);
    PE_CHECK(header.is_object(), what, ": header is not a JSON object");

    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const json& v = it.value();
      if (name == "__metadata__") {
        PE_CHECK(v.is_object(), what, ": __metadata__ is not an object");
        for (auto m_it = v.begin(); m_it != v.end(); ++m_it) {
          PE_CHECK(m_it.value().is_string(), what, ": __metadata__ value of '", m_it.key(),
                   "' is not a string");
          metadata_[m_it.key()] = m_it.value().get<std::string>();
        }
        continue;
      }
      const std::string tw = what + ": tensor '" + name + "'";
      PE_CHECK(v.is_object(), tw, ": entry is not an object");
      PE_CHECK(v.contains("dtype") && v["dtype"].is_string(), tw, ": missing string 'dtype'");
      PE_CHECK(v.contains("shape") && v["shape"].is_array(), tw, ": missing array 'shape'");
      PE_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() &&
                   v["data_offsets"].size() == 2,
               tw, ": missing 'data_offsets' [begin, end]");

      SafetensorsEntry e;
      e.name = name;
      e.dtype = v["dtype"].get<std::string>();
      const DtypeInfo* dt = find_dtype(e.dtype);
      PE_CHECK(dt != nullptr, tw, ": unknown dtype '", e.dtype, "'");
      for (const json& d : v["shape"]) {
        uint64_t dim = 0;
        PE_CHECK(json_u64(d, &dim) && dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                 tw, ": shape ", v["shape"].dump(), " has an entry that is not a non-negative integer");
        e.shape.push_back(static_cast<int64_t>(dim));
      }
      PE_CHECK(json_u64(v["data_offsets"][0], &e.begin) && json_u64(v["data_offsets"][1], &e.end), tw,
               ": data_offsets ", v["data_offsets"].dump(), " are not non-negative integers");
      PE_CHECK(e.begin <= e.end, tw, ": data_offsets [", e.begin, ", ", e.end, "] end before begin");
      PE_CHECK(e.end <= data_size, tw, ": data_offsets [", e.begin, ", ", e.end,
               "] out of range of the data section (", data_size, " bytes)");
      uint64_t expect = 0;
      PE_CHECK(tensor_nbytes(e.shape, dt->size, &expect), tw, ": shape ", shape_str(e.shape),
               " overflows a 64-bit byte count");
      PE_CHECK(e.nbytes() == expect, tw, ": holds ", e.nbytes(), " bytes but dtype ", e.dtype,
               " and shape ", shape_str(e.shape), " need ", expect);
      entries_.push_back(std::move(e));
    }

    // No two non-empty tensors may share bytes: sort by begin and compare neighbours.
    std::vector<const SafetensorsEntry*> by_offset;
    for (const auto& e : entries_)
      if (e.nbytes() > 0) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
    });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const SafetensorsEntry& a = *by_offset[i - 1];
      const SafetensorsEntry& b = *by_offset[i];
      PE_CHECK(a.end <= b.begin, what, ": tensors '", a.name, "' [", a.begin, ", ", a.end, ") and '",
               b.name, "' [", b.begin, ", ", b.end, ") overlap");
    }

    std::sort(entries_.begin(), entries_.end(),
              [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
    for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
  } catch (...) {
    unmap();
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_size_(o.map_size_),
      data_start_(o.data_start_),
      entries_(std::move(o.entries_)),
      index_(std::move(o.index_)),
      metadata_(std::move(o.metadata_)) {
  o.map_ = nullptr;
  o.map_size_ = 0;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    data_start_ = o.data_start_;
    entries_ = std::move(o.entries_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.map_size_ = 0;
  }
  return *this;
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  PE_CHECK(it != index_.end(), "safetensors file '", path_, "': no tensor named '", name, "'");
  return entries_[it->second];
}

ByteSpan SafetensorsFile::data(const SafetensorsEntry& e) const {
  return ByteSpan{map_ + data_start_ + e.begin, static_cast<size_t>(e.nbytes())};
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const ByteSpan s = data(e);
  const size_t n = static_cast<size_t>(e.numel());
  std::vector<float> out(n);
  if (e.dtype == "F32") {
    if (n) std::memcpy(out.data(), s.data, n * 4);
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    const bool bf = e.dtype == "BF16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, s.data + 2 * i, 2);
      out[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
  } else if (e.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, s.data + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    PE_FAIL("safetensors file '", path_, "': tensor '", name, "' has dtype ", e.dtype,
            ", which is not a floating-point type convertible to f32");
  }
  return out;
}

// ---------------------------------------------------------------- sharded checkpoints

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string dir_of(const std::string& p) {
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

}  // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path) : source_(path) {
  std::string index_path;
  std::string single_path;
  if (is_dir(path)) {
    if (is_file(path + "/model.safetensors.index.json")) {
      index_path = path + "/model.safetensors.index.json";
    } else if (is_file(path + "/model.safetensors")) {
      single_path = path + "/model.safetensors";
    } else {
      PE_FAIL("safetensors checkpoint directory '", path,
              "' has neither model.safetensors.index.json nor model.safetensors");
    }
  } else if (ends_with(path, ".json")) {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    shards_.emplace_back(single_path);
    for (const auto& e : shards_[0].entries()) where_[e.name] = 0;
    return;
  }

  const std::string what = "safetensors index '" + index_path + "'";
  std::ifstream in(index_path, std::ios::binary);
  PE_CHECK(in.good(), what, ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const json index = parse_json_strict(text.data(), text.data() + text.size(), what);
  PE_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), what,
           ": has no 'weight_map' object");

  const std::string dir = dir_of(index_path);
  std::map<std::string, size_t> shard_index;  // shard file name -> index into shards_
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    const std::string& tensor = it.key();
    PE_CHECK(it.value().is_string(), what, ": weight_map entry of tensor '", tensor, "' is not a string");
    const std::string shard = it.value().get<std::string>();
    // Shard names are relative to the index; refuse paths that could escape its directory.
    PE_CHECK(!shard.empty() && shard[0] != '/' && shard.find("..") == std::string::npos, what,
             ": tensor '", tensor, "' names shard '", shard, "', which is not a plain file name");
    auto found = shard_index.find(shard);
    if (found == shard_index.end()) {
      const std::string shard_path = dir + "/" + shard;
      PE_CHECK(is_file(shard_path), what, ": shard '", shard, "' (holding tensor '", tensor,
               "') does not exist at '", shard_path, "'");
      shards_.emplace_back(shard_path);
      found = shard_index.emplace(shard, shards_.size() - 1).first;
    }
    PE_CHECK(shards_[found->second].contains(tensor), what, ": tensor '", tensor, "' is mapped to shard '",
             shard, "', which does not contain it");
    where_[tensor] = found->second;
  }
}

const SafetensorsFile& SafetensorsCheckpoint::shard_of(const std::string& name) const {
  auto it = where_.find(name);
  PE_CHECK(it != where_.end(), "safetensors checkpoint '", source_, "': no tensor named '", name, "'");
  return shards_[it->second];
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

// ---------------------------------------------------------------- writer

namespace {

// Removes the temporary file unless the write was committed (renamed into place).
struct TempFileGuard {
  std::string path;
  int fd = -1;
  bool committed = false;
  ~TempFileGuard() {
    if (fd >= 0) ::close(fd);
    if (!committed) ::unlink(path.c_str());
  }
};

void write_all(int fd, const void* data, size_t n, const std::string& what) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    PE_CHECK(w > 0, what, ": write failed: ", errno_text());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  const std::string what = "write_safetensors '" + path + "'";

  // Validate everything before touching the disk.
  std::set<std::string> names;
  for (const auto& e : entries) {
    PE_CHECK(!e.name.empty() && e.name != "__metadata__", what, ": invalid tensor name '", e.name, "'");
    PE_CHECK(names.insert(e.name).second, what, ": tensor '", e.name, "' given twice");
    const DtypeInfo* dt = find_dtype(e.dtype);
    PE_CHECK(dt != nullptr, what, ": tensor '", e.name, "': unknown dtype '", e.dtype, "'");
    uint64_t expect = 0;
    PE_CHECK(tensor_nbytes(e.shape, dt->size, &expect), what, ": tensor '", e.name, "': invalid shape ",
             shape_str(e.shape));
    PE_CHECK(e.nbytes == expect, what, ": tensor '", e.name, "': ", e.nbytes, " bytes given but dtype ",
             e.dtype, " and shape ", shape_str(e.shape), " need ", expect);
    PE_CHECK(e.data != nullptr || e.nbytes == 0, what, ": tensor '", e.name, "': null data");
  }

  // Layout like the Python library: widest dtype first, then by name; offsets are contiguous.
  std::vector<const SafetensorsWriteEntry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const SafetensorsWriteEntry* a, const SafetensorsWriteEntry* b) {
    const int ra = find_dtype(a->dtype)->rank, rb = find_dtype(b->dtype)->rank;
    return ra != rb ? ra > rb : a->name < b->name;
  });

  // Header JSON, written by hand to keep the key order ("__metadata__" first, then data order).
  std::string header = "{";
  try {
    if (!metadata.empty()) header += "\"__metadata__\":" + json(metadata).dump();
    uint64_t offset = 0;
    for (const auto* e : order) {
      if (header.size() > 1) header += ",";
      header += json(e->name).dump() + ":{\"dtype\":\"" + e->dtype + "\",\"shape\":" + json(e->shape).dump() +
                ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e->nbytes) + "]}";
      offset += e->nbytes;
    }
  } catch (const json::exception& ex) {  // e.g. a name or metadata string that is not valid UTF-8
    PE_FAIL(what, ": cannot encode the header: ", ex.what());
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));

  TempFileGuard tmp;
  tmp.path = path + ".tmp." + std::to_string(::getpid());
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PE_CHECK(tmp.fd >= 0, what, ": cannot create temporary file '", tmp.path, "': ", errno_text());
  // Raw write(2) has no user-space buffer to flush; fsync makes the bytes durable before the rename.
  write_all(tmp.fd, len_le, 8, what);
  write_all(tmp.fd, header.data(), header.size(), what);
  for (const auto* e : order) write_all(tmp.fd, e->data, e->nbytes, what);
  PE_CHECK(::fsync(tmp.fd) == 0, what, ": fsync failed: ", errno_text());
  const int fd = tmp.fd;
  tmp.fd = -1;
  PE_CHECK(::close(fd) == 0, what, ": close failed: ", errno_text());
  PE_CHECK(::rename(tmp.path.c_str(), path.c_str()) == 0, what, ": cannot rename '", tmp.path,
           "' over the destination: ", errno_text());
  tmp.committed = true;

  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL): accept that.
  const std::string dir = dir_of(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  PE_CHECK(dfd >= 0, what, ": written, but cannot open directory '", dir, "' to sync it: ", errno_text());
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  PE_CHECK(rc == 0 || err == EINVAL, what, ": written, but fsync of directory '", dir,
           "' failed: ", std::strerror(err));
}

// ---------------------------------------------------------------- 16-bit floats

namespace {
uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (carries into the exponent)
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // zero or subnormal: value = mant * 2^-24, exact in f32
    const float v = static_cast<float>(mant) * bits_f32(0x33800000u);  // 2^-24
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));  // rebias 15 -> 127
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  uint16_t out;
  if (u > 0x7f800000u) {
    out = static_cast<uint16_t>(0x7e00u | ((u >> 13) & 0x3ffu));  // quiet NaN, keep payload bits
  } else if (u >= 0x47800000u) {
    out = 0x7c00;  // >= 65536 (or inf): overflow
  } else if (u < 0x38800000u) {
    // Below the smallest normal f16 (2^-14): adding 0.5 makes the FPU round the value to a multiple
    // of 2^-24 (ties to even) and leaves that multiple in the low mantissa bits.
    const float r = bits_f32(u) + 0.5f;
    out = static_cast<uint16_t>(f32_bits(r) - f32_bits(0.5f));
  } else {
    // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even. A carry
    // may step into the next exponent, up to 0x7c00 (inf) for values >= 65520.
    const uint32_t odd = (u >> 13) & 1u;
    u += 0xc8000fffu + odd;  // (15-127)<<23 (mod 2^32) plus rounding bias
    out = static_cast<uint16_t>(u >> 13);
  }
  return static_cast<uint16_t>(out | sign);
}

}  // namespace pe
