// Readers for UniProt flat files, FASTA (+TSV/JSONL descriptions) and JSONL pairs: the committed
// real sample, then every malformed-input case with the file:line it must report.
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/fasta.h"
#include "data/jsonl.h"
#include "data/text_io.h"
#include "data/uniprot.h"

namespace fs = std::filesystem;
using namespace pe;
using pe::testing::TempDir;

namespace {

// A fresh directory per test case, removed at the end.
// dir/name holding `content` gzip-compressed.
std::string write_gz(const pe::testing::TempDir& t, const std::string& name, const std::string& content) {
  const std::string p = t.path(name);
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, content.data(), static_cast<unsigned>(content.size())) == static_cast<int>(content.size()));
  gzclose(f);
  return p;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

const std::string kSwiss100 = std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat";

// A minimal well-formed entry; the residue lines are split in blocks of 10 as in real files.
std::string entry(const std::string& acc, const std::string& seq, const std::string& extra = "",
                  long sq_len = -1, std::string crc = "") {
  if (sq_len < 0) sq_len = static_cast<long>(seq.size());
  if (crc.empty()) crc = uniprot_crc64(seq);
  std::string s = "ID   " + acc + "_TEST              Reviewed;  " + std::to_string(seq.size()) + " AA.\n";
  s += "AC   " + acc + "; Q00000;\n";
  s += "DE   RecName: Full=Test protein " + acc + ";\n";
  s += extra;
  s += "DR   GO; GO:0005524; F:ATP binding; IEA:InterPro.\n";
  s += "SQ   SEQUENCE   " + std::to_string(sq_len) + " AA;  1000 MW;  " + crc + " CRC64;\n";
  for (std::size_t i = 0; i < seq.size(); i += 60) {
    s += "    ";
    for (std::size_t j = i; j < std::min(seq.size(), i + 60); j += 10) s += " " + seq.substr(j, 10);
    s += "\n";
  }
  return s + "//\n";
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// Runs `f`, expects pe::Error, returns its message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pe::Error& e) {
    return e.what();
  }
  FAIL("expected pe::Error");
  return {};
}

}  // namespace

TEST_SUITE("data") {

// ------------------------------------------------------------------------------ UniProt: real sample

TEST_CASE("uniprot: SWISS100 sample has 100 entries with name / function / keywords / GO") {
  UniProtReader r(kSwiss100);
  std::vector<UniProtEntry> entries;
  UniProtEntry e;
  while (r.next_entry(e)) entries.push_back(e);
  REQUIRE(entries.size() == 100);
  CHECK(r.stats().records == 100);
  CHECK(r.stats().skipped == 0);

  // First and last entries, read off the file by hand.
  const auto& first = entries.front();
  CHECK(first.accession == "P31946");
  CHECK(first.entry_name == "1433B_HUMAN");
  CHECK(first.seq.size() == 246);
  CHECK(first.seq.rfind("MTMDKSELVQKAKLAEQAER", 0) == 0);
  CHECK(first.name == "14-3-3 protein beta/alpha");
  CHECK(first.gene == "YWHAB");
  CHECK(first.organism == "Homo sapiens (Human)");
  CHECK(first.go.size() == 40);
  CHECK(uniprot_crc64(first.seq) == "6BE1A9BF97468017");
  CHECK(first.function.rfind("Adapter protein implicated in the regulation of a large spectrum", 0) == 0);
  CHECK(first.function.back() == '.');
  const auto& last = entries.back();
  CHECK(last.accession == "Q9BYF1");
  CHECK(last.entry_name == "ACE2_HUMAN");
  CHECK(last.seq.size() == 805);
  CHECK(last.seq.rfind("MSSSSWLLLSLVAVTAAQST", 0) == 0);
  CHECK(last.seq.substr(last.seq.size() - 5) == "VQTSF");
  CHECK(last.name == "Angiotensin-converting enzyme 2");
  CHECK(last.gene == "ACE2");  // not "UNQ868/PRO1885" from ORFNames=
  CHECK(last.keywords.front() == "3D-structure");
  CHECK(last.keywords.back() == "Zinc");
  CHECK(last.keywords.size() == 22);

  for (const auto& x : entries) {
    INFO(x.accession);
    CHECK(!x.name.empty());
    CHECK(!x.function.empty());
    CHECK(!x.keywords.empty());
    CHECK(!x.go.empty());
    CHECK(first_bad_residue(x.seq) == std::string::npos);
  }
}

TEST_CASE("uniprot: text template and field selection") {
  const auto recs = read_uniprot(kSwiss100);
  REQUIRE(recs.size() == 100);
  const std::string& t = recs[0].text;
  CHECK(recs[0].id == "P31946");
  CHECK(recs[0].line == 1);
  CHECK(t.rfind("Name: 14-3-3 protein beta/alpha. Function: Adapter protein implicated", 0) == 0);
  CHECK(contains(t, "neuronal apoptosis elicited by SRPK2. Keywords: 3D-structure; Acetylation; "));
  CHECK(contains(t, "Polymorphism; Reference proteome. Molecular function: enzyme binding; "));
  CHECK(contains(t, ". Biological process: "));
  CHECK(contains(t, "Cellular component: cytoplasm; cytoplasmic vesicle membrane; cytosol; "));
  CHECK(t.back() == '.');
  for (const auto& r : recs) CHECK(!r.text.empty());

  UniProtOptions opt;
  opt.fields = parse_uniprot_fields("name,gene,organism");
  const auto short_recs = read_uniprot(kSwiss100, opt);
  CHECK(short_recs[0].text == "Name: 14-3-3 protein beta/alpha. Gene: YWHAB. Organism: Homo sapiens (Human).");
  opt.fields = kUpGo;
  CHECK(read_uniprot(kSwiss100, opt)[0].text.rfind("Molecular function: enzyme binding; histone deacetylase binding;", 0) == 0);

  CHECK(parse_uniprot_fields("default") == kUpDefaultFields);
  CHECK(parse_uniprot_fields("go, keywords") == (kUpGo | kUpKeywords));
  CHECK_THROWS_AS(parse_uniprot_fields("name,colour"), pe::Error);
}

TEST_CASE("uniprot: gzip input gives the same records") {
  TempDir t("readers");
  const std::string gz = write_gz(t, "SWISS100.dat.gz", read_all(kSwiss100));
  const auto a = read_uniprot(kSwiss100);
  const auto b = read_uniprot(gz);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].id == b[i].id);
    CHECK(a[i].seq == b[i].seq);
    CHECK(a[i].text == b[i].text);
  }
}

TEST_CASE("go_text: names sorted and de-duplicated and empty aspects left out") {
  CHECK(go_text({"b", "a", "b"}, {}, {"z"}) == "Molecular function: a; b. Cellular component: z.");
  CHECK(go_text({}, {}, {}).empty());
}

// ------------------------------------------------------------------------------ UniProt: malformed

TEST_CASE("uniprot: modern evidence tags are stripped") {
  TempDir t("readers");
  const std::string extra =
      "GN   Name=abcA {ECO:0000312|EMBL:X1}; ORFNames=F1 {ECO:0000313};\n"
      "OS   Escherichia coli (strain K12).\n"
      "CC   -!- FUNCTION: Binds ATP (PubMed:1). Hydrolyses it. {ECO:0000269|PubMed:1,\n"
      "CC       ECO:0000269|PubMed:2}.\n"
      "CC   -!- SUBCELLULAR LOCATION: Membrane {ECO:0000305}.\n"
      "CC   -!- FUNCTION: Second block.\n"
      "KW   ATP-binding {ECO:0000313}; Reference proteome.\n";
  const std::string p = t.file("eco.dat", entry("P00001", "MKVLA", extra));
  UniProtReader r(p);
  UniProtEntry e;
  REQUIRE(r.next_entry(e));
  CHECK(e.gene == "abcA");
  CHECK(e.organism == "Escherichia coli (strain K12)");
  CHECK(e.function == "Binds ATP (PubMed:1). Hydrolyses it. Second block.");
  CHECK(e.keywords == std::vector<std::string>{"ATP-binding", "Reference proteome"});
  CHECK(uniprot_text(e) ==
        "Name: Test protein P00001. Function: Binds ATP (PubMed:1). Hydrolyses it. Second block. "
        "Keywords: ATP-binding; Reference proteome. Molecular function: ATP binding.");
}

TEST_CASE("uniprot: truncated last entry is a counted skip naming its ID line") {
  TempDir t("readers");
  std::string text = entry("P00001", "MKVLAAGIVG") + entry("P00002", "MKKLLPT");
  text.resize(text.size() - 3);  // drop the final "//\n"
  const std::string p = t.file("trunc.dat", text);
  ReadStats st;
  const auto recs = read_uniprot(p, {}, &st);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "P00001");
  CHECK(st.skipped == 1);
  CHECK(st.by_reason.at("truncated entry") == 1);
  CHECK(contains(st.examples.at(0), p + ":8: P00002"));  // the second entry's ID line

  UniProtOptions strict;
  strict.strict = true;
  CHECK(contains(error_of([&] { read_uniprot(p, strict); }), p + ":8:"));
}

TEST_CASE("uniprot: bad residue / length mismatch / CRC mismatch / missing SQ / missing AC") {
  TempDir t("readers");
  const std::string good = entry("P00001", "MKVLAAGIVG");
  std::string bad_char = entry("P00002", "MKVLAAGIVG");
  bad_char.replace(bad_char.find("MKVLAAGIVG"), 10, "MKVLA1GIVG");
  const std::string mismatch = entry("P00003", "MKVLAAGIVG", "", 11);
  const std::string crc = entry("P00004", "MKVLAAGIVG", "", -1, "0000000000000000");
  std::string no_sq = entry("P00005", "MKV");
  no_sq.erase(no_sq.find("SQ   "), no_sq.find("//") - no_sq.find("SQ   "));
  std::string no_ac = entry("P00006", "MKV");
  no_ac.erase(no_ac.find("AC   "), no_ac.find("DE   ") - no_ac.find("AC   "));
  std::string no_end = entry("P00007", "MKV");
  no_end.erase(no_end.find("//"));  // next ID arrives before "//"
  const std::string text = good + bad_char + mismatch + crc + no_sq + no_ac + no_end + good;
  const std::string p = t.file("bad.dat", text);
  // Line numbers of each entry's ID line, and of the bad residue line.
  std::vector<std::size_t> id_lines;
  std::size_t ln = 1, residue_line = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "ID ") == 0 && (i == 0 || text[i - 1] == '\n')) id_lines.push_back(ln);
    if (text.compare(i, 10, "MKVLA1GIVG") == 0) residue_line = ln;
    if (text[i] == '\n') ++ln;
  }
  REQUIRE(id_lines.size() == 8);

  ReadStats st;
  const auto recs = read_uniprot(p, {}, &st);
  CHECK(recs.size() == 2);
  CHECK(st.records == 2);
  CHECK(st.skipped == 6);
  CHECK(st.by_reason.at("bad residue") == 1);
  CHECK(st.by_reason.at("sequence length mismatch") == 1);
  CHECK(st.by_reason.at("CRC64 mismatch") == 1);
  CHECK(st.by_reason.at("no SQ line") == 1);
  CHECK(st.by_reason.at("no AC line") == 1);
  CHECK(st.by_reason.at("entry not terminated by //") == 1);
  REQUIRE(st.examples.size() == 6);
  CHECK(contains(st.examples[0], p + ":" + std::to_string(residue_line) + ": bad residue '1' at column 11"));
  CHECK(contains(st.examples[1], p + ":" + std::to_string(id_lines[2]) + ": P00003: SQ line says 11"));
  CHECK(contains(st.examples[2], p + ":" + std::to_string(id_lines[3]) + ": P00004: sequence CRC64"));
  CHECK(contains(st.examples[3], p + ":" + std::to_string(id_lines[4]) + ": P00005: entry has no SQ"));
  CHECK(contains(st.examples[4], p + ":" + std::to_string(id_lines[5]) + ": entry: entry has no AC"));
  CHECK(contains(st.examples[5], p + ":" + std::to_string(id_lines[6]) + ": entry has no \"//\""));
  CHECK(contains(st.summary(), "2 records, 6 skipped"));

  UniProtOptions strict;
  strict.strict = true;
  CHECK(contains(error_of([&] { read_uniprot(p, strict); }), p + ":" + std::to_string(residue_line) + ":"));
}

TEST_CASE("uniprot: missing text fields and empty files") {
  TempDir t("readers");
  // No DE, no CC, no KW: only the GO part remains; with only "name" chosen the text is empty.
  std::string e = entry("P00001", "MKV");
  e.erase(e.find("DE   "), e.find("DR   ") - e.find("DE   "));
  const std::string p = t.file("nofields.dat", e);
  const auto recs = read_uniprot(p);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].text == "Molecular function: ATP binding.");
  UniProtOptions opt;
  opt.fields = kUpName;
  ReadStats st;
  CHECK(read_uniprot(p, opt, &st).empty());
  CHECK(st.by_reason.at("empty text") == 1);
  CHECK(contains(st.examples.at(0), p + ":1: P00001"));

  const std::string empty = t.file("empty.dat", "");
  CHECK(contains(error_of([&] { read_uniprot(empty); }), empty + ": empty file"));
  const std::string blank = t.file("blank.dat", "\n  \n");
  CHECK(contains(error_of([&] { read_uniprot(blank); }), blank + ": empty file"));
  CHECK(contains(error_of([&] { read_uniprot((t.dir / "missing.dat").string()); }), "cannot open"));
}

TEST_CASE("text_io: corrupt and truncated gzip name the file and line") {
  TempDir t("readers");
  const std::string garbage = t.file("bad.dat.gz", std::string("\x1f\x8b\x08\x00garbage-not-deflate", 23));
  CHECK(contains(error_of([&] { read_uniprot(garbage); }), garbage + ":1: read error (gzip)"));

  // A real gzip stream cut in half: the lines before the cut are read, then the error names the
  // line being read.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + " some filler text to compress\n";
  const std::string full = write_gz(t, "full.gz", text);
  std::string bytes = read_all(full);
  bytes.resize(bytes.size() / 2);
  const std::string cut = t.file("cut.gz", bytes);
  LineReader r(cut);
  CHECK(r.compressed());
  std::string line;
  std::size_t n = 0;
  const std::string msg = error_of([&] {
    while (r.next(line)) ++n;
  });
  CHECK(n > 0);
  CHECK(contains(msg, cut + ":" + std::to_string(n + 1) + ": read error (gzip)"));
}

TEST_CASE("text_io: CRLF and last line without newline and atomic writer") {
  TempDir t("readers");
  const std::string p = t.file("crlf.txt", "a\r\nb\n\nc");
  LineReader r(p);
  std::string l;
  std::vector<std::string> lines;
  while (r.next(l)) lines.push_back(l);
  CHECK(lines == std::vector<std::string>{"a", "b", "", "c"});
  CHECK(r.line_no() == 4);
  CHECK_FALSE(r.compressed());

  const std::string out = (t.dir / "out.txt.gz").string();
  {
    TextWriter w(out);
    w.write_line("x");
    CHECK_FALSE(file_exists(out));  // only the .tmp exists until close()
  }  // destroyed without close(): nothing under the final name, no .tmp left
  CHECK_FALSE(file_exists(out));
  CHECK_FALSE(file_exists(out + ".tmp"));
  TextWriter w(out);
  w.write_line("hello");
  w.close();
  LineReader back(out);
  CHECK(back.compressed());
  REQUIRE(back.next(l));
  CHECK(l == "hello");
}

// ------------------------------------------------------------------------------ FASTA

TEST_CASE("fasta: accession from headers") {
  CHECK(fasta_accession(">sp|P12345|NAME_HUMAN Some protein OS=Homo sapiens") == "P12345");
  CHECK(fasta_accession(">tr|A0A024R161|A0A024R161_HUMAN x") == "A0A024R161");
  CHECK(fasta_accession(">P31946 14-3-3 protein") == "P31946");
  CHECK(fasta_accession("> XP_001.1\tdesc") == "XP_001.1");
  CHECK(fasta_accession(">B0RED7|GO:0046933") == "B0RED7|GO:0046933");
  CHECK(fasta_accession(">").empty());
}

TEST_CASE("fasta: TSV descriptions and a missing description is a counted skip with file:line") {
  TempDir t("readers");
  const std::string fa = t.file("p.fasta",
                                ">sp|P00001|A_HUMAN first\nMKV\nLAA*\n"
                                ">P00002 second\nmkkl\n"
                                ">sp|P00003|C_HUMAN third, no description\nMMM\n"
                                ">P00004 bad residue\nMK1V\n"
                                ">P00005 empty\n");
  const std::string tsv = t.file("d.tsv", "accession\ttext\nP00001\tKinase.\nP00002\tBinds DNA.\nP00004\tX.\nP00005\tY.\n");
  FastaOptions opt;
  opt.descriptions = tsv;
  ReadStats st;
  const auto recs = read_fasta(fa, opt, &st);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].id == "P00001");
  CHECK(recs[0].seq == "MKVLAA");
  CHECK(recs[0].text == "Kinase.");
  CHECK(recs[0].line == 1);
  CHECK(recs[1].seq == "MKKL");
  CHECK(recs[1].line == 4);
  CHECK(st.skipped == 3);
  CHECK(st.by_reason.at("no description") == 1);
  CHECK(st.by_reason.at("bad residue") == 1);
  CHECK(st.by_reason.at("empty sequence") == 1);
  CHECK(contains(st.examples.at(0), fa + ":6: P00003: no description in " + tsv));
  CHECK(contains(st.examples.at(1), fa + ":8: P00004: bad residue '1' at position 3"));
  CHECK(contains(st.examples.at(2), fa + ":10: P00005: record has no residues"));

  opt.strict = true;
  CHECK(contains(error_of([&] { read_fasta(fa, opt); }), fa + ":6: P00003: no description"));

  // No description file: every clean record, empty text.
  const auto bare = read_fasta(fa);
  CHECK(bare.size() == 3);
  CHECK(bare[2].text.empty());
}

TEST_CASE("fasta: JSONL descriptions and gzip FASTA and bad description lines") {
  TempDir t("readers");
  const std::string fa = write_gz(t, "p.fa.gz", ">P1\nMKV\n>P2\nAAA\n");
  const std::string jl = t.file("d.jsonl",
                                "{\"id\": \"P1\", \"text\": \"One.\"}\n"
                                "{\"id\": \"P2\", \"text\": \"Two.\"}\n"
                                "{\"id\": \"P2\", \"text\": \"Again.\"}\n"
                                "{\"id\": \"P3\"\n"
                                "{\"id\": \"P4\"}\n");
  FastaOptions opt;
  opt.descriptions = jl;
  ReadStats st;
  const auto recs = read_fasta(fa, opt, &st);
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].text == "Two.");  // the first description wins
  CHECK(st.by_reason.at("description: duplicate accession") == 1);
  CHECK(st.by_reason.at("description: malformed JSON") == 1);
  CHECK(st.by_reason.at("description: missing id/text") == 1);
  CHECK(contains(st.examples.at(0), jl + ":3: second description for P2 (first at line 2)"));
  CHECK(contains(st.examples.at(1), jl + ":4: malformed JSON"));
  CHECK(contains(st.examples.at(2), jl + ":5: description needs"));

  const std::string tsv = t.file("d.tsv", "P1\tOne.\nP2 no tab\n");
  ReadStats st2;
  read_descriptions(tsv, st2, false);
  CHECK(contains(st2.examples.at(0), tsv + ":2: description line has no tab"));

  const std::string stray = t.file("stray.fa", "MKV\n>P1\nMKV\n");
  ReadStats st3;
  CHECK(read_fasta(stray, {}, &st3).size() == 1);
  CHECK(contains(st3.examples.at(0), stray + ":1: line outside a FASTA record"));

  const std::string empty = t.file("empty.fa", "");
  CHECK(contains(error_of([&] { read_fasta(empty); }), empty + ": empty file"));
}

// ------------------------------------------------------------------------------ JSONL

TEST_CASE("jsonl: writer and reader round trip with escaping and UTF-8") {
  TempDir t("readers");
  std::vector<ProteinRecord> in = {
      {"P1", "MKV", "Kinase \"A\"; line\nbreak, tab\t, backslash \\.", 0},
      {"P2", "ACDEFGHIKLMNPQRSTVWY", "Protéine α-hélice — 蛋白", 0},
  };
  const std::string p = (t.dir / "pairs.jsonl").string();
  write_jsonl(p, in);
  const std::string raw = read_all(p);
  CHECK(raw.rfind("{\"id\":\"P1\",\"seq\":\"MKV\",\"text\":\"Kinase \\\"A\\\"; line\\nbreak", 0) == 0);
  ReadStats st;
  const auto out = read_jsonl(p, {}, &st);
  REQUIRE(out.size() == 2);
  CHECK(st.skipped == 0);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(out[i].id == in[i].id);
    CHECK(out[i].seq == in[i].seq);
    CHECK(out[i].text == in[i].text);
    CHECK(out[i].line == i + 1);
  }
  // gzip output round trips too.
  const std::string pgz = (t.dir / "pairs.jsonl.gz").string();
  write_jsonl(pgz, in);
  CHECK(read_jsonl(pgz).size() == 2);

  // Text that is not UTF-8 is refused with the record's id.
  JsonlWriter w((t.dir / "bad.jsonl").string());
  CHECK(contains(error_of([&] { w.write({"P9", "MK", std::string("bad \xff byte"), 0}); }), "'P9'"));
}

TEST_CASE("jsonl: malformed lines are counted skips naming file:line and custom keys work") {
  TempDir t("readers");
  const std::string p = t.file("pairs.jsonl",
                               "{\"id\":\"P1\",\"seq\":\"MKV\",\"text\":\"A.\"}\n"
                               "{\"id\":\"P2\",\"seq\":\"MKV\",\"text\":\"B.\"\n"
                               "\n"
                               "[1,2]\n"
                               "{\"id\":\"P3\",\"seq\":\"MKV\"}\n"
                               "{\"id\":\"P4\",\"seq\":7,\"text\":\"D.\"}\n"
                               "{\"id\":\"P5\",\"seq\":\"MK-V\",\"text\":\"E.\"}\n"
                               "{\"id\":\"P6\",\"seq\":\"mkv*\",\"text\":\"F.\",\"extra\":1}\n");
  ReadStats st;
  const auto recs = read_jsonl(p, {}, &st);
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].id == "P6");
  CHECK(recs[1].seq == "MKV");
  CHECK(recs[1].line == 8);
  CHECK(st.skipped == 5);
  CHECK(contains(st.examples.at(0), p + ":2: malformed JSON"));
  CHECK(contains(st.examples.at(1), p + ":4: line is not a JSON object"));
  CHECK(contains(st.examples.at(2), p + ":5: \"text\" is missing"));
  CHECK(contains(st.examples.at(3), p + ":6: \"seq\" is not a string"));
  CHECK(contains(st.examples.at(4), p + ":7: P5: bad residue '-' at position 3"));

  JsonlOptions strict;
  strict.strict = true;
  CHECK(contains(error_of([&] { read_jsonl(p, strict); }), p + ":2: malformed JSON"));

  const std::string hf = t.file("hf.jsonl", "{\"name\":\"Q1\",\"sequence\":\"MKV\",\"description\":\"G.\"}\n");
  JsonlOptions keys;
  keys.id_key = "name";
  keys.seq_key = "sequence";
  keys.text_key = "description";
  const auto h = read_jsonl(hf, keys);
  REQUIRE(h.size() == 1);
  CHECK(h[0].text == "G.");

  const std::string empty = t.file("empty.jsonl", "\n");
  CHECK(contains(error_of([&] { read_jsonl(empty); }), empty + ": empty file"));
}

// ------------------------------------------------------------------------------ fuzz findings
// Inputs found by the libFuzzer harnesses (scripts/fuzz.sh); each case failed before its fix. The
// same inputs are in tests/fuzz/corpus/<target>/regress-*.

TEST_CASE("fuzz regression: a JSON number out of range is a counted malformed line in JSONL and descriptions") {
  TempDir t("readers");
  // nlohmann throws out_of_range (not parse_error) for 1e309; it used to escape the reader and
  // end the whole read instead of skipping the line.
  const std::string p = t.file("overflow.jsonl",
                               "{\"id\":\"P1\",\"seq\":\"MKV\",\"text\":\"A.\",\"score\":1e309}\n"
                               "{\"id\":\"P2\",\"seq\":\"MKV\",\"text\":\"B.\"}\n");
  ReadStats st;
  const auto recs = read_jsonl(p, {}, &st);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "P2");
  CHECK(st.by_reason.at("malformed JSON") == 1);
  CHECK(contains(st.examples.at(0), p + ":1: malformed JSON"));
  CHECK(contains(st.examples.at(0), "1e309"));
  JsonlOptions strict;
  strict.strict = true;
  CHECK(contains(error_of([&] { read_jsonl(p, strict); }), p + ":1: malformed JSON"));

  const std::string d = t.file("d.jsonl", "  {\"id\": 1e309}\n{\"id\": \"P1\", \"text\": \"One.\"}\n");
  ReadStats sd;
  const auto desc = read_descriptions(d, sd, false);
  CHECK(desc.size() == 1);
  CHECK(sd.by_reason.at("description: malformed JSON") == 1);
  CHECK(contains(sd.examples.at(0), d + ":1: malformed JSON"));
  CHECK(contains(error_of([&] { read_descriptions(d, sd, true); }), d + ":1: malformed JSON"));
}

TEST_CASE("fuzz regression: a sequence that is only a stop codon is an empty sequence in FASTA and JSONL") {
  TempDir t("readers");
  // clean_sequence() drops the '*' after the emptiness check used to run: the record came back
  // with an empty sequence.
  const std::string fa = t.file("stop.fa", ">sp|P1|A_HUMAN\n*\n>P2\nMKV*\n");
  ReadStats st;
  const auto recs = read_fasta(fa, {}, &st);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "P2");
  CHECK(recs[0].seq == "MKV");
  CHECK(st.by_reason.at("empty sequence") == 1);
  CHECK(contains(st.examples.at(0), fa + ":1: P1: record has no residues"));

  const std::string jl = t.file("stop.jsonl",
                                "{\"id\":\"P1\",\"seq\":\"*\",\"text\":\"A.\"}\n"
                                "{\"id\":\"P2\",\"seq\":\"mkv*\",\"text\":\"B.\"}\n");
  ReadStats sj;
  const auto pairs = read_jsonl(jl, {}, &sj);
  REQUIRE(pairs.size() == 1);
  CHECK(pairs[0].seq == "MKV");
  CHECK(sj.by_reason.at("bad \"seq\"") == 1);
  CHECK(contains(sj.examples.at(0), jl + ":1: \"seq\" has no residues"));
}

TEST_CASE("fuzz regression: a UniProt entry of 0 residues is a counted skip") {
  TempDir t("readers");
  // "SQ   SEQUENCE 0 AA;" with no residue lines matched its own length and CRC64 (of ""), so the
  // entry came back with an empty sequence.
  const std::string p = t.file("zero.dat", entry("P00001", "") + entry("P00002", "MKV"));
  ReadStats st;
  const auto recs = read_uniprot(p, {}, &st);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].id == "P00002");
  CHECK(st.by_reason.at("empty sequence") == 1);
  CHECK(contains(st.examples.at(0), p + ":1: P00001: entry has no residues"));
  UniProtOptions strict;
  strict.strict = true;
  CHECK(contains(error_of([&] { read_uniprot(p, strict); }), p + ":1: P00001: entry has no residues"));
}

}  // TEST_SUITE
