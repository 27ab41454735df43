// Pretrained tensors are checked as they load: the declared dtype must be a float type for a float
// parameter (float types convert, integers are not cast), and NaN/Inf values are refused, naming
// the tensor and the file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "models/esm.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A copy of the esm_tiny fixture whose tensor `name` is rewritten by `edit` (dtype string, bytes).
std::string edited_esm(const TempDir& td, const std::string& tag, const std::string& name,
                       void (*edit)(std::string& dtype, std::vector<char>& bytes)) {
  std::string dir = td.path(tag);
  fs::copy(std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/esm_tiny", dir);
  std::vector<SafetensorsWriteEntry> entries;
  std::vector<std::vector<char>> keep;
  {
    SafetensorsFile f(dir + "/model.safetensors");
    keep.reserve(f.entries().size());
    for (const SafetensorsEntry& e : f.entries()) {
      ByteSpan b = f.data(e);
      keep.emplace_back(reinterpret_cast<const char*>(b.data), reinterpret_cast<const char*>(b.data) + b.size);
      SafetensorsWriteEntry w;
      w.name = e.name;
      w.dtype = e.dtype;
      w.shape = e.shape;
      if (e.name == name) edit(w.dtype, keep.back());
      w.data = keep.back().data();
      w.nbytes = keep.back().size();
      entries.push_back(w);
    }
  }
  write_safetensors(dir + "/model.safetensors", entries, {});
  return dir;
}

const char* kTensor = "esm.encoder.layer.0.attention.self.query.weight";

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("a float parameter declared as an integer dtype in safetensors is an error naming tensor and file") {
    TempDir td("dtype");
    std::string dir = edited_esm(td, "esm_int", kTensor, [](std::string& dtype, std::vector<char>&) {
      dtype = dtype == "F64" ? "I64" : dtype == "F32" ? "I32" : "I16";
    });
    EsmConfig cfg = EsmConfig::from_json_file(dir + "/config.json");
    Generator gen(0);
    EsmModel m(cfg, gen);
    CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains(kTensor), Error);
    CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains("model.safetensors"), Error);
    CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains("only conversions between float types"), Error);
    // The untouched fixture (a float type other than F32 included) still loads.
    EsmModel ok(cfg, gen);
    CHECK(ok.load(std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/esm_tiny").loaded.size() > 0);
  }

  TEST_CASE("a NaN or Inf pretrained tensor is refused at load - naming it") {
    TempDir td("nan");
    for (double bad : {std::nan(""), double(INFINITY)}) {
      CAPTURE(bad);
      std::string dir = edited_esm(td, bad != bad ? "esm_nan" : "esm_inf", kTensor,
                                   bad != bad ? +[](std::string& dtype, std::vector<char>& b) {
                                     if (dtype == "F64") reinterpret_cast<double*>(b.data())[3] = std::nan("");
                                     else reinterpret_cast<float*>(b.data())[3] = std::nanf("");
                                   }
                                              : +[](std::string& dtype, std::vector<char>& b) {
                                                  if (dtype == "F64") reinterpret_cast<double*>(b.data())[3] = INFINITY;
                                                  else reinterpret_cast<float*>(b.data())[3] = INFINITY;
                                                });
      EsmConfig cfg = EsmConfig::from_json_file(dir + "/config.json");
      Generator gen(0);
      EsmModel m(cfg, gen);
      CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains(kTensor), Error);
      CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains("NaN or infinite"), Error);
      CHECK_THROWS_WITH_AS(m.load(dir), doctest::Contains("model.safetensors"), Error);
    }
  }
}
