#include "data/blastdb.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace pe {

namespace {

std::string read_binary(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) PE_FAIL(path, ": cannot open: ", std::strerror(errno));
  const std::streamoff size = f.tellg();
  std::string data(static_cast<std::size_t>(size), '\0');
  f.seekg(0);
  if (!f.read(data.data(), size)) PE_FAIL(path, ": read error");
  return data;
}

// Sequential reader over the .pin bytes; every read is bounds-checked.
struct PinCursor {
  const std::string& d;
  const std::string& path;
  std::size_t p = 0;

  void need(std::size_t n, const char* what) const {
    if (d.size() - p < n)
      PE_FAIL(path, ": file too short at byte ", p, " while reading ", what, " (", d.size(), " bytes)");
  }
  std::uint32_t be32(const char* what) {
    need(4, what);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(d[p + i]);
    p += 4;
    return v;
  }
  std::uint64_t le64(const char* what) {
    need(8, what);
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(d[p + i]);
    p += 8;
    return v;
  }
  std::string str(const char* what) {
    const std::uint32_t len = be32(what);
    need(len, what);
    std::string s = d.substr(p, len);
    p += len;
    return s;
  }
};

}  // namespace

BlastDb::BlastDb(const std::string& base) : base_(base) {
  const std::string pin_path = base + ".pin", phr_path = base + ".phr", psq_path = base + ".psq";
  const std::string pin = read_binary(pin_path);
  PinCursor c{pin, pin_path};
  const std::uint32_t version = c.be32("version");
  PE_CHECK(version == 4, pin_path, ": BLAST database format version ", version,
           " is not supported (only version 4)");
  const std::uint32_t type = c.be32("database type");
  PE_CHECK(type == 1, pin_path, ": database type ", type, " is not protein (1)");
  title_ = c.str("title");
  date_ = c.str("date");
  date_.erase(date_.find_last_not_of('\0') + 1);  // the date field is padded with NULs
  const std::uint32_t n = c.be32("sequence count");
  total_ = c.le64("total residues");
  max_len_ = c.be32("max length");
  n_ = n;
  const std::size_t arrays = 2 * (static_cast<std::size_t>(n) + 1) * 4;
  PE_CHECK(pin.size() - c.p == arrays, pin_path, ": expected ", arrays, " bytes of offsets for ", n,
           " sequences after byte ", c.p, ", found ", pin.size() - c.p);
  hdr_off_.resize(n_ + 1);
  seq_off_.resize(n_ + 1);
  for (auto& o : hdr_off_) o = c.be32("header offsets");
  for (auto& o : seq_off_) o = c.be32("sequence offsets");

  phr_ = read_binary(phr_path);
  psq_ = read_binary(psq_path);

  PE_CHECK(hdr_off_[0] == 0, pin_path, ": first header offset is ", hdr_off_[0], ", not 0");
  for (std::size_t i = 0; i < n_; ++i)
    PE_CHECK(hdr_off_[i] < hdr_off_[i + 1], pin_path, ": header offsets not increasing at sequence ",
             i, " (", hdr_off_[i], " then ", hdr_off_[i + 1], ")");
  PE_CHECK(hdr_off_[n_] == phr_.size(), phr_path, ": size ", phr_.size(),
           " differs from the last header offset in ", pin_path, " (", hdr_off_[n_], ")");

  PE_CHECK(!psq_.empty() && psq_[0] == '\0', psq_path, ": does not start with a NUL byte");
  PE_CHECK(seq_off_[0] == 1, pin_path, ": first sequence offset is ", seq_off_[0], ", not 1");
  std::uint64_t total = 0;
  std::uint32_t longest = 0;
  for (std::size_t i = 0; i < n_; ++i) {
    // Each sequence is followed by a NUL, so the next offset is at least one byte further.
    PE_CHECK(seq_off_[i] < seq_off_[i + 1], pin_path, ": sequence offsets not increasing at sequence ",
             i, " (", seq_off_[i], " then ", seq_off_[i + 1], ")");
    PE_CHECK(seq_off_[i + 1] <= psq_.size(), psq_path, ": sequence ", i, " ends at byte ",
             seq_off_[i + 1], ", past the end of the file (", psq_.size(), " bytes; truncated?)");
    PE_CHECK(psq_[seq_off_[i + 1] - 1] == '\0', psq_path, ": sequence ", i,
             " is not followed by a NUL byte (at byte ", seq_off_[i + 1] - 1, ")");
    const std::uint32_t len = seq_off_[i + 1] - 1 - seq_off_[i];
    total += len;
    if (len > longest) longest = len;
  }
  PE_CHECK(seq_off_[n_] == psq_.size(), psq_path, ": size ", psq_.size(),
           " differs from the last sequence offset in ", pin_path, " (", seq_off_[n_], ")");
  PE_CHECK(total == total_, pin_path, ": header says ", total_, " residues, offsets give ", total);
  PE_CHECK(longest == max_len_, pin_path, ": header says max length ", max_len_,
           ", offsets give ", longest);
}

void BlastDb::check_oid(std::size_t oid) const {
  PE_CHECK(oid < n_, base_, ".pin: sequence ", oid, " out of range (", n_, " sequences)");
}

std::size_t BlastDb::length(std::size_t oid) const {
  check_oid(oid);
  return seq_off_[oid + 1] - 1 - seq_off_[oid];
}

std::string BlastDb::sequence(std::size_t oid) const {
  const std::size_t len = length(oid);
  const std::size_t start = seq_off_[oid];
  std::string s(len, '\0');
  for (std::size_t k = 0; k < len; ++k) {
    const auto code = static_cast<unsigned char>(psq_[start + k]);
    if (code >= kNcbiStdaaSize)
      PE_FAIL(base_, ".psq: sequence ", oid, ": residue code ", unsigned(code), " at byte ",
              start + k, " is not NCBIstdaa (0..", kNcbiStdaaSize - 1, ")");
    s[k] = kNcbiStdaa[code];
  }
  return s;
}

std::string BlastDb::defline_title(std::size_t oid) const {
  check_oid(oid);
  // Walk the BER encoding TLV by TLV: constructed values (definite or indefinite length) are
  // entered, primitive values skipped, end-of-contents octets (00 00) passed over, until the first
  // VisibleString (universal tag 26, 0x1a).
  const std::size_t begin = hdr_off_[oid], end = hdr_off_[oid + 1];
  auto fail = [&](const char* what, std::size_t at) {
    PE_FAIL(base_, ".phr: sequence ", oid, ": ", what, " at byte ", at);
  };
  std::size_t p = begin;
  while (p < end) {
    if (phr_[p] == '\0') {  // end-of-contents of an indefinite-length value
      if (p + 1 >= end || phr_[p + 1] != '\0') fail("malformed end-of-contents", p);
      p += 2;
      continue;
    }
    const std::size_t tag_at = p;
    const auto tag = static_cast<unsigned char>(phr_[p++]);
    if ((tag & 0x1f) == 0x1f) {  // high tag number: more tag bytes while bit 8 is set
      while (p < end && (static_cast<unsigned char>(phr_[p]) & 0x80)) ++p;
      ++p;
    }
    if (p >= end) fail("truncated BER tag", tag_at);
    const auto l0 = static_cast<unsigned char>(phr_[p++]);
    const bool constructed = tag & 0x20;
    std::size_t len = 0;
    bool indefinite = false;
    if (l0 < 0x80) {
      len = l0;
    } else if (l0 == 0x80) {
      if (!constructed) fail("indefinite length on a primitive value", tag_at);
      indefinite = true;
    } else {
      const int nbytes = l0 & 0x7f;
      if (nbytes > 4 || end - p < static_cast<std::size_t>(nbytes)) fail("bad BER length", tag_at);
      for (int k = 0; k < nbytes; ++k) len = (len << 8) | static_cast<unsigned char>(phr_[p++]);
    }
    if (!indefinite && end - p < len) fail("BER value runs past the defline", tag_at);
    if (tag == 0x1a) return phr_.substr(p, len);
    if (!constructed) p += len;  // constructed: continue with its first element
  }
  PE_FAIL(base_, ".phr: sequence ", oid, ": defline has no title (no VisibleString)");
}

}  // namespace pe
