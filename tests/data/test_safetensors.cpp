// Tests of the safetensors reader/writer: round trips, a file made by the Python library, corrupt
// headers, atomic writes that fail, sharded checkpoints, and the 16-bit float conversions.
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"

namespace {

// A fresh directory under /tmp, removed (with its files) at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pe_st_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    ::chmod(path.c_str(), 0755);
    for (const auto& f : list()) ::unlink((path + "/" + f).c_str());
    ::rmdir(path.c_str());
  }
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A raw safetensors file: 8-byte length (`declared_len`, or the header's true length), header, data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t declared_len = UINT64_MAX) {
  const uint64_t n = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// The message of the pe::Error that `fn` throws ("" if it throws nothing).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const pe::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

template <typename T>
pe::SafetensorsWriteEntry entry_of(const std::string& name, const std::string& dtype,
                                   std::vector<int64_t> shape, const std::vector<T>& v) {
  return {name, dtype, std::move(shape), v.data(), v.size() * sizeof(T)};
}

template <typename T>
std::vector<T> values_of(const pe::SafetensorsFile& f, const std::string& name) {
  const pe::ByteSpan s = f.data(name);
  std::vector<T> v(s.size / sizeof(T));
  if (s.size) std::memcpy(v.data(), s.data, s.size);
  return v;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("safetensors: dtype sizes") {
    CHECK(pe::safetensors_dtype_size("F64") == 8);
    CHECK(pe::safetensors_dtype_size("F32") == 4);
    CHECK(pe::safetensors_dtype_size("BF16") == 2);
    CHECK(pe::safetensors_dtype_size("F16") == 2);
    CHECK(pe::safetensors_dtype_size("I64") == 8);
    CHECK(pe::safetensors_dtype_size("I8") == 1);
    CHECK(pe::safetensors_dtype_size("BOOL") == 1);
    CHECK(pe::safetensors_dtype_size("f32") == 0);
    CHECK(pe::safetensors_dtype_size("Q4") == 0);
  }

  TEST_CASE("safetensors: round trip of many dtypes and shapes - including empty and scalar") {
    TempDir dir;
    const std::vector<double> f64{3.5};
    const std::vector<float> f32{1, 2, 3, 4, 5, 6};
    const std::vector<uint16_t> bf16{pe::f32_to_bf16(1.5f), pe::f32_to_bf16(-2.0f)};
    const std::vector<uint16_t> f16{pe::f32_to_f16(0.25f), pe::f32_to_f16(-8.0f), pe::f32_to_f16(1e-6f)};
    const std::vector<int64_t> i64{-1, 1LL << 50};
    const std::vector<int32_t> i32{7, -7, 0};
    const std::vector<int16_t> i16{-3};
    const std::vector<int8_t> i8{-128, 127, 0, 1, 2};
    const std::vector<uint8_t> u8_empty;
    const std::vector<uint8_t> flags{1, 0, 1};
    const std::vector<uint64_t> u64{~0ull};
    std::vector<pe::SafetensorsWriteEntry> entries{
        entry_of("a.scalar", "F64", {}, f64),          entry_of("b.matrix", "F32", {2, 3}, f32),
        entry_of("c.bf16", "BF16", {2, 1}, bf16),      entry_of("d.f16", "F16", {3}, f16),
        entry_of("e.i64", "I64", {2}, i64),            entry_of("f.i32", "I32", {1, 3, 1}, i32),
        entry_of("g.i16", "I16", {1}, i16),            entry_of("h.i8", "I8", {5}, i8),
        entry_of("i.empty", "U8", {0, 7}, u8_empty),   entry_of("j.bool", "BOOL", {3}, flags),
        entry_of("k.u64", "U64", {1}, u64),
    };
    const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "ünïcode ✓"}};
    const std::string path = dir.file("model.safetensors");
    pe::write_safetensors(path, entries, meta);
    CHECK(dir.list() == std::vector<std::string>{"model.safetensors"});  // no temp file left
    const std::string bytes = read_bytes(path);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
    CHECK(header_len % 8 == 0);  // header padded with spaces so the data section is 8-aligned

    pe::SafetensorsFile f(path);
    CHECK(f.metadata() == meta);
    REQUIRE(f.entries().size() == entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& w = entries[i];
      const auto& e = f.entries()[i];  // both sorted by name
      CAPTURE(w.name);
      CHECK(e.name == w.name);
      CHECK(e.dtype == w.dtype);
      CHECK(e.shape == w.shape);
      CHECK(e.nbytes() == w.nbytes);
      const pe::ByteSpan s = f.data(e);
      REQUIRE(s.size == w.nbytes);
      if (s.size) CHECK(std::memcmp(s.data, w.data, s.size) == 0);
      // The Python-like layout (widest dtype first) keeps every tensor aligned to its element size.
      CHECK(reinterpret_cast<uintptr_t>(s.data) % pe::safetensors_dtype_size(e.dtype) == 0);
    }
    CHECK(f.entry("a.scalar").numel() == 1);
    CHECK(f.entry("i.empty").numel() == 0);
    CHECK(f.read_f32("a.scalar") == std::vector<float>{3.5f});
    CHECK(f.read_f32("b.matrix") == f32);
    CHECK(f.read_f32("c.bf16") == std::vector<float>{1.5f, -2.0f});
    CHECK(f.read_f32("d.f16")[1] == -8.0f);
    CHECK(contains(error_of([&] { f.read_f32("e.i64"); }), "e.i64"));
    const std::string missing = error_of([&] { f.entry("nope"); });
    CHECK(contains(missing, "nope"));
    CHECK(contains(missing, path));

    // A file with no tensors and no metadata is valid too.
    pe::write_safetensors(dir.file("empty.safetensors"), {});
    pe::SafetensorsFile e(dir.file("empty.safetensors"));
    CHECK(e.entries().empty());
    CHECK(e.metadata().empty());
    CHECK(read_bytes(dir.file("empty.safetensors")).size() == 16);  // length + "{}" padded to 8

    // Overwriting replaces the file; moving keeps the mapping valid.
    pe::write_safetensors(path, {entry_of("only", "I8", {5}, i8)});
    pe::SafetensorsFile moved = pe::SafetensorsFile(path);
    CHECK(values_of<int8_t>(moved, "only") == i8);
  }

  TEST_CASE("safetensors: writer rejects bad entries before touching the disk") {
    TempDir dir;
    const std::vector<float> v{1, 2, 3};
    const std::string p = dir.file("x.safetensors");
    CHECK(contains(error_of([&] { pe::write_safetensors(p, {entry_of("w", "F32", {2, 2}, v)}); }), "need 16"));
    CHECK(contains(error_of([&] { pe::write_safetensors(p, {entry_of("w", "F24", {3}, v)}); }), "F24"));
    CHECK(contains(error_of([&] {
                     pe::write_safetensors(p, {entry_of("w", "F32", {3}, v), entry_of("w", "F32", {3}, v)});
                   }),
                   "twice"));
    CHECK(contains(error_of([&] { pe::write_safetensors(p, {entry_of("__metadata__", "F32", {3}, v)}); }),
                   "invalid tensor name"));
    CHECK(dir.list().empty());
  }

  TEST_CASE("safetensors: reads a file written by the Python safetensors package") {
    // Made by scripts/make_safetensors_fixture.py.
    const std::string path = std::string(PE_SOURCE_DIR) + "/tests/fixtures/safetensors/python_small.safetensors";
    pe::SafetensorsFile f(path);
    CHECK(f.metadata().at("format") == "np");
    CHECK(f.entries().size() == 9);

    const auto& w = f.entry("encoder.weight");
    CHECK(w.dtype == "F32");
    CHECK(w.shape == std::vector<int64_t>{2, 3});
    CHECK(values_of<float>(f, "encoder.weight") == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
    CHECK(f.entry("scale").shape.empty());
    CHECK(values_of<double>(f, "scale") == std::vector<double>{3.25});
    CHECK(values_of<int64_t>(f, "ids") == std::vector<int64_t>{-2, 0, 7, 1LL << 40});
    CHECK(f.read_f32("half") == std::vector<float>{1.0f, -2.5f, 65504.0f});
    CHECK(values_of<int32_t>(f, "counts") == std::vector<int32_t>{-1, 0, 1, 2});
    CHECK(values_of<int16_t>(f, "small") == std::vector<int16_t>{-300, 300});
    CHECK(values_of<uint8_t>(f, "bytes") == std::vector<uint8_t>{0, 255, 7});
    CHECK(f.entry("flags").dtype == "BOOL");
    CHECK(values_of<uint8_t>(f, "flags") == std::vector<uint8_t>{1, 0, 1});
    CHECK(f.entry("empty").shape == std::vector<int64_t>{0, 4});
    CHECK(f.data("empty").size == 0);

    // Writing the same tensors and metadata reproduces the Python file byte for byte.
    std::vector<pe::SafetensorsWriteEntry> again;
    for (const auto& e : f.entries()) {
      const pe::ByteSpan s = f.data(e);
      again.push_back({e.name, e.dtype, e.shape, s.data, s.size});
    }
    TempDir dir;
    pe::write_safetensors(dir.file("again.safetensors"), again, f.metadata());
    CHECK(read_bytes(dir.file("again.safetensors")) == read_bytes(path));
  }

  TEST_CASE("safetensors: corrupt files give a pe::Error naming the file and tensor") {
    TempDir dir;
    const std::string p = dir.file("bad.safetensors");
    auto open_error = [&](const std::string& bytes) {
      write_bytes(p, bytes);
      return error_of([&] { pe::SafetensorsFile f(p); });
    };
    const std::string data16(16, '\x01');
    const std::string ok = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
    REQUIRE(open_error(raw_file(ok, data16)).empty());

    SUBCASE("shorter than the length field") {
      const std::string msg = open_error("abc");
      CHECK(contains(msg, p));
      CHECK(contains(msg, "too short"));
    }
    SUBCASE("truncated data") {
      const std::string msg = open_error(raw_file(ok, data16.substr(0, 10)));
      CHECK(contains(msg, p));
      CHECK(contains(msg, "'w'"));
      CHECK(contains(msg, "out of range"));
    }
    SUBCASE("truncated header") {
      std::string full = raw_file(ok, "");
      const std::string msg = open_error(full.substr(0, 20));
      CHECK(contains(msg, "exceeds the file size"));
    }
    SUBCASE("header length too big") {
      CHECK(contains(open_error(raw_file(ok, data16, 1'000'000)), "exceeds the file size"));
      CHECK(contains(open_error(raw_file(ok, data16, UINT64_MAX - 3)), "exceeds the file size"));
    }
    SUBCASE("bad JSON") {
      const std::string msg = open_error(raw_file(R"({"w":{"dtype":"F32",)", data16));
      CHECK(contains(msg, p));
      CHECK(contains(msg, "not valid JSON"));
      CHECK(contains(open_error(raw_file("[1,2]", "")), "not a JSON object"));
    }
    SUBCASE("offsets out of range") {
      const std::string msg =
          open_error(raw_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})", data16));
      CHECK(contains(msg, "'w'"));
      CHECK(contains(msg, "out of range"));
    }
    SUBCASE("end before begin") {
      CHECK(contains(open_error(raw_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", data16)),
                     "end before begin"));
    }
    SUBCASE("overlapping tensors") {
      const std::string msg = open_error(raw_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          data16));
      CHECK(contains(msg, "'a'"));
      CHECK(contains(msg, "'b'"));
      CHECK(contains(msg, "overlap"));
    }
    SUBCASE("wrong size for the shape") {
      const std::string msg =
          open_error(raw_file(R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", data16));
      CHECK(contains(msg, "'w'"));
      CHECK(contains(msg, "need 24"));
    }
    SUBCASE("shape whose byte count overflows") {
      const std::string msg = open_error(raw_file(
          R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", data16));
      CHECK(contains(msg, "overflows"));
    }
    SUBCASE("negative or non-integer shape") {
      CHECK(contains(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "")),
                     "non-negative integer"));
      CHECK(contains(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", "")),
                     "non-negative integer"));
    }
    SUBCASE("unknown dtype") {
      const std::string msg =
          open_error(raw_file(R"({"w":{"dtype":"F12","shape":[2,2],"data_offsets":[0,16]}})", data16));
      CHECK(contains(msg, "'w'"));
      CHECK(contains(msg, "unknown dtype 'F12'"));
    }
    SUBCASE("missing fields, bad metadata, duplicate names") {
      CHECK(contains(open_error(raw_file(R"({"w":{"shape":[],"data_offsets":[0,0]}})", "")), "'dtype'"));
      CHECK(contains(open_error(raw_file(R"({"__metadata__":{"k":1}})", "")), "not a string"));
      CHECK(contains(open_error(raw_file(
                         R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                         data16)),
                     "'w' twice"));
    }
    SUBCASE("missing file") {
      CHECK(contains(error_of([&] { pe::SafetensorsFile f(dir.file("none.safetensors")); }), "none.safetensors"));
    }
  }

  TEST_CASE("safetensors: a failed atomic write leaves the old file intact") {
    TempDir dir;
    const std::string path = dir.file("ckpt.safetensors");
    const std::vector<float> old_values{1, 2, 3};
    pe::write_safetensors(path, {entry_of("w", "F32", {3}, old_values)});
    const std::string old_bytes = read_bytes(path);

    SUBCASE("directory that does not exist") {
      const std::string p = dir.file("no/such/dir/x.safetensors");
      CHECK(contains(error_of([&] { pe::write_safetensors(p, {entry_of("w", "F32", {3}, old_values)}); }), p));
    }
    SUBCASE("write fails midway (file size limit)") {
      // RLIMIT_FSIZE makes write(2) fail with EFBIG after 4 KiB, even for root (who ignores
      // directory permissions). SIGXFSZ would kill the process, so ignore it for the duration.
      const std::vector<float> big(1 << 16, 7.0f);
      rlimit saved{};
      REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
      struct sigaction ign {}, old_sa {};
      ign.sa_handler = SIG_IGN;
      ::sigaction(SIGXFSZ, &ign, &old_sa);
      rlimit lim = saved;
      lim.rlim_cur = 4096;
      REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
      const std::string msg = error_of([&] { pe::write_safetensors(path, {entry_of("w", "F32", {1 << 16}, big)}); });
      ::setrlimit(RLIMIT_FSIZE, &saved);
      ::sigaction(SIGXFSZ, &old_sa, nullptr);
      CHECK(contains(msg, path));
      CHECK(contains(msg, "write failed"));
    }
    SUBCASE("unwritable directory") {
      if (::geteuid() == 0) return;  // root writes anyway; the size-limit case covers failures for root
      REQUIRE(::chmod(dir.path.c_str(), 0555) == 0);
      const std::string msg = error_of([&] { pe::write_safetensors(path, {entry_of("w", "F32", {3}, old_values)}); });
      ::chmod(dir.path.c_str(), 0755);
      CHECK(contains(msg, "cannot create temporary file"));
    }
    // Whatever failed, the destination is untouched and no temporary file remains.
    CHECK(read_bytes(path) == old_bytes);
    CHECK(dir.list() == std::vector<std::string>{"ckpt.safetensors"});
    pe::SafetensorsFile f(path);
    CHECK(f.read_f32("w") == old_values);
  }

  TEST_CASE("safetensors: sharded checkpoints resolve tensor names to shards") {
    TempDir dir;
    const std::vector<float> a{1, 2}, b{3}, c{4, 5, 6};
    pe::write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                          {entry_of("layer.0.w", "F32", {2}, a), entry_of("layer.0.b", "F32", {1}, b)});
    pe::write_safetensors(dir.file("model-00002-of-00002.safetensors"), {entry_of("layer.1.w", "F32", {3}, c)});
    const std::string index = R"({"metadata": {"total_size": 24}, "weight_map": {
        "layer.0.w": "model-00001-of-00002.safetensors",
        "layer.0.b": "model-00001-of-00002.safetensors",
        "layer.1.w": "model-00002-of-00002.safetensors"}})";
    write_bytes(dir.file("model.safetensors.index.json"), index);

    for (const std::string& src : {dir.path, dir.file("model.safetensors.index.json")}) {
      CAPTURE(src);
      pe::SafetensorsCheckpoint ck(src);
      CHECK(ck.shards().size() == 2);
      CHECK(ck.names() == std::vector<std::string>{"layer.0.b", "layer.0.w", "layer.1.w"});
      CHECK(contains(ck.shard_of("layer.1.w").path(), "model-00002-of-00002"));
      CHECK(ck.read_f32("layer.0.w") == a);
      CHECK(ck.read_f32("layer.1.w") == c);
      CHECK(ck.entry("layer.0.b").shape == std::vector<int64_t>{1});
      const std::string msg = error_of([&] { ck.shard_of("layer.2.w"); });
      CHECK(contains(msg, "layer.2.w"));
      CHECK(contains(msg, src));
    }

    SUBCASE("missing shard") {
      write_bytes(dir.file("model.safetensors.index.json"),
                  R"({"weight_map": {"layer.0.w": "model-00001-of-00002.safetensors", "x": "gone.safetensors"}})");
      const std::string msg = error_of([&] { pe::SafetensorsCheckpoint ck(dir.path); });
      CHECK(contains(msg, "gone.safetensors"));
      CHECK(contains(msg, "'x'"));
    }
    SUBCASE("tensor not in its shard") {
      write_bytes(dir.file("model.safetensors.index.json"),
                  R"({"weight_map": {"layer.1.w": "model-00001-of-00002.safetensors"}})");
      const std::string msg = error_of([&] { pe::SafetensorsCheckpoint ck(dir.path); });
      CHECK(contains(msg, "layer.1.w"));
      CHECK(contains(msg, "model-00001-of-00002.safetensors"));
    }
    SUBCASE("shard path escaping the directory") {
      write_bytes(dir.file("model.safetensors.index.json"), R"({"weight_map": {"w": "../evil.safetensors"}})");
      CHECK(contains(error_of([&] { pe::SafetensorsCheckpoint ck(dir.path); }), "not a plain file name"));
    }
    SUBCASE("no weight_map") {
      write_bytes(dir.file("model.safetensors.index.json"), R"({"metadata": {}})");
      CHECK(contains(error_of([&] { pe::SafetensorsCheckpoint ck(dir.path); }), "weight_map"));
    }
    SUBCASE("single-file checkpoint directory") {
      TempDir single;
      pe::write_safetensors(single.file("model.safetensors"), {entry_of("w", "F32", {2}, a)});
      pe::SafetensorsCheckpoint ck(single.path);
      CHECK(ck.read_f32("w") == a);
      TempDir nothing;
      CHECK(contains(error_of([&] { pe::SafetensorsCheckpoint ck2(nothing.path); }), "model.safetensors"));
    }
  }

  TEST_CASE("safetensors: bf16 and f16 conversions") {
    // Every 16-bit pattern survives 16 -> 32 -> 16 (NaNs stay NaN).
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint16_t x = static_cast<uint16_t>(h);
      const float b = pe::bf16_to_f32(x);
      if (std::isnan(b)) {
        CHECK(std::isnan(pe::bf16_to_f32(pe::f32_to_bf16(b))));
      } else if (pe::f32_to_bf16(b) != x) {
        FAIL("bf16 pattern ", h, " does not round trip");
      }
      const float f = pe::f16_to_f32(x);
      if (std::isnan(f)) {
        CHECK(std::isnan(pe::f16_to_f32(pe::f32_to_f16(f))));
      } else if (pe::f32_to_f16(f) != x) {
        FAIL("f16 pattern ", h, " does not round trip");
      }
    }
    // bf16: ties go to the even mantissa.
    CHECK(pe::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // halfway 1 .. 1+2^-7 -> 1
    CHECK(pe::f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // halfway, odd below -> up
    CHECK(pe::f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);  // above half
    CHECK(pe::f32_to_bf16(-0.0f) == 0x8000);
    CHECK(pe::f32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
    CHECK(pe::f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest bf16
    // f16: normals, overflow, subnormals.
    CHECK(pe::f32_to_f16(1.0f) == 0x3c00);
    CHECK(pe::f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
    CHECK(pe::f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    CHECK(pe::f32_to_f16(65504.0f) == 0x7bff);
    CHECK(pe::f32_to_f16(65519.0f) == 0x7bff);
    CHECK(pe::f32_to_f16(65520.0f) == 0x7c00);
    CHECK(pe::f32_to_f16(-1e10f) == 0xfc00);
    CHECK(pe::f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(pe::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);      // tie -> even (0)
    CHECK(pe::f32_to_f16(3 * std::ldexp(1.0f, -25)) == 0x0002);  // tie -> even (2)
    CHECK(pe::f32_to_f16(std::ldexp(1.0f, -14) * 0.99999f) == 0x0400);  // rounds up to the smallest normal
    CHECK(pe::f32_to_f16(-std::ldexp(1.0f, -30)) == 0x8000);
    CHECK(std::isnan(pe::f16_to_f32(pe::f32_to_f16(std::nanf("")))));
    CHECK(pe::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(pe::f16_to_f32(0xc000) == -2.0f);
  }
}
