// Tokenizer tests. "parity": ids compared line by line with Hugging Face's tokenizers (fixtures made
// by scripts/make_tokenizer_fixtures.py). "data": the ESM alphabet, vocab loading, the WordPiece trainer.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer_bert.h"
#include "data/tokenizer_esm.h"

namespace {

const std::string kFixtures = std::string(PE_SOURCE_DIR) + "/tests/fixtures/tokenizer/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open fixture ", path);
  return nlohmann::json::parse(in);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open fixture ", path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const pe::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

std::string tokens_of(const pe::BertTokenizer& tok, const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) out += (out.empty() ? "" : " ") + tok.id_to_token(id);
  return out;
}

std::string temp_path(const std::string& name) {
  return "/tmp/pe_tok_" + std::to_string(::getpid()) + "_" + name;
}

const pe::BertTokenizer& real_bert() {
  static const pe::BertTokenizer tok = pe::BertTokenizer::from_file(kFixtures + "bert_uncased_vocab.txt");
  return tok;
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("bert: ids equal HF's slow BertTokenizer on every sample line") {
    const auto fx = load_json(kFixtures + "bert_expected.json");
    const pe::BertTokenizer& tok = real_bert();
    size_t mismatches = 0, checked = 0;
    for (size_t i = 0; i < fx["cases"].size(); ++i) {
      const auto& c = fx["cases"][i];
      const std::string text = c["text"].get<std::string>();
      // Where HF's slow and fast tokenizers disagree on a capital sigma, we follow the fast one.
      const bool sigma = contains(text, "\u03a3") && c.contains("fast_ids");
      const auto expected = c[sigma ? "fast_ids" : "ids"].get<std::vector<int32_t>>();
      const auto got = tok.encode(text, 0);
      ++checked;
      if (got != expected && mismatches++ == 0) {
        FAIL_CHECK("first mismatch at case ", i, ": ", nlohmann::json(text).dump(), "\n  HF:   ",
                   tokens_of(tok, expected), "\n  ours: ", tokens_of(tok, got));
      }
    }
    CHECK(checked > 450);
    CHECK_MESSAGE(mismatches == 0, mismatches, " of ", checked, " lines differ");
  }

  TEST_CASE("bert: truncation equals HF's (truncation=True - max_length=n)") {
    const auto fx = load_json(kFixtures + "bert_expected.json");
    const pe::BertTokenizer& tok = real_bert();
    for (const auto& c : fx["truncated"]) {
      const std::string text = c["text"].get<std::string>();
      const size_t n = c["max_len"].get<size_t>();
      CAPTURE(text);
      CAPTURE(n);
      const bool sigma = contains(text, "\u03a3") && c.contains("fast_ids");  // as above
      CHECK(tok.encode(text, n) == c[sigma ? "fast_ids" : "ids"].get<std::vector<int32_t>>());
    }
  }

  TEST_CASE("esm: ids follow SPEC on odd sequences (HF EsmTokenizer recorded alongside)") {
    const auto fx = load_json(kFixtures + "esm_expected.json");
    // The vocab file given to HF is the alphabet in id order.
    const auto vocab = read_lines(kFixtures + "esm2_vocab.txt");
    REQUIRE(vocab.size() == 33);
    for (int32_t i = 0; i < 33; ++i) CHECK(vocab[i] == pe::esm::alphabet()[i]);
    size_t hf_differs = 0;
    for (const auto& c : fx["cases"]) {
      const std::string seq = c["seq"].get<std::string>();
      CAPTURE(seq);
      CHECK(pe::esm::encode(seq) == c["ids"].get<std::vector<int32_t>>());
      hf_differs += c["ids"] != c["hf_ids"];
    }
    // HF treats lower-case letters as unknown; we upper-case them (see the fixture README).
    CHECK(hf_differs == 2);
  }

  TEST_CASE("bert: odd strings (sigma, accents, CJK, emoji, units) equal HF's BertTokenizer, lower-cased") {
    const auto fx = load_json(kFixtures + "bert_hf_cases.json");
    const pe::BertTokenizer& tok = real_bert();
    size_t mismatches = 0;
    for (size_t i = 0; i < fx["bert"].size(); ++i) {
      const auto& c = fx["bert"][i];
      const std::string text = c["text"].get<std::string>();
      const auto expected = c["ids_lower"].get<std::vector<int32_t>>();
      const auto got = tok.encode(text, 0);
      if (got != expected && mismatches++ < 3)
        FAIL_CHECK("case ", i, ": ", nlohmann::json(text).dump(), "\n  HF:   ", tokens_of(tok, expected),
                   "\n  ours: ", tokens_of(tok, got));
    }
    CHECK(fx["bert"].size() >= 300);
    CHECK_MESSAGE(mismatches == 0, mismatches, " of ", fx["bert"].size(), " differ");
  }

  TEST_CASE("bert: odd strings equal HF's BertTokenizer with do_lower_case=False") {
    const auto fx = load_json(kFixtures + "bert_hf_cases.json");
    pe::BertOptions cased;
    cased.lower_case = false;
    const auto tok = pe::BertTokenizer::from_file(kFixtures + "bert_uncased_vocab.txt", cased);
    size_t mismatches = 0;
    for (size_t i = 0; i < fx["bert"].size(); ++i) {
      const auto& c = fx["bert"][i];
      const std::string text = c["text"].get<std::string>();
      const auto expected = c["ids_cased"].get<std::vector<int32_t>>();
      const auto got = tok.encode(text, 0);
      if (got != expected && mismatches++ < 3)
        FAIL_CHECK("case ", i, ": ", nlohmann::json(text).dump(), "\n  HF:   ", tokens_of(tok, expected),
                   "\n  ours: ", tokens_of(tok, got));
    }
    CHECK_MESSAGE(mismatches == 0, mismatches, " of ", fx["bert"].size(), " differ");
  }

  TEST_CASE("esm: a run of unknown characters is one <unk>, as HF's EsmTokenizer") {
    const auto fx = load_json(kFixtures + "bert_hf_cases.json");
    size_t compared = 0;
    for (const auto& c : fx["esm"]) {
      const std::string seq = c["seq"].get<std::string>();
      // Our one deliberate difference: lower-case ASCII letters are residues (HF: unknown).
      if (std::any_of(seq.begin(), seq.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; })) continue;
      CAPTURE(seq);
      CHECK(pe::esm::encode(seq) == c["hf_ids"].get<std::vector<int32_t>>());
      ++compared;
    }
    CHECK(compared >= 15);
  }
}

TEST_SUITE("data") {
  TEST_CASE("esm: alphabet - special ids - encode and decode") {
    using namespace pe::esm;
    const std::string order = "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>";
    std::string joined;
    for (auto t : alphabet()) joined += (joined.empty() ? "" : " ") + std::string(t);
    CHECK(joined == order);
    CHECK(kCls == 0);
    CHECK(kPad == 1);
    CHECK(kEos == 2);
    CHECK(kUnk == 3);
    CHECK(kMask == 32);
    CHECK(token_id("<mask>") == kMask);
    CHECK(token_id("L") == 4);
    CHECK(token_id("J") == -1);

    CHECK(encode("MKV") == std::vector<int32_t>{0, 20, 15, 7, 2});
    CHECK(encode("mkv") == encode("MKV"));
    CHECK(encode(" M K\tV\n") == encode("MKV"));
    CHECK(encode("MJ1*") == std::vector<int32_t>{0, 20, 3, 2});        // one <unk> per unknown run
    CHECK(encode("J J<unk>J") == std::vector<int32_t>{0, 3, 3, 3, 3, 2});  // broken by space, spelled <unk>
    CHECK(encode("") == std::vector<int32_t>{0, 2});
    CHECK(encode("M<mask>V<") == std::vector<int32_t>{0, 20, 32, 7, 3, 2});
    CHECK(encode("Mé") == std::vector<int32_t>{0, 20, 3, 2});
    CHECK(encode("M\xff\xfeK") == std::vector<int32_t>{0, 20, 3, 15, 2});  // invalid bytes: one run

    // Truncation keeps <cls> ... <eos> within max_len.
    CHECK(encode("MKVLA", 4) == std::vector<int32_t>{0, 20, 15, 2});
    CHECK(encode("MKVLA", 2) == std::vector<int32_t>{0, 2});
    CHECK(encode("M K V", 4) == std::vector<int32_t>{0, 20, 15, 2});
    CHECK(encode("MKVLA", 7) == encode("MKVLA"));
    CHECK(contains(error_of([] { encode("M", 1); }), "max_len"));

    CHECK(decode(encode("mkv")) == "<cls>MKV<eos>");
    CHECK(decode(encode("M<mask>K"), true) == "MK");
    CHECK(contains(error_of([] { decode({0, 33}); }), "33"));
  }

  TEST_CASE("bert: decode turns vocabulary pieces that are not valid UTF-8 into U+FFFD") {
    // A user's vocab.txt may hold bytes that are not UTF-8; generated text must still be valid UTF-8
    // (JSON writers of describe outputs threw on it).
    pe::BertTokenizer tok({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ok", std::string("##\xff"), "caf\xc3\xa9"},
                          "inline vocab");
    CHECK(tok.decode({2, 5, 6, 7, 3}, true) == "ok\xef\xbf\xbd caf\xc3\xa9");
  }

  TEST_CASE("bert: vocab loading and special ids") {
    const pe::BertTokenizer& tok = real_bert();
    CHECK(tok.vocab_size() == 30522);
    CHECK(tok.pad_id() == 0);
    CHECK(tok.unk_id() == 100);
    CHECK(tok.cls_id() == 101);
    CHECK(tok.sep_id() == 102);
    CHECK(tok.mask_id() == 103);
    CHECK(tok.token_to_id("the") == 1996);
    CHECK(tok.token_to_id("no-such-token") == -1);
    CHECK(tok.tokenize("Unaffable proteins") == std::vector<std::string>{"una", "##ffa", "##ble", "proteins"});
    CHECK(tok.encode("hello world") == std::vector<int32_t>{101, 7592, 2088, 102});
    CHECK(tok.encode("hello world", 3) == std::vector<int32_t>{101, 7592, 102});
    CHECK(tok.decode(tok.encode("The Ångström unaffable")) == "the angstrom unaffable");
    CHECK(contains(error_of([&] { tok.encode("x", 1); }), "max_len"));
    CHECK(contains(error_of([&] { tok.id_to_token(30522); }), "bert_uncased_vocab.txt"));

    // A vocab without [MASK] is refused, naming the file.
    const std::string path = temp_path("vocab_nomask.txt");
    {
      std::ofstream out(path);
      out << "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
    }
    const std::string msg = error_of([&] { pe::BertTokenizer::from_file(path); });
    CHECK(contains(msg, path));
    CHECK(contains(msg, "[MASK]"));
    ::unlink(path.c_str());
    CHECK(contains(error_of([] { pe::BertTokenizer::from_file("/nonexistent/vocab.txt"); }), "/nonexistent/vocab.txt"));

    // CRLF line ends and a missing final newline are read like Python's universal newlines.
    const std::string crlf = temp_path("vocab_crlf.txt");
    {
      std::ofstream out(crlf, std::ios::binary);
      out << "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n##s";
    }
    const auto small = pe::BertTokenizer::from_file(crlf);
    CHECK(small.vocab_size() == 7);
    CHECK(small.encode("hellos") == std::vector<int32_t>{2, 5, 6, 3});
    CHECK(small.encode("hello world") == std::vector<int32_t>{2, 5, 1, 3});
    ::unlink(crlf.c_str());
  }

  TEST_CASE("bert: a Hugging Face folder's tokenizer_config.json sets the casing switches") {
    const std::string dir = temp_path("hfdir");
    REQUIRE(std::system(("mkdir -p " + dir).c_str()) == 0);
    {
      std::ofstream v(dir + "/vocab.txt");
      v << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\ncafe\ncafé\n";
    }
    // No tokenizer_config.json: today's uncased default.
    auto tok = pe::BertTokenizer::from_hf_folder(dir);
    CHECK(tok.options().lower_case);
    CHECK(tok.encode("Hello CAFÉ", 0) == std::vector<int32_t>{2, 5, 7, 3});
    {
      std::ofstream c(dir + "/tokenizer_config.json");
      c << R"({"do_lower_case": false, "strip_accents": null, "tokenize_chinese_chars": false, "model_max_length": 512})";
    }
    tok = pe::BertTokenizer::from_hf_folder(dir);
    CHECK_FALSE(tok.options().lower_case);
    CHECK_FALSE(tok.options().tokenize_chinese_chars);
    CHECK(tok.encode("Hello café", 0) == std::vector<int32_t>{2, 6, 8, 3});
    {
      std::ofstream c(dir + "/tokenizer_config.json");
      c << R"({"do_lower_case": true, "strip_accents": false})";
    }
    CHECK(pe::BertTokenizer::from_hf_folder(dir).encode("CAFÉ", 0) == std::vector<int32_t>{2, 8, 3});
    {
      std::ofstream c(dir + "/tokenizer_config.json");
      c << R"({"do_lower_case": "no"})";
    }
    CHECK(contains(error_of([&] { pe::BertTokenizer::from_hf_folder(dir); }), "do_lower_case"));
    {
      std::ofstream c(dir + "/tokenizer_config.json");
      c << "{not json";
    }
    CHECK(contains(error_of([&] { pe::BertTokenizer::from_hf_folder(dir); }), "tokenizer_config.json"));
    // What we write for an exported folder reads back as the same switches.
    pe::BertOptions opt;
    opt.lower_case = false;
    opt.strip_accents = 1;
    opt.tokenize_chinese_chars = false;
    pe::write_hf_tokenizer_files(dir, opt, 128);
    const auto back = pe::BertOptions::from_hf_folder(dir);
    CHECK_FALSE(back.lower_case);
    CHECK(back.strip_accents == 1);
    CHECK_FALSE(back.tokenize_chinese_chars);
    CHECK(load_json(dir + "/tokenizer_config.json")["model_max_length"] == 128);
    CHECK(load_json(dir + "/special_tokens_map.json")["mask_token"] == "[MASK]");
    std::system(("rm -rf " + dir).c_str());
  }

  TEST_CASE("bert: basic tokenizer pieces") {
    using V = std::vector<std::string>;
    CHECK(pe::bert_basic_tokenize("Hello, World!") == V{"hello", ",", "world", "!"});
    CHECK(pe::bert_basic_tokenize("naïve Ångström") == V{"naive", "angstrom"});
    CHECK(pe::bert_basic_tokenize("a\x01\x7f" "b\tc") == V{"ab", "c"});
    CHECK(pe::bert_basic_tokenize("中文x") == V{"中", "文", "x"});
    CHECK(pe::bert_basic_tokenize("ΟΔΟΣ") == V{"οδοσ"});  // HF's Rust tokenizer: no final sigma
    pe::BertOptions cased;
    cased.lower_case = false;
    CHECK(pe::bert_basic_tokenize("Naïve ΟΔΟΣ, Hi", false, cased) == V{"Naïve", "ΟΔΟΣ", ",", "Hi"});
    cased.strip_accents = 1;
    CHECK(pe::bert_basic_tokenize("Naïve", false, cased) == V{"Naive"});
    pe::BertOptions keep_accents;
    keep_accents.strip_accents = 0;
    CHECK(pe::bert_basic_tokenize("Naïve", false, keep_accents) == V{"naïve"});
    pe::BertOptions no_cjk;
    no_cjk.tokenize_chinese_chars = false;
    CHECK(pe::bert_basic_tokenize("a中文b", false, no_cjk) == V{"a中文b"});
    CHECK(pe::bert_basic_tokenize("x [MASK] y") == V{"x", "[", "mask", "]", "y"});
    CHECK(pe::bert_basic_tokenize("x [MASK] y", true) == V{"x", "[MASK]", "y"});
    CHECK(pe::bert_basic_tokenize("") == V{});
  }

  TEST_CASE("wordpiece trainer: the score rule and the frequency rule pick different first merges") {
    // Word counts: hug 10, pug 5, pun 12, bun 4, hugs 5. Every pair but (##g, ##s) scores 1/36;
    // (##g, ##s) scores 5 / (20 * 5) = 1/20. By frequency, (##u, ##g) wins with 20.
    std::vector<std::string> lines;
    for (auto [w, n] : std::vector<std::pair<std::string, int>>{{"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}})
      for (int i = 0; i < n; ++i) lines.push_back(w);
    // specials (5) + 7 characters + their 7 ## forms = 19
    const auto by_score = pe::train_wordpiece(lines, 20, 1, pe::WordpieceMergeRule::kScore);
    REQUIRE(by_score.size() == 20);
    CHECK(by_score[19] == "##gs");
    const auto by_freq = pe::train_wordpiece(lines, 20, 1, pe::WordpieceMergeRule::kFrequency);
    REQUIRE(by_freq.size() == 20);
    CHECK(by_freq[19] == "##ug");
    // With enough room every word becomes one piece.
    const auto full = pe::train_wordpiece(lines, 100, 1, pe::WordpieceMergeRule::kScore);
    for (const char* w : {"hug", "pug", "pun", "bun", "hugs"}) CHECK(std::count(full.begin(), full.end(), w) == 1);
    CHECK(full.size() < 100);  // stops when nothing is left to merge
    CHECK(contains(error_of([&] { pe::train_wordpiece(lines, 18); }), "too small"));
  }

  TEST_CASE("wordpiece trainer: deterministic - specials first - no [UNK] on training words - size respected") {
    const auto lines = read_lines(kFixtures + "uniprot_texts.txt");
    const size_t size = 1500;
    for (auto rule : {pe::WordpieceMergeRule::kFrequency, pe::WordpieceMergeRule::kScore}) {
      CAPTURE(static_cast<int>(rule));
      const auto vocab = pe::train_wordpiece(lines, size, 2, rule);
      CHECK(vocab.size() == size);
      CHECK(pe::train_wordpiece(lines, size, 2, rule) == vocab);
      REQUIRE(vocab.size() > 5);
      CHECK(std::vector<std::string>(vocab.begin(), vocab.begin() + 5) ==
            std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"});
      CHECK(std::set<std::string>(vocab.begin(), vocab.end()).size() == vocab.size());

      // Written as vocab.txt and loaded back, it encodes every training line without [UNK].
      const std::string path = temp_path("trained_vocab.txt");
      pe::write_vocab(path, vocab);
      const auto tok = pe::BertTokenizer::from_file(path);
      ::unlink(path.c_str());
      CHECK(tok.vocab_size() == size);
      CHECK(tok.unk_id() == 1);
      size_t pieces = 0, words = 0, lines_with_unk = 0;
      for (const auto& line : lines) {
        const auto ids = tok.encode(line, 0);
        lines_with_unk += std::find(ids.begin(), ids.end(), tok.unk_id()) != ids.end();
        pieces += ids.size() - 2;
        words += pe::bert_basic_tokenize(line).size();
      }
      CHECK(lines_with_unk == 0);
      // The frequency rule's merges cover the common words: well under 2 pieces per word.
      if (rule == pe::WordpieceMergeRule::kFrequency) CHECK(pieces < words * 3 / 2);
    }

    // A high min_frequency stops the merges early.
    CHECK(pe::train_wordpiece(lines, size, 1'000'000).size() < 300);
    CHECK(contains(error_of([&] { pe::write_vocab("/nonexistent/dir/vocab.txt", {"[PAD]"}); }), "/nonexistent/dir"));
  }

  // Run with --no-skip: trains an 8k vocabulary on ~20 MB of synthetic text (Zipf-distributed words
  // over a large random lexicon) and reports the time; the brief asks for well under a minute on 2 cores.
  TEST_CASE("wordpiece trainer: speed on 20 MB" * doctest::skip()) {
    std::mt19937_64 rng(7);
    const char* syll[] = {"pro", "te", "in", "ki", "na", "se", "ase", "bind", "ing", "mem", "bra", "ne", "trans",
                          "port", "er", "phos", "pho", "ryl", "ation", "re", "gu", "la", "tor", "zinc", "fin",
                          "ger", "do", "main", "nu", "cle", "ar", "mi", "to", "chon", "dri", "al", "x", "q", "z"};
    std::vector<std::string> lexicon(300000);
    for (auto& w : lexicon) {
      const int n = 1 + static_cast<int>(rng() % 5);
      for (int k = 0; k < n; ++k) w += syll[rng() % (sizeof(syll) / sizeof(syll[0]))];
    }
    std::vector<double> weights(lexicon.size());
    for (size_t i = 0; i < weights.size(); ++i) weights[i] = 1.0 / (i + 1);
    std::discrete_distribution<size_t> zipf(weights.begin(), weights.end());
    std::vector<std::string> lines;
    size_t bytes = 0;
    while (bytes < 20'000'000) {
      std::string line;
      for (int k = 0; k < 20; ++k) line += lexicon[zipf(rng)] + (k % 7 == 6 ? ". " : " ");
      bytes += line.size();
      lines.push_back(std::move(line));
    }
    for (auto rule : {pe::WordpieceMergeRule::kFrequency, pe::WordpieceMergeRule::kScore}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto vocab = pe::train_wordpiece(lines, 8000, 2, rule);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      MESSAGE("rule ", std::string(rule == pe::WordpieceMergeRule::kScore ? "score" : "frequency"), ": ", vocab.size(),
              " tokens from ", bytes / 1e6, " MB in ", s, " s");
      CHECK(vocab.size() == 8000);
      CHECK(s < 60);
    }
  }
}
