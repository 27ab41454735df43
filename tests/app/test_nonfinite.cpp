// Non-finite training: a run whose steps keep failing stops with an error after
// --max-skipped-steps consecutive skips, and no checkpoint or final/ export is written from
// non-finite weights.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "app/model_io.h"
#include "app/train.h"
#include "tests/app/tiny_train.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;
namespace fs = std::filesystem;

TEST_SUITE("app") {
  TEST_CASE("non-finite steps: N consecutive end the run and nothing is saved or exported from NaN weights") {
    TempDir td("nonfinite");
    std::string d = td.path("run");
    TrainOptions o = tiny_options(d);
    o.steps = 3;
    train(o);
    // The step-3 checkpoint with NaN protein embeddings: every later step is non-finite.
    std::string ck3 = d + "/checkpoints/step-3.safetensors";
    LoadedCheckpoint ck = load_checkpoint_file(ck3);
    std::string name = "protein_model.esm.embeddings.word_embeddings.weight";
    REQUIRE(ck.model.count(name) == 1);
    Tensor t = ck.model.at(name);
    ck.model[name] = Tensor::full(t.shape(), std::nan(""), t.dtype());
    write_checkpoint_file(ck3, ck);
    fs::remove_all(d + "/final");

    o.steps = 20;
    o.max_skipped_steps = 3;
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("3 consecutive steps had a non-finite loss or gradient"), Error);
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("--max-skipped-steps 3"), Error);
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains(ck3.c_str()), Error);
    CHECK(!fs::exists(d + "/final"));
    CHECK(list_checkpoints(d + "/checkpoints") == std::vector<std::string>{ck3});  // no step-6 from NaN weights

    // A generous limit reaches the last step: still no checkpoint and no final/ from NaN weights.
    o.steps = 5;
    o.max_skipped_steps = 100;
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("NaN or infinite"), Error);
    CHECK(!fs::exists(d + "/final"));
    CHECK(list_checkpoints(d + "/checkpoints") == std::vector<std::string>{ck3});
  }
}
