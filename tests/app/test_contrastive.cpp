// --contrastive-positives: same-text (default) makes pairs with identical texts positives of each
// other; diagonal (ProtST's targets) keeps only each row's own pair, identical texts included as
// negatives, and equals InfoNCE without groups.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "app/dataset.h"
#include "app/model_io.h"
#include "app/train.h"
#include "losses/losses.h"
#include "tests/app/tiny_train.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;

TEST_SUITE("app") {
  TEST_CASE("contrastive positives: same-text groups identical texts - diagonal gives each row its own") {
    std::vector<ProteinRecord> recs(3);
    recs[0].id = "a", recs[0].seq = "MKTAYIAKQR", recs[0].text = "a protein kinase";
    recs[1].id = "b", recs[1].seq = "GSHMLEDPVD", recs[1].text = "a protein kinase";
    recs[2].id = "c", recs[2].seq = "MAAAAAAAAK", recs[2].text = "a dna binding protein";
    std::vector<std::string> lines;
    for (const auto& r : recs) lines.push_back(r.text);
    BertTokenizer tok(train_wordpiece(lines, 60), "test vocab");
    PairDataset ds = tokenize_pairs(recs, tok, 16);
    REQUIRE(ds.items.size() == 3);
    CollateOptions co;
    co.mask = false;
    Generator g1(1), g2(1);
    ProtSTBatch same = collate(ds, {0, 1, 2}, co, tok, g1, Device::cpu());
    co.same_text_positives = false;
    ProtSTBatch diag = collate(ds, {0, 1, 2}, co, tok, g2, Device::cpu());
    CHECK(same.pair_group.to_double_vector() == std::vector<double>{0, 0, 1});
    CHECK(diag.pair_group.to_double_vector() == std::vector<double>{0, 1, 2});

    // On fixed embeddings: diagonal = InfoNCE without groups; same-text differs when texts repeat.
    std::vector<float> pv = {1, 0, 0, 0.6f, 0.8f, 0, 0, 0.6f, 0.8f}, tv = {0.8f, 0.6f, 0, 0, 1, 0, 0, 0, 1};
    Tensor p = Tensor::from_vector(pv, {3, 3}), t = Tensor::from_vector(tv, {3, 3});
    Tensor scale = Tensor::full({}, 2.0);
    double l_same = info_nce(p, t, scale, 4.6, same.pair_group).loss.item();
    double l_diag = info_nce(p, t, scale, 4.6, diag.pair_group).loss.item();
    double l_none = info_nce(p, t, scale, 4.6).loss.item();
    CHECK(l_diag == doctest::Approx(l_none).epsilon(1e-12));
    CHECK(std::abs(l_same - l_diag) > 1e-3);
  }

  TEST_CASE("train with --contrastive-positives diagonal runs and records the choice") {
    TempDir td("diag");
    TrainOptions o = tiny_options(td.path("run"));
    o.steps = 2;
    o.contrastive_positives = "diagonal";
    train(o);
    LoadedCheckpoint ck = load_checkpoint_file(td.path("run") + "/checkpoints/step-2.safetensors");
    CHECK(ck.meta["train_options"]["contrastive-positives"] == "diagonal");
    o.contrastive_positives = "both";
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("--contrastive-positives 'both'"), Error);
  }
}
