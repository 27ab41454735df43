#include "models/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "kernels/backend.h"

namespace pe {

Tensor read_tensor(const SafetensorsCheckpoint& ckpt, const std::string& name) {
  const SafetensorsEntry& e = ckpt.entry(name);
  ByteSpan b = ckpt.data(name);
  Shape shape(e.shape.begin(), e.shape.end());
  auto raw = [&](DType dt) {
    Tensor t = Tensor::empty(shape, dt);
    PE_CHECK(b.size == t.nbytes(), "tensor '", name, "': ", b.size, " bytes for ", t.str());
    if (b.size) std::memcpy(t.raw_data(), b.data, b.size);
    return t;
  };
  if (e.dtype == "F64") return raw(DType::F64);
  if (e.dtype == "F32") return raw(DType::F32);
  if (e.dtype == "BF16") return raw(DType::BF16);
  if (e.dtype == "I64") return raw(DType::I64);
  if (e.dtype == "I32") return raw(DType::I32);
  if (e.dtype == "U8") return raw(DType::U8);
  if (e.dtype == "BOOL") return raw(DType::Bool);
  if (e.dtype == "F16") {
    std::vector<float> v = ckpt.read_f32(name);
    return Tensor::from_vector(v, shape);
  }
  PE_FAIL("tensor '", name, "': dtype ", e.dtype, " is not supported");
}

LoadReport load_checkpoint(ParamStore& ps, const std::string& path, const LoadOptions& opt) {
  SafetensorsCheckpoint ckpt(path);
  LoadReport rep;
  std::set<std::string> used;
  std::vector<std::string> missing;
  for (const std::string& name : ps.names()) {
    // HF writes some LayerNorm parameters as gamma/beta; accept both spellings.
    std::vector<std::string> spellings = {name};
    auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    if (ends(".weight")) spellings.push_back(name.substr(0, name.size() - 7) + ".gamma");
    if (ends(".bias")) spellings.push_back(name.substr(0, name.size() - 5) + ".beta");
    std::string found;
    for (const auto& p : opt.prefixes) {
      for (const auto& s : spellings)
        if (ckpt.contains(p + s)) { found = p + s; break; }
      if (!found.empty()) break;
    }
    if (found.empty()) {
      bool optional = false;
      for (const auto& o : opt.optional) optional |= name.find(o) != std::string::npos;
      if (optional) rep.kept_initial.push_back(name); else missing.push_back(name);
      continue;
    }
    Tensor t = ps.get(name);
    const SafetensorsEntry& e = ckpt.entry(found);
    Shape s(e.shape.begin(), e.shape.end());
    PE_CHECK(s == t.shape(), "checkpoint ", path, ": tensor '", found, "' has shape ", shape_str(s),
             " but the model expects ", shape_str(t.shape()), " (check config.json)");
    // Only float-to-float conversions (F64/F16/BF16 -> the parameter's float type); an integer
    // declaration for a float parameter (or the reverse) is a broken file, not something to cast.
    static const std::set<std::string> float_dtypes = {"F64", "F32", "F16", "BF16"};
    bool file_float = float_dtypes.count(e.dtype) > 0;
    PE_CHECK(file_float == is_floating(t.dtype()), "checkpoint ", ckpt.shard_of(found).path(), ": tensor '", found,
             "' is declared ", e.dtype,
             " but the model's parameter is ", dtype_name(t.dtype()),
             "; only conversions between float types (F64, F32, F16, BF16) are made");
    Tensor value = read_tensor(ckpt, found);
    PE_CHECK(!backend_for(Device::cpu()).has_nonfinite(value), "checkpoint ", ckpt.shard_of(found).path(), ": tensor '", found,
             "' holds NaN or infinite values; refusing to start from it");
    ps.assign(name, value);
    used.insert(found);
    rep.loaded.push_back(name);
  }
  if (!missing.empty()) {
    std::ostringstream os;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) os << (i ? ", " : "") << "'" << missing[i] << "'";
    if (missing.size() > 8) os << " and " << missing.size() - 8 << " more";
    PE_FAIL("checkpoint ", path, ": missing ", missing.size(), " tensor(s) the model needs: ", os.str());
  }
  std::vector<std::string> unexpected;
  for (const std::string& n : ckpt.names()) {
    if (used.count(n)) continue;
    bool ignore = false;
    for (const auto& pat : opt.ignore) ignore |= n.find(pat) != std::string::npos;
    if (ignore) rep.ignored.push_back(n); else unexpected.push_back(n);
  }
  if (!unexpected.empty()) {
    std::ostringstream os;
    for (size_t i = 0; i < unexpected.size() && i < 8; ++i) os << (i ? ", " : "") << "'" << unexpected[i] << "'";
    if (unexpected.size() > 8) os << " and " << unexpected.size() - 8 << " more";
    PE_FAIL("checkpoint ", path, ": ", unexpected.size(), " unexpected tensor(s): ", os.str(),
            " (wrong model type or config?)");
  }
  return rep;
}

static const char* st_dtype(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata, const DType* as) {
  std::vector<Tensor> host;  // keeps the bytes alive until written
  std::vector<SafetensorsWriteEntry> entries;
  NoGradGuard ng;
  for (const auto& [name, t] : tensors) {
    Tensor h = t.detach().to(Device::cpu());
    if (as && is_floating(h.dtype())) h = h.to(*as);
    h = h.contiguous();
    host.push_back(h);
    SafetensorsWriteEntry e;
    e.name = name;
    e.dtype = st_dtype(h.dtype());
    e.shape.assign(h.shape().begin(), h.shape().end());
    e.data = h.raw_data();
    e.nbytes = h.nbytes();
    entries.push_back(e);
  }
  write_safetensors(path, entries, metadata);
}

std::vector<std::pair<std::string, Tensor>> named_tensors(const ParamStore& ps, const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& n : ps.names())
    if (n.rfind(prefix, 0) == 0) out.emplace_back(n.substr(prefix.size()), ps.get(n));
  return out;
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  PE_CHECK(!ec, "cannot create directory ", dir, ": ", ec.message());
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  PE_CHECK(fd >= 0, "cannot write ", tmp, ": ", std::strerror(errno));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      PE_FAIL("cannot write ", tmp, ": ", std::strerror(err));
    }
    off += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    PE_FAIL("cannot flush ", tmp, ": ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    PE_FAIL("cannot rename ", tmp, " to ", path, ": ", std::strerror(err));
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PE_CHECK(f.good(), "cannot open ", path);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace pe
