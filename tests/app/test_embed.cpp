// `protst embed` straight from Hugging Face encoder folders: the vectors equal the model's own
// hidden states run one sequence at a time (so batching, padding, ordering, layer choice and the
// mean over residues are checked), ids come out in input order, and bad requests are refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "app/embed.h"
#include "data/tokenizer_bert.h"
#include "data/tokenizer_esm.h"
#include "io/safetensors.h"
#include "models/bert.h"
#include "models/esm.h"
#include "tests/common/temp_dir.h"

using namespace pe;
using pe::testing::TempDir;

namespace {

std::string fixture(const std::string& name) { return std::string(PE_SOURCE_DIR) + "/tests/fixtures/hf/" + name; }

const std::vector<std::pair<std::string, std::string>> kProteins = {
    {"P1", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"}, {"P2", "GSHMLEDPVDAFQ"}, {"P3", "WC"},
    {"P4", "MAAAAAAAAAAAAAAAAAAAAKLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"},
    {"P5", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"}};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> v;
  std::string line;
  while (std::getline(f, line)) v.push_back(line);
  return v;
}

double max_rel(const std::vector<float>& got, const std::vector<float>& ref) {
  double mag = 1e-12, err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    mag = std::max(mag, double(std::abs(ref[i])));
    err = std::max(err, double(std::abs(got[i] - ref[i])));
  }
  return err / mag;
}

}  // namespace

TEST_SUITE("app") {
  TEST_CASE("embed --protein-model: means and per-token vectors of chosen layers equal the model run alone") {
    TempDir td("embed_esm");
    std::string fasta;
    for (const auto& p : kProteins) fasta += ">sp|" + p.first + "|X\n" + p.second + "\n";
    std::string input = td.file("in.txt", fasta);  // FASTA recognised by content, not by name
    EmbedOptions o;
    o.protein_model = fixture("esm_tiny");
    o.input = input;
    o.output = td.path("emb.safetensors");
    o.device = "cpu";
    o.include = {"mean", "per_tok"};
    o.repr_layers = {0, -1, 1};
    o.batch_size = 2;
    o.progress = false;
    REQUIRE(run_embed(o) == int64_t(kProteins.size()));
    std::vector<std::string> ids = read_lines(td.path("emb.ids.txt"));
    REQUIRE(ids.size() == kProteins.size());
    for (size_t i = 0; i < ids.size(); ++i) CHECK(ids[i] == kProteins[i].first);

    EsmConfig cfg = EsmConfig::from_json_file(fixture("esm_tiny") + "/config.json");
    Generator gen(0);
    EsmModel model(cfg, gen, {DType::F32, Device::cpu()});
    model.load(fixture("esm_tiny"));
    SafetensorsCheckpoint out(o.output);
    std::vector<int64_t> offsets;
    for (double v : read_tensor(out, "per_tok.offsets").to_double_vector()) offsets.push_back(int64_t(v));
    REQUIRE(offsets.size() == kProteins.size() + 1);
    const int64_t d = cfg.hidden_size;
    for (int64_t layer : {int64_t(0), int64_t(1), cfg.num_layers}) {
      INFO("layer ", layer);
      std::vector<float> mean = out.read_f32("mean.layer" + std::to_string(layer));
      std::vector<float> tok = out.read_f32("per_tok.layer" + std::to_string(layer));
      REQUIRE(mean.size() == kProteins.size() * size_t(d));
      std::vector<float> ref_mean, ref_tok;
      for (size_t i = 0; i < kProteins.size(); ++i) {
        std::vector<int32_t> ids32 = esm::encode(kProteins[i].second);
        int64_t L = int64_t(ids32.size()), n = L - 2;
        CHECK(offsets[i + 1] - offsets[i] == n);
        std::vector<int64_t> v(ids32.begin(), ids32.end()), m(size_t(L), 1);
        NoGradGuard ng;
        EsmOutput r = model.forward(Tensor::from_vector(v, {1, L}), Tensor::from_vector(m, {1, L}), false, true);
        std::vector<float> h = (layer == cfg.num_layers ? r.last_hidden_state : r.hidden_states[size_t(layer)]).to_float_vector();
        for (int64_t c = 0; c < d; ++c) {
          double s = 0;
          for (int64_t j = 1; j <= n; ++j) s += h[size_t(j * d + c)];
          ref_mean.push_back(float(s / double(n)));
        }
        ref_tok.insert(ref_tok.end(), h.begin() + d, h.begin() + (n + 1) * d);
      }
      CHECK(max_rel(mean, ref_mean) <= 1e-5);
      REQUIRE(tok.size() == ref_tok.size());
      CHECK(max_rel(tok, ref_tok) <= 1e-5);
    }
  }

  TEST_CASE("embed --text-model: BERT means over the words, [CLS]/[SEP] excluded") {
    TempDir td("embed_bert");
    std::filesystem::copy(fixture("bert_tiny"), td.path("bert"));
    BertConfig cfg = BertConfig::from_json_file(fixture("bert_tiny") + "/config.json");
    // A vocabulary of the fixture's size: the specials, then made-up words.
    std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int64_t i = 5; i < cfg.vocab_size; ++i) vocab += "w" + std::to_string(i) + "\n";
    td.file("bert/vocab.txt", vocab);
    std::string input = td.file("texts.txt", "w5 w6 w7\nw9\nw10 w11 w12 w13 w14 w15\n");
    EmbedOptions o;
    o.text_model = td.path("bert");
    o.input = input;
    o.output = td.path("t.npy");
    o.device = "cpu";
    o.batch_size = 2;
    o.progress = false;
    REQUIRE(run_embed(o) == 3);
    CHECK(read_lines(td.path("t.ids.txt")) == std::vector<std::string>{"1", "2", "3"});
    // The .npy body: float32 [3, d] after a 128-byte header (this writer pads to 64 bytes).
    std::ifstream f(o.output, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t body = all.size() - size_t(3 * cfg.hidden_size) * sizeof(float);
    std::vector<float> got(size_t(3 * cfg.hidden_size));
    std::memcpy(got.data(), all.data() + body, got.size() * sizeof(float));

    BertTokenizer tok = BertTokenizer::from_file(td.path("bert/vocab.txt"));
    Generator gen(0);
    BertModel model(cfg, gen, {DType::F32, Device::cpu()});
    model.load(td.path("bert"));
    std::vector<float> ref;
    for (const char* text : {"w5 w6 w7", "w9", "w10 w11 w12 w13 w14 w15"}) {
      std::vector<int32_t> ids32 = tok.encode(text);
      int64_t L = int64_t(ids32.size()), n = L - 2;
      std::vector<int64_t> v(ids32.begin(), ids32.end()), m(size_t(L), 1), tt(size_t(L), 0);
      NoGradGuard ng;
      BertOutput r = model.forward(Tensor::from_vector(v, {1, L}), Tensor::from_vector(tt, {1, L}), Tensor::from_vector(m, {1, L}));
      std::vector<float> h = r.last_hidden_state.to_float_vector();
      for (int64_t c = 0; c < cfg.hidden_size; ++c) {
        double s = 0;
        for (int64_t j = 1; j <= n; ++j) s += h[size_t(j * cfg.hidden_size + c)];
        ref.push_back(float(s / double(n)));
      }
    }
    CHECK(max_rel(got, ref) <= 1e-5);
  }

  TEST_CASE("embed refuses what it cannot do, naming the option") {
    TempDir td("embed_bad");
    std::string fasta = td.file("in.fasta", ">a\nMKTAYIAK\n");
    std::string text = td.file("words.fasta", "not a fasta file\n");
    EmbedOptions o;
    o.protein_model = fixture("esm_tiny");
    o.input = fasta;
    o.device = "cpu";
    o.progress = false;
    auto message = [&](const EmbedOptions& x) {
      try {
        run_embed(x);
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    o.output = td.path("x.npy");
    o.repr_layers = {0, -1};
    CHECK(message(o).find("use a .safetensors output") != std::string::npos);
    o.repr_layers = {7};
    CHECK(message(o).find("--repr-layers 7 is outside") != std::string::npos);
    o.repr_layers = {-1};
    o.include = {"cls"};
    CHECK(message(o).find("--include takes mean and/or per_tok") != std::string::npos);
    o.include = {"mean"};
    o.input = text;  // a protein model given text: refused by content, whatever the name says
    CHECK(message(o).find("needs FASTA") != std::string::npos);
    o.input = fasta;
    o.checkpoint = td.path("none.safetensors");
    CHECK(message(o).find("give exactly one of") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(td.path("x.npy")));
  }
}
