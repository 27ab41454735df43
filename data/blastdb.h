#pragma once
// Decoder for NCBI BLAST protein databases, format version 4 (the files formatdb/makeblastdb
// write as <base>.pin, <base>.phr, <base>.psq), as shipped e.g. in Debian's metastudent-data.
//
// .pin  big-endian u32 version (must be 4), u32 type (must be 1 = protein), u32 title length +
//       title, u32 date length + date (NUL padding stripped), u32 count n, little-endian u64 total
//       residues, big-endian u32 max length, then two big-endian u32 arrays of n+1 offsets: into
//       .phr, then into .psq. Nothing may follow.
// .psq  residues as NCBIstdaa codes (code = index into kNcbiStdaa); the file starts with a NUL and
//       every sequence is followed by one NUL, so sequence i is bytes [seq[i], seq[i+1]-1).
// .phr  one ASN.1 BER Blast-def-line-set per sequence, bytes [hdr[i], hdr[i+1]); the title is the
//       first VisibleString (tag 0x1a) in it.
// The constructor validates everything it can without decoding (version, type, sizes, offsets
// monotone and inside the files, the NUL separators, total and max length against the offsets);
// sequence() and title() validate the bytes they decode. Every error is a pe::Error naming the
// file (and the sequence's ordinal id where it is about one sequence).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pe {

// NCBIstdaa: code -> letter.
inline constexpr char kNcbiStdaa[] = "-ABCDEFGHIKLMNPQRSTVWXYZU*OJ";
inline constexpr std::size_t kNcbiStdaaSize = sizeof(kNcbiStdaa) - 1;  // 28

class BlastDb {
 public:
  // `base` is the path without extension ("…/MFO/goasp.fasta" for goasp.fasta.pin/.phr/.psq).
  explicit BlastDb(const std::string& base);

  std::size_t size() const { return n_; }
  const std::string& title() const { return title_; }
  const std::string& date() const { return date_; }
  std::uint64_t total_residues() const { return total_; }
  std::uint32_t max_length() const { return max_len_; }

  std::size_t length(std::size_t oid) const;
  // Residues of sequence `oid` as letters (codes above 27 are an error).
  std::string sequence(std::size_t oid) const;
  // Title of sequence `oid`'s first defline, e.g. "B0RED7|GO:0046933,GO:0046933".
  std::string defline_title(std::size_t oid) const;

 private:
  void check_oid(std::size_t oid) const;

  std::string base_;
  std::string title_, date_;
  std::size_t n_ = 0;
  std::uint64_t total_ = 0;
  std::uint32_t max_len_ = 0;
  std::vector<std::uint32_t> hdr_off_, seq_off_;
  std::string phr_, psq_;
};

}  // namespace pe
