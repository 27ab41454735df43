// The run folder and its checkpoints: the metadata is checksummed, every unusable checkpoint falls
// back to the next older one, --no-resume does not clobber an earlier run without --overwrite, one
// writer per --out, leftovers of killed writers are removed, and a resume with changed options warns.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/model_io.h"
#include "app/run_dir.h"
#include "app/train.h"
#include "io/safetensors.h"
#include "tests/app/tiny_train.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

namespace {

size_t loss_lines(const std::string& metrics) {
  std::ifstream f(metrics);
  size_t n = 0;
  for (std::string line; std::getline(f, line);) n += nlohmann::json::parse(line).contains("loss");
  return n;
}

// Rewrites a safetensors file byte for byte, with `edit` applied to its metadata (checksums kept).
void edit_metadata(const std::string& path, const std::function<void(std::map<std::string, std::string>&)>& edit) {
  std::vector<std::vector<char>> keep;
  std::vector<SafetensorsWriteEntry> entries;
  std::map<std::string, std::string> meta;
  {
    SafetensorsFile f(path);
    meta = f.metadata();
    keep.reserve(f.entries().size());
    for (const SafetensorsEntry& e : f.entries()) {
      ByteSpan b = f.data(e);
      keep.emplace_back(reinterpret_cast<const char*>(b.data), reinterpret_cast<const char*>(b.data) + b.size);
      SafetensorsWriteEntry w;
      w.name = e.name;
      w.dtype = e.dtype;
      w.shape = e.shape;
      w.data = keep.back().data();
      w.nbytes = keep.back().size();
      entries.push_back(w);
    }
  }
  edit(meta);
  write_safetensors(path, entries, meta);
}

// Runs fn with stdout sent to a file; returns what it printed.
std::string captured_stdout(const std::string& file, const std::function<void()>& fn) {
  std::fflush(stdout);
  int saved = ::dup(1);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fd, 1);
  ::close(fd);
  try {
    fn();
  } catch (...) {
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    throw;
  }
  std::fflush(stdout);
  ::dup2(saved, 1);
  ::close(saved);
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("an edited step in the metadata fails the metadata CRC and resume falls back to the older checkpoint") {
    TempDir td("meta_crc");
    std::string d = td.path("run");
    TrainOptions o = tiny_options(d);
    train(o);
    std::string newest = d + "/checkpoints/step-6.safetensors";
    edit_metadata(newest, [](std::map<std::string, std::string>& m) {
      auto j = nlohmann::json::parse(m.at("protst"));
      j["progress"]["step"] = 5;
      j["progress"]["batch_in_epoch"] = 1;
      m["protst"] = j.dump();
    });
    CHECK_THROWS_WITH_AS(load_checkpoint_file(newest), doctest::Contains("metadata"), Error);
    CHECK_THROWS_WITH_AS(load_checkpoint_file(newest), doctest::Contains("CRC-32"), Error);
    // A checkpoint from before metadata checksums (no key) still loads.
    std::string older = d + "/checkpoints/step-3.safetensors", copy = td.path("old-format.safetensors");
    fs::copy_file(older, copy);
    edit_metadata(copy, [](std::map<std::string, std::string>& m) { m.erase("metadata_crc32"); });
    CHECK(load_checkpoint_file(copy).progress.step == 3);
    o.steps = 7;
    std::string log = captured_stdout(td.path("log.txt"), [&] { train(o); });
    CHECK(log.find("cannot resume from " + newest) != std::string::npos);
    CHECK(log.find("resuming from " + d + "/checkpoints/step-3.safetensors") != std::string::npos);
    CHECK(loss_lines(d + "/metrics.jsonl") == 7);
  }

  TEST_CASE("a newest checkpoint with malformed (but checksummed) metadata falls back instead of aborting") {
    TempDir td("meta_bad");
    std::string d = td.path("run");
    TrainOptions o = tiny_options(d);
    train(o);
    std::string newest = d + "/checkpoints/step-6.safetensors";
    LoadedCheckpoint ck = load_checkpoint_file(newest);
    ck.meta["progress"].erase("epoch");
    write_checkpoint_file(newest, ck);
    CHECK_THROWS_WITH_AS(load_checkpoint_file(newest), doctest::Contains("malformed checkpoint metadata"), Error);
    o.steps = 7;
    std::string log = captured_stdout(td.path("log.txt"), [&] { train(o); });
    CHECK(log.find("resuming from " + d + "/checkpoints/step-3.safetensors") != std::string::npos);
    CHECK(loss_lines(d + "/metrics.jsonl") == 7);
    // Every checkpoint unusable: refused, not a silent fresh start that would prune them.
    for (const std::string& p : list_checkpoints(d + "/checkpoints")) {
      std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-100, std::ios::end);
      f.put('\x5a');
    }
    o.steps = 9;
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("can be resumed"), Error);
  }

  TEST_CASE("--no-resume into a run folder refuses unless --overwrite - which clears the earlier results") {
    TempDir td("overwrite");
    std::string d = td.path("run");
    TrainOptions o = tiny_options(d);
    train(o);
    TrainOptions fresh = tiny_options(d);
    fresh.resume = false;
    fresh.steps = 2;
    fresh.save_every = 0;
    CHECK_THROWS_WITH_AS(train(fresh), doctest::Contains("--overwrite"), Error);
    CHECK(list_checkpoints(d + "/checkpoints").size() == 2);  // untouched
    CHECK(loss_lines(d + "/metrics.jsonl") == 6);
    fresh.overwrite = true;
    train(fresh);
    CHECK(list_checkpoints(d + "/checkpoints") == std::vector<std::string>{d + "/checkpoints/step-2.safetensors"});
    CHECK(loss_lines(d + "/metrics.jsonl") == 2);
    o.overwrite = true;  // without --no-resume
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("--overwrite"), Error);
  }

  TEST_CASE("a second writer on the same --out is refused while the first holds the lock") {
    TempDir td("lock");
    std::string d = td.path("run");
    fs::create_directories(d);
    {
      RunLock first(d);
      TrainOptions o = tiny_options(d);
      o.steps = 1;
      CHECK_THROWS_WITH_AS(train(o), doctest::Contains("in use by another protst train"), Error);
      CHECK_THROWS_WITH_AS(RunLock{d}, doctest::Contains(std::to_string(::getpid()).c_str()), Error);
      CHECK(list_checkpoints(d + "/checkpoints").empty());
    }
    TrainOptions o = tiny_options(d);
    o.steps = 1;
    train(o);  // released
    CHECK(fs::exists(d + "/checkpoints/step-1.safetensors"));
  }

  TEST_CASE("temporary files of dead writers are removed at start - those of live processes kept") {
    TempDir td("stale");
    std::string d = td.path("run");
    fs::create_directories(d + "/checkpoints");
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    ::waitpid(child, nullptr, 0);  // a pid that no longer exists
    std::string dead = std::to_string(child), live = std::to_string(::getppid());
    std::string a = d + "/checkpoints/step-9.safetensors.tmp." + dead, b = d + "/metrics.jsonl.tmp." + dead;
    std::string c = d + "/checkpoints/step-8.safetensors.tmp." + live;
    for (const std::string& p : {a, b, c}) std::ofstream(p) << "partial";
    TrainOptions o = tiny_options(d);
    o.steps = 1;
    train(o);
    CHECK(!fs::exists(a));
    CHECK(!fs::exists(b));
    CHECK(fs::exists(c));
  }

  TEST_CASE("resuming with changed options warns and lists them") {
    TempDir td("changed");
    std::string d = td.path("run");
    TrainOptions o = tiny_options(d);
    o.steps = 3;
    train(o);
    o.steps = 4;
    o.lr = 5e-4;
    o.seed = 4;
    std::string log = captured_stdout(td.path("log.txt"), [&] { train(o); });
    CHECK(log.find("options that differ") != std::string::npos);
    CHECK(log.find("--lr 0.0005 (checkpoint: 0.001)") != std::string::npos);
    CHECK(log.find("--seed 4 (checkpoint: 3)") != std::string::npos);
    CHECK(log.find("--batch-size") == std::string::npos);
    o.steps = 5;
    log = captured_stdout(td.path("log2.txt"), [&] { train(o); });  // now recorded as trained
    CHECK(log.find("options that differ") == std::string::npos);
  }
}
