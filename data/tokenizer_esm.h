#pragma once
// The ESM-2 protein alphabet (33 tokens, fixed order, SPEC §1) and the encoding of a protein
// sequence as `<cls> residues <eos>`.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pe::esm {

constexpr int32_t kCls = 0;
constexpr int32_t kPad = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kUnk = 3;
constexpr int32_t kMask = 32;
constexpr int32_t kVocabSize = 33;

// Token strings by id: <cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>
const std::array<std::string_view, kVocabSize>& alphabet();

// Id of a token string ("A", "<mask>", ...), or -1 if it is not in the alphabet.
int32_t token_id(std::string_view token);

// Encodes a protein sequence (UTF-8) as <cls> ids... <eos>.
//  - ASCII letters are upper-cased; whitespace is skipped;
//  - a special token written out in full (<mask>, <unk>, <pad>, <cls>, <eos>, <null_1>) is one token;
//  - any other character (J, digits, '*', a stray '<', a non-ASCII code point) is unknown; a run of
//    unknown characters not broken by whitespace or a known token is one <unk> (as HF's
//    EsmTokenizer). Unlike HF, lower-case ASCII letters are residues (HF: unknown);
//  - max_len > 0 caps the total length including <cls> and <eos> (must be >= 2): residues past
//    max_len - 2 are dropped and <eos> is kept.
std::vector<int32_t> encode(std::string_view sequence, size_t max_len = 0);

// Concatenates the token strings of `ids`; with skip_special, drops <cls>, <pad>, <eos>, <mask>,
// <unk> and <null_1>. Throws pe::Error for an id outside [0, 33).
std::string decode(const std::vector<int32_t>& ids, bool skip_special = false);

}  // namespace pe::esm
