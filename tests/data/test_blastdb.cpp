// BLAST v4 protein database decoder: a tiny database built byte by byte here, every validation
// error, and (when the real Debian metastudent-data is unpacked under datasets/) the real MFO file.
#include <doctest/doctest.h>

#include "tests/common/temp_dir.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/blastdb.h"

namespace fs = std::filesystem;
using namespace pe;
using pe::testing::TempDir;

namespace {


void be32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xff);
}
void set_be32(std::string& out, std::size_t at, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) out[at + k] = static_cast<char>((v >> (24 - 8 * k)) & 0xff);
}
void le64(std::string& out, std::uint64_t v) {
  for (int s = 0; s < 64; s += 8) out += static_cast<char>((v >> s) & 0xff);
}

// A Blast-def-line-set as makeblastdb writes it (indefinite lengths), title first.
std::string defline(const std::string& title) {
  std::string d = "\x30\x80\x30\x80\xa0\x80";  // SET OF { Blast-def-line { title [0] {
  d += '\x1a';
  if (title.size() < 0x80) {
    d += static_cast<char>(title.size());
  } else {  // long form, two length bytes
    d += '\x82';
    d += static_cast<char>(title.size() >> 8);
    d += static_cast<char>(title.size() & 0xff);
  }
  d += title;
  d += std::string("\0\0", 2);                                    // end of title [0]
  d += std::string("\xa1\x80\x30\x80\xaa\x80\x30\x80\xa0\x80", 10);  // seqid: general id
  d += "\x1a\x09";
  d += "BL_ORD_ID";
  d += std::string(12, '\0');  // close the five indefinite values and the def-line's seqid part
  d += std::string(4, '\0');   // close Blast-def-line and the set
  return d;
}

struct Db {
  std::string pin, phr, psq;
};

// Builds the three files for `seqs` (letters) and `titles`, exactly in the format described in
// data/blastdb.h; tests then corrupt single fields.
Db build(const std::vector<std::string>& seqs, const std::vector<std::string>& titles) {
  Db db;
  std::vector<std::uint32_t> hdr{0}, seq{1};
  db.psq = std::string(1, '\0');
  std::uint64_t total = 0;
  std::uint32_t longest = 0;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    db.phr += defline(titles[i]);
    hdr.push_back(static_cast<std::uint32_t>(db.phr.size()));
    for (char c : seqs[i]) {
      const char* at = std::char_traits<char>::find(kNcbiStdaa, kNcbiStdaaSize, c);
      REQUIRE(at != nullptr);
      db.psq += static_cast<char>(at - kNcbiStdaa);
    }
    db.psq += '\0';
    seq.push_back(static_cast<std::uint32_t>(db.psq.size()));
    total += seqs[i].size();
    longest = std::max<std::uint32_t>(longest, static_cast<std::uint32_t>(seqs[i].size()));
  }
  be32(db.pin, 4);
  be32(db.pin, 1);
  const std::string title = "tiny test db", date = std::string("Jan 1, 2024  1:00 PM") + std::string(4, '\0');
  be32(db.pin, static_cast<std::uint32_t>(title.size()));
  db.pin += title;
  be32(db.pin, static_cast<std::uint32_t>(date.size()));
  db.pin += date;
  be32(db.pin, static_cast<std::uint32_t>(seqs.size()));
  le64(db.pin, total);
  be32(db.pin, longest);
  for (auto o : hdr) be32(db.pin, o);
  for (auto o : seq) be32(db.pin, o);
  return db;
}

std::string write(const TempDir& t, const Db& db, const std::string& name = "db") {
  const std::string base = (t.dir / name).string();
  std::ofstream(base + ".pin", std::ios::binary) << db.pin;
  std::ofstream(base + ".phr", std::ios::binary) << db.phr;
  std::ofstream(base + ".psq", std::ios::binary) << db.psq;
  return base;
}

std::string open_error(const std::string& base) {
  try {
    BlastDb db(base);
  } catch (const pe::Error& e) {
    return e.what();
  }
  FAIL("expected pe::Error for " << base);
  return {};
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

const std::vector<std::string> kSeqs = {"MKVLAAGIVG", "ACDEFGHIKLMNPQRSTVWYUOXBZJ", "M"};
const std::string kLongTitle = "Q00003|" + std::string(200, 'x');
const std::vector<std::string> kTitles = {"P00001|GO:0005524", "P00002|GO:0003677,GO:0005634", kLongTitle};

}  // namespace

TEST_SUITE("data") {

TEST_CASE("blastdb: decodes a hand-built version 4 protein database") {
  TempDir t("blastdb");
  const std::string base = write(t, build(kSeqs, kTitles));
  BlastDb db(base);
  REQUIRE(db.size() == 3);
  CHECK(db.title() == "tiny test db");
  CHECK(db.date() == "Jan 1, 2024  1:00 PM");
  CHECK(db.total_residues() == 37);
  CHECK(db.max_length() == 26);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(db.length(i) == kSeqs[i].size());
    CHECK(db.sequence(i) == kSeqs[i]);
    CHECK(db.defline_title(i) == kTitles[i]);
  }
  CHECK_THROWS_AS(db.sequence(3), pe::Error);
}

TEST_CASE("blastdb: header validation errors name the .pin file") {
  TempDir t("blastdb");
  const Db good = build(kSeqs, kTitles);

  Db v = good;
  v.pin[3] = 5;
  CHECK(contains(open_error(write(t, v)), "db.pin: BLAST database format version 5 is not supported"));

  Db ty = good;
  ty.pin[7] = 0;
  CHECK(contains(open_error(write(t, ty)), "db.pin: database type 0 is not protein"));

  Db shortpin = good;
  shortpin.pin.resize(6);
  CHECK(contains(open_error(write(t, shortpin)), "db.pin: file too short at byte 4 while reading database type (6 bytes)"));

  Db extra = good;
  extra.pin += "xxxx";
  CHECK(contains(open_error(write(t, extra)), "db.pin: expected 32 bytes of offsets for 3 sequences"));

  // Header offsets: the second array entry (sequence 1's start) made larger than sequence 2's.
  const std::size_t arrays_at = good.pin.size() - 32;
  Db mono = good;
  mono.pin[arrays_at + 4 + 2] = '\x7f';
  CHECK(contains(open_error(write(t, mono)), "db.pin: header offsets not increasing at sequence 1"));

  Db total = good;
  total.pin[arrays_at - 12] = 99;  // low byte of the little-endian total
  CHECK(contains(open_error(write(t, total)), "db.pin: header says 99 residues, offsets give 37"));

  CHECK(contains(open_error((t.dir / "nothing").string()), "nothing.pin: cannot open"));
}

TEST_CASE("blastdb: sequence and header file errors name the file") {
  TempDir t("blastdb");
  const Db good = build(kSeqs, kTitles);

  Db nonul = good;
  nonul.psq[11] = 1;
  CHECK(contains(open_error(write(t, nonul)), "db.psq: sequence 0 is not followed by a NUL byte (at byte 11)"));
  Db trunc = good;
  trunc.psq.resize(12);
  CHECK(contains(open_error(write(t, trunc)), "db.psq: sequence 1 ends at byte 39, past the end of the file (12 bytes; truncated?)"));

  Db nolead = good;
  nolead.psq[0] = 3;
  CHECK(contains(open_error(write(t, nolead)), "db.psq: does not start with a NUL byte"));

  Db phr = good;
  phr.phr += "zz";
  CHECK(contains(open_error(write(t, phr)), "db.phr: size"));

  Db code = good;
  code.psq[3] = 40;
  const std::string base = write(t, code);
  BlastDb db(base);
  try {
    db.sequence(0);
    FAIL("expected a residue code error");
  } catch (const pe::Error& e) {
    CHECK(contains(e.what(), "db.psq: sequence 0: residue code 40 at byte 3 is not NCBIstdaa"));
  }

  // A defline without any VisibleString, and one whose title length runs past its end.
  Db notitle = build({"MK"}, {"P1"});
  notitle.phr = std::string("\x30\x80\x02\x01\x05\0\0\0\0", 9);
  set_be32(notitle.pin, notitle.pin.size() - 12, static_cast<std::uint32_t>(notitle.phr.size()));
  BlastDb nodb(write(t, notitle, "nt"));
  CHECK_THROWS_WITH_AS(nodb.defline_title(0), doctest::Contains("nt.phr: sequence 0: defline has no title"), pe::Error);

  Db cut = build({"MK"}, {"P1"});
  cut.phr = std::string("\x30\x80\x1a\x40P1", 6);
  set_be32(cut.pin, cut.pin.size() - 12, static_cast<std::uint32_t>(cut.phr.size()));
  BlastDb cutdb(write(t, cut, "cut"));
  CHECK_THROWS_WITH_AS(cutdb.defline_title(0), doctest::Contains("cut.phr: sequence 0: BER value runs past the defline at byte 2"), pe::Error);
}

TEST_CASE("blastdb: real metastudent-data MFO database (when unpacked under datasets/)") {
  // build_go_dataset() unpacks the Debian package here; the test is skipped on a fresh checkout.
  const char* env = std::getenv("PE_METASTUDENT_DIR");
  const std::string dir = env ? env
                              : std::string(PE_SOURCE_DIR) +
                                    "/datasets/go/root/usr/share/metastudent-data/dataset_201401";
  if (!fs::exists(dir + "/MFO/goasp.fasta.pin")) {
    MESSAGE("metastudent-data not unpacked at " << dir << "; real-database check skipped");
    return;
  }
  BlastDb db(dir + "/MFO/goasp.fasta");
  CHECK(db.size() == 459503);
  CHECK(db.title() == "dataset_201401/MFO/goasp.fasta");
  CHECK(db.total_residues() == 170481152);
  CHECK(db.max_length() == 35213);
  CHECK(db.defline_title(0) == "B0RED7|GO:0046933,GO:0046933");
  CHECK(db.length(0) == 263);
  CHECK(db.sequence(0).rfind("MGSASRASLDSARRVLAELG", 0) == 0);
  // Every title starts with the accession and '|'; spot-check a spread of sequences decode.
  for (std::size_t i = 0; i < db.size(); i += 9973) {
    INFO(i);
    const std::string title = db.defline_title(i);
    CHECK(title.find('|') != std::string::npos);
    const std::string s = db.sequence(i);
    CHECK(s.size() == db.length(i));
    CHECK(s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos);
  }
}

}  // TEST_SUITE
