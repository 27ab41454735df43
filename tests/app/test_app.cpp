#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/embed.h"
#include "app/model_io.h"
#include "app/train.h"
#include "tests/app/tiny_train.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

std::string sample() { return std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat"; }



std::vector<double> losses(const std::string& metrics) {
  std::ifstream f(metrics);
  std::vector<double> v;
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) v.push_back(j["loss"].get<double>());
  }
  return v;
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("retrieval metrics on a hand-computed case") {
    // 3 proteins, 2 distinct texts; proteins 0 and 2 share text 0.
    std::vector<std::vector<float>> p = {{1, 0}, {0.6f, 0.8f}, {0, 1}};
    std::vector<std::vector<float>> t = {{1, 0}, {0, 1}};
    std::vector<int64_t> g = {0, 1, 0};
    RetrievalResult r = retrieval_metrics(p, t, g);
    // p->t ranks: protein 0 -> text 0 first (rank 1); protein 1 -> text 1 (0.8 > 0.6, rank 1);
    // protein 2 -> text 0 scores 0 < 1 (rank 2).
    CHECK(r.p2t.recall1 == doctest::Approx(2.0 / 3));
    CHECK(r.p2t.mrr == doctest::Approx((1 + 1 + 0.5) / 3));
    CHECK(r.p2t.recall10 == doctest::Approx(1.0));
    CHECK(r.p2t.chance_recall1 == doctest::Approx(0.5));
    CHECK(r.p2t.chance_mrr == doctest::Approx(0.75));
    // t->p: text 0 best correct protein 0 (score 1, rank 1); text 1: protein 2 scores 1 > protein 1's 0.8 (rank 2).
    CHECK(r.t2p.queries == 2);
    CHECK(r.t2p.recall1 == doctest::Approx(0.5));
    CHECK(r.t2p.mrr == doctest::Approx(0.75));
    // chance with 2 of 3 correct: first correct at rank 1 with p 2/3; with 1 of 3: 1/3.
    CHECK(r.t2p.chance_recall1 == doctest::Approx((2.0 / 3 + 1.0 / 3) / 2));
  }

  TEST_CASE("learning-rate schedule: warm-up then cosine to the floor") {
    CHECK(lr_at(0, 100, 10, 1.0, "cosine", 0.1) == doctest::Approx(0.1));
    CHECK(lr_at(9, 100, 10, 1.0, "cosine", 0.1) == doctest::Approx(1.0));
    CHECK(lr_at(10, 100, 10, 1.0, "cosine", 0.1) == doctest::Approx(1.0));
    CHECK(lr_at(100, 100, 10, 1.0, "cosine", 0.1) == doctest::Approx(0.1));
    CHECK(lr_at(55, 100, 10, 1.0, "constant", 0.1) == doctest::Approx(1.0));
    CHECK_THROWS_AS(lr_at(55, 100, 10, 1.0, "linear", 0.1), Error);
  }

  TEST_CASE("collate masks ProtST-style and keeps the original tokens as targets") {
    BertTokenizer tok({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"}, "test vocab");
    std::vector<ProteinRecord> recs = {{"p1", "MKTAYIAKQRQISFVKSHFSRQ", "a b a b a b a b", 1}, {"p2", "GS", "a", 2}};
    PairDataset ds = tokenize_pairs(recs, tok, 0);
    Generator gen(1);
    CollateOptions co;
    ProtSTBatch b = collate(ds, {0, 1}, co, tok, gen, Device::cpu());
    CHECK(b.protein_mlm_index.numel() == 3 + 1);  // floor(0.15*22)=3, max(1, floor(0.3))=1
    std::vector<int64_t> ids = b.protein_ids.to_int_vector(), idx = b.protein_mlm_index.to_int_vector(),
                         tgt = b.protein_mlm_target.to_int_vector();
    int64_t Lp = b.protein_ids.size(1);
    CHECK(Lp == 24);
    for (size_t i = 0; i < idx.size(); ++i) {
      CHECK(ids[size_t(idx[i])] == 32);            // <mask>
      CHECK(idx[i] % Lp != 0);                      // never <cls>
      CHECK(tgt[i] >= 4);                           // a residue
    }
    CHECK(ids[size_t(Lp + 3)] == 2);  // <eos> of "GS"
    CHECK(b.residue_mask.to_int_vector()[size_t(Lp + 3)] == 0);
  }

  TEST_CASE("resume: N steps straight equal k steps - stop - resume - N-k steps (f32 and --precision f64)") {
    for (const std::string precision : {"f32", "f64"}) {
      CAPTURE(precision);
      TempDir ta("straight"), tb("resumed");
      std::string a = ta.dir.string(), b = tb.dir.string();
      TrainOptions oa = tiny_options(a);
      oa.precision = precision;
      train(oa);
      TrainOptions ob = tiny_options(b);
      ob.precision = precision;
      ob.steps = 3;  // stop after 3 (a checkpoint is written at the end)
      train(ob);
      ob.steps = 6;  // resume to 6
      train(ob);
      std::vector<double> la = losses(a + "/metrics.jsonl"), lb = losses(b + "/metrics.jsonl");
      REQUIRE(la.size() == 6);
      REQUIRE(lb.size() == 6);
      for (size_t i = 0; i < 6; ++i) {
        CAPTURE(i);
        CHECK(la[i] == lb[i]);  // bit-identical on the CPU
      }
      LoadedCheckpoint ca = load_checkpoint_file(a + "/checkpoints/step-6.safetensors");
      LoadedCheckpoint cb = load_checkpoint_file(b + "/checkpoints/step-6.safetensors");
      for (const auto& [name, t] : ca.model) {
        CHECK(t.dtype() == (precision == "f64" ? DType::F64 : DType::F32));
        CHECK(t.to_double_vector() == cb.model.at(name).to_double_vector());
      }
    }
  }

  TEST_CASE("the optimiser steps every tensor once: --protein-lr-ratio 0 leaves the protein encoder unchanged") {
    // The groups once selected the heads by Tensor::name(), which for the encoders' tensors lacks the
    // "protein_model."/"text_model." prefix: both encoders were in the heads group too, stepped a
    // second time at the full learning rate.
    TempDir td("lr_groups");
    TrainOptions o = tiny_options(td.path("run"));
    o.protein_lr_ratio = 0;
    o.steps = 2;
    o.save_every = 1;
    train(o);
    LoadedCheckpoint a = load_checkpoint_file(td.path("run") + "/checkpoints/step-1.safetensors");
    LoadedCheckpoint b = load_checkpoint_file(td.path("run") + "/checkpoints/step-2.safetensors");
    int protein = 0, moved = 0;
    for (const auto& [name, t] : a.model) {
      if (name.find("running_") != std::string::npos) continue;
      bool same = t.to_double_vector() == b.model.at(name).to_double_vector();
      if (name.rfind("protein_model.", 0) == 0) {
        CHECK_MESSAGE(same, name, " moved with --protein-lr-ratio 0");
        ++protein;
      } else {
        moved += !same;
      }
    }
    CHECK(protein > 10);
    CHECK(moved > 10);  // the text encoder and the heads learn
    size_t moments = 0;
    for (const auto& kv : b.optim) moments += kv.first.rfind("m.", 0) == 0;
    CHECK(moments == model_from_checkpoint(b, Device::cpu())->params().parameters().size());  // each once
  }

  TEST_CASE("a damaged checkpoint is detected and resume falls back to the previous one") {
    TempDir td("corrupt");
    std::string d = td.dir.string();
    TrainOptions o = tiny_options(d);
    train(o);
    std::string newest = d + "/checkpoints/step-6.safetensors";
    {
      std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-100, std::ios::end);
      char c = 0x5a;
      f.write(&c, 1);
    }
    CHECK_THROWS_WITH_AS(load_checkpoint_file(newest), doctest::Contains("CRC-32"), Error);
    CHECK_THROWS_WITH_AS(load_checkpoint_file(newest), doctest::Contains(newest.c_str()), Error);
    o.steps = 7;
    train(o);  // resumes from step 3, not from the damaged step 6
    std::vector<double> l = losses(d + "/metrics.jsonl");
    CHECK(l.size() == 7);
  }

  TEST_CASE("embed: results do not depend on the batch or on input order - and are in input order") {
    TempDir td("embed");
    std::string d = td.dir.string();
    TrainOptions o = tiny_options(d);
    o.steps = 2;
    train(o);
    std::string fasta = d + "/in.fasta";
    {
      std::ofstream f(fasta);
      f << ">a\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n>b\nGSHMLEDPVDAFQ\n>c\nMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAK\n>d\nWC\n";
      std::ofstream g(d + "/one.fasta");
      g << ">b\nGSHMLEDPVDAFQ\n";
    }
    EmbedOptions e;
    e.checkpoint = d + "/checkpoints/step-2.safetensors";
    e.device = "cpu";
    e.input = fasta;
    e.output = d + "/b1.safetensors";
    e.batch_size = 1;
    CHECK(run_embed(e) == 4);
    e.output = d + "/b3.safetensors";
    e.batch_size = 3;
    run_embed(e);
    e.input = d + "/one.fasta";
    e.output = d + "/alone.safetensors";
    run_embed(e);
    SafetensorsCheckpoint b1(d + "/b1.safetensors"), b3(d + "/b3.safetensors"), alone(d + "/alone.safetensors");
    std::vector<float> x = b1.read_f32("embeddings"), y = b3.read_f32("embeddings"), z = alone.read_f32("embeddings");
    REQUIRE(x.size() == y.size());
    int64_t E = int64_t(z.size());
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::abs(x[i] - y[i])));
    for (int64_t i = 0; i < E; ++i) worst = std::max(worst, double(std::abs(x[size_t(E + i)] - z[size_t(i)])));
    MESSAGE("largest difference between batchings: ", worst);
    CHECK(worst <= 1e-6);
    e.output = d + "/out.npy";
    e.input = fasta;
    run_embed(e);
    std::ifstream npy(d + "/out.npy", std::ios::binary);
    std::string magic(6, ' ');
    npy.read(&magic[0], 6);
    CHECK(magic == "\x93NUMPY");
  }

  TEST_CASE("bad input names the file") {
    TempDir td("bad");
    std::string d = td.dir.string();
    TrainOptions o = tiny_options(d);
    o.train_path = d + "/missing.jsonl";
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("missing.jsonl"), Error);
    o.train_path = d + "/pairs.csv";
    std::ofstream(o.train_path) << "x\n";
    CHECK_THROWS_WITH_AS(train(o), doctest::Contains("unknown pair file type"), Error);
  }

  TEST_CASE("eval with zero-shot prompts and convert run end to end on a trained checkpoint") {
    TempDir td("zeroshot");
    std::string d = td.dir.string();
    TrainOptions o = tiny_options(d);
    o.steps = 3;
    train(o);
    std::string ckpt = d + "/checkpoints/step-3.safetensors";
    // Labels are keywords of the sample; every protein's "text" is its label.
    std::string prompts = td.file("prompts.tsv", "# label<TAB>prompt\nkinase\tA protein kinase.\nbinding\tA DNA-binding protein.\n");
    std::string data = td.file("labelled.jsonl",
                               "{\"id\":\"a\",\"seq\":\"MKTAYIAKQRQISFVKSHFSRQ\",\"text\":\"kinase\"}\n"
                               "{\"id\":\"b\",\"seq\":\"GSHMLEDPVDAFQ\",\"text\":\"binding\"}\n"
                               "{\"id\":\"c\",\"seq\":\"MAAAAAAAAK\",\"text\":\"kinase\"}\n");
    EvalCommandOptions e;
    e.checkpoint = ckpt;
    e.device = "cpu";
    e.test_path = sample();
    e.zero_shot_prompts = prompts;
    e.zero_shot_data = data;
    e.json_out = d + "/eval.json";
    e.max_protein_len = 64;  // keeps the test fast (also under the sanitizers)
    EvalReport rep = run_eval(e);
    CHECK(rep.proteins == 100);
    auto j = nlohmann::json::parse(std::ifstream(e.json_out));
    CHECK(j["zero_shot"]["examples"] == 3);
    CHECK(j["zero_shot"]["labels"] == 2);
    CHECK(j["zero_shot"]["chance"].get<double>() == doctest::Approx(0.5));
    double acc = j["zero_shot"]["accuracy"].get<double>();
    CHECK((acc == 0.0 || acc == doctest::Approx(1.0 / 3) || acc == doctest::Approx(2.0 / 3) || acc == 1.0));
    CHECK(j["p2t"]["queries"] == 100);
    // A prompt line without a tab names the file and line.
    e.zero_shot_prompts = td.file("bad.tsv", "kinase A protein kinase\n");
    CHECK_THROWS_WITH_AS(run_eval(e), doctest::Contains("bad.tsv:1"), Error);

    ConvertOptions c;
    c.checkpoint = ckpt;
    c.device = "cpu";
    c.train_path = sample();
    c.test_path = sample();
    c.output = d + "/converted.safetensors";
    c.steps = 60;
    c.batch_size = 32;
    c.max_protein_len = 64;
    run_convert(c);
    LoadedCheckpoint conv = load_checkpoint_file(c.output);
    LoadedCheckpoint orig = load_checkpoint_file(ckpt);
    // Only the conversion MLPs changed.
    for (const auto& [name, t] : orig.model) {
      bool conversion = name.rfind("conversion.", 0) == 0;
      CAPTURE(name);
      CHECK((t.to_double_vector() == conv.model.at(name).to_double_vector()) != conversion);
    }
  }

  TEST_CASE("train from Hugging Face encoder folders: the text encoder stays frozen and the protein encoder learns") {
    TempDir td("hf_start");
    std::string fx = std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf";
    std::filesystem::copy(fx + "/esm_tiny", td.path("esm"));
    std::filesystem::copy(fx + "/bert_tiny", td.path("bert"));
    // bert_tiny has a 120-token vocabulary with [PAD]=0, [CLS]=2, [SEP]=3; give it a vocab.txt.
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    const char* words[] = {"protein", "kinase", "binding", "dna", "membrane", "transport", "activity", "process",
                           "component", "function", "molecular", "biological", "cellular", "of", "the", "and"};
    int n = 5;
    for (const char* w : words) vocab += std::string(w) + "\n", ++n;
    for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(1, c) + "\n", ++n;
    for (char c = 'a'; n < 120; ++c) vocab += std::string("##") + c + "\n", ++n;
    td.file("bert/vocab.txt", vocab);
    td.file("bert/tokenizer_config.json", R"({"do_lower_case": false, "model_max_length": 512})");
    TrainOptions o = tiny_options(td.path("run"));
    o.protein_model = td.path("esm");
    o.text_model = td.path("bert");
    o.steps = 2;
    o.max_text_len = 40;
    train(o);
    LoadedCheckpoint ck = load_checkpoint_file(td.path("run") + "/checkpoints/step-2.safetensors");
    CHECK(ck.meta["text_frozen"] == true);
    CHECK(ck.config.protein.hidden_size == 48);
    CHECK(ck.config.text.vocab_size == 120);
    SafetensorsCheckpoint bert(td.path("bert") + "/model.safetensors"), esm(td.path("esm") + "/model.safetensors");
    std::string tname = "encoder.layer.0.attention.self.query.weight";
    std::vector<float> t0 = bert.read_f32(tname), t1 = ck.model.at("text_model." + tname).to_float_vector();
    CHECK(t0 == t1);  // frozen: bit for bit
    std::string pname = "esm.encoder.layer.0.attention.self.query.weight";
    std::vector<float> p0 = esm.read_f32(pname), p1 = ck.model.at("protein_model." + pname).to_float_vector();
    CHECK(p0 != p1);  // trained
    // eval/embed/convert rebuild the tokenizer from the checkpoint: cased stays cased.
    CHECK(ck.meta["text_tokenizer"]["do_lower_case"] == false);
    CHECK_FALSE(tokenizer_from_checkpoint(ck).options().lower_case);
    CHECK(tokenizer_from_checkpoint(ck).encode("Kinase") != tokenizer_from_checkpoint(ck).encode("kinase"));

    // The exported folders carry what published checkpoints carry: the text model its tokenizer files
    // (with the switches of the folder it started from), the protein model each layer's rotary inv_freq.
    const std::string final_dir = td.path("run") + "/final";
    std::ifstream tc(final_dir + "/text_model/tokenizer_config.json"), sm(final_dir + "/text_model/special_tokens_map.json");
    REQUIRE(tc.good());
    REQUIRE(sm.good());
    const auto tcj = nlohmann::json::parse(tc), smj = nlohmann::json::parse(sm);
    CHECK(tcj["tokenizer_class"] == "BertTokenizer");
    CHECK(tcj["do_lower_case"] == false);
    CHECK(tcj["strip_accents"].is_null());
    CHECK(tcj["tokenize_chinese_chars"] == true);
    CHECK(tcj["model_max_length"] == ck.config.text.max_position_embeddings);
    CHECK(smj == nlohmann::json({{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
                                 {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}}));
    CHECK_FALSE(BertTokenizer::from_hf_folder(final_dir + "/text_model").options().lower_case);
    SafetensorsCheckpoint exported(final_dir + "/protein_model/model.safetensors");
    const int64_t hd = ck.config.protein.head_dim();
    for (int64_t i = 0; i < ck.config.protein.num_layers; ++i) {
      const std::string name = "esm.encoder.layer." + std::to_string(i) + ".attention.self.rotary_embeddings.inv_freq";
      CAPTURE(name);
      REQUIRE(exported.contains(name));
      const std::vector<float> f = exported.read_f32(name);
      REQUIRE(int64_t(f.size()) == hd / 2);
      for (int64_t j = 0; j < hd / 2; ++j)
        CHECK(f[j] == doctest::Approx(1.0 / std::pow(10000.0, double(2 * j) / double(hd))).epsilon(1e-6));
    }
  }
}

