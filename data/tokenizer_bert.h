#pragma once
// BERT WordPiece tokenizer, id-for-id equal to Hugging Face's BertTokenizer on the same vocab.txt
// and the same do_lower_case / strip_accents / tokenize_chinese_chars (tokenizer_config.json), and a
// WordPiece vocabulary trainer. Where HF's slow Python tokenizer (BertTokenizerLegacy in
// transformers 5) and the default Rust-backed one disagree, we follow the Rust one on casing
// (capital sigma -> U+03C3 always) and the slow one elsewhere (see tests/fixtures/tokenizer/README.md).
//
// Pipeline (as HF's BasicTokenizer + WordpieceTokenizer):
//  1. clean: drop U+0000, U+FFFD and control characters (Unicode category C*, except \t \n \r);
//     every whitespace character (\t \n \r, category Zs) becomes ' ';
//  2. put spaces around CJK ideographs (when tokenize_chinese_chars);
//  3. NFC-normalise; split on whitespace (' ', U+2028, U+2029);
//  4. per word: lower-case (simple per-character mapping; when lower_case), NFD and drop Mn marks
//     (when strip_accents, which by default follows lower_case);
//     split off every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, or category P*);
//  5. WordPiece: greedy longest match from the left, continuation pieces prefixed with "##";
//     a word of more than 100 code points, or one that cannot be covered, becomes [UNK].
// Input is UTF-8; invalid bytes are read as U+FFFD (and so dropped). As in HF, the special tokens
// [PAD] [UNK] [CLS] [SEP] [MASK] spelled out in the text (exactly, case-sensitive) are kept whole.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace pe {

// The tokenizer_config.json switches of a Hugging Face BERT folder. The defaults are those of an
// uncased BERT (and what a folder without tokenizer_config.json gets).
struct BertOptions {
  bool lower_case = true;               // do_lower_case
  int strip_accents = -1;               // strip_accents: -1 = null (follow lower_case), 0 = false, 1 = true
  bool tokenize_chinese_chars = true;   // tokenize_chinese_chars
  bool strips_accents() const { return strip_accents < 0 ? lower_case : strip_accents == 1; }
  // Reads dir/tokenizer_config.json if it exists (keys absent or null keep the defaults); throws
  // pe::Error naming the file if it is not valid JSON or a switch is not a boolean.
  static BertOptions from_hf_folder(const std::string& dir);
  // The three switches as tokenizer_config.json spells them (strip_accents null when it follows
  // lower-casing), and back from such an object; `source` names it in errors.
  nlohmann::json to_json() const;
  static BertOptions from_json(const nlohmann::json& j, const std::string& source);
};

// Steps 1-4: the words (UTF-8) that WordPiece sees. With keep_special_tokens (what the tokenizer
// does), spelled-out special tokens come out as whole words; without (what the trainer does), they
// are plain text.
std::vector<std::string> bert_basic_tokenize(std::string_view text, bool keep_special_tokens = false,
                                             const BertOptions& options = {});

class BertTokenizer {
 public:
  static constexpr size_t kMaxCharsPerWord = 100;

  // Loads a vocab.txt (one token per line, id = line number). Throws pe::Error naming the file if it
  // cannot be read or lacks one of [PAD], [UNK], [CLS], [SEP], [MASK].
  static BertTokenizer from_file(const std::string& vocab_path, const BertOptions& options = {});
  // A Hugging Face BERT folder: dir/vocab.txt with the options of dir/tokenizer_config.json.
  static BertTokenizer from_hf_folder(const std::string& dir);
  // `source` names the vocabulary in error messages.
  BertTokenizer(std::vector<std::string> vocab, std::string source, const BertOptions& options = {});

  const BertOptions& options() const { return options_; }

  // Word pieces of `text` (no [CLS]/[SEP]).
  std::vector<std::string> tokenize(std::string_view text) const;
  // [CLS] ids... [SEP]. max_len > 0 caps the total length including [CLS] and [SEP] (must be >= 2):
  // pieces past max_len - 2 are dropped, [SEP] is kept. 0 means no limit.
  std::vector<int32_t> encode(std::string_view text, size_t max_len = 512) const;
  // Tokens joined by spaces with "##" continuations glued on (HF convert_tokens_to_string);
  // skip_special drops [PAD], [CLS], [SEP], [MASK] (not [UNK]).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;

  // -1 if absent. Duplicate lines in a vocab file map to the last id (as HF's dict does).
  int32_t token_to_id(const std::string& token) const;
  const std::string& id_to_token(int32_t id) const;  // throws pe::Error when out of range
  size_t vocab_size() const { return vocab_.size(); }

  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t mask_id() const { return mask_; }

 private:
  // Appends the WordPiece ids of one basic-tokenized word.
  void wordpiece(const std::string& word, std::vector<int32_t>& out) const;

  std::string source_;
  BertOptions options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
};

// How the trainer picks the next merge of two adjacent pieces (a, b).
enum class WordpieceMergeRule {
  // count(ab): byte-pair-encoding style, as the HF `tokenizers` WordPiece trainer does. The default:
  // it merges frequent words first (about 1.3 pieces per word with a 1500-token vocab trained on
  // tests/fixtures/tokenizer/uniprot_texts.txt).
  kFrequency,
  // count(ab) / (count(a) * count(b)): the likelihood gain of the original WordPiece. It favours
  // pairs of rare pieces, so on small corpora frequent words stay split (about 3.4 pieces per word
  // on the same test).
  kScore,
};

// Trains a WordPiece vocabulary on `lines`, tokenized by bert_basic_tokenize (words longer than
// 100 code points are ignored, as they encode to [UNK] anyway). The result, in id order:
//   [PAD] [UNK] [CLS] [SEP] [MASK], every character seen (sorted), its "##" form for each,
//   then merged pieces in the order they were chosen,
// until `vocab_size` entries or no pair occurring at least `min_frequency` times is left. Ties
// are broken by the lexicographically smallest (a, b), so the output is deterministic. Every
// training word encodes without [UNK]. Throws pe::Error if `vocab_size` cannot hold the specials
// and the alphabet.
std::vector<std::string> train_wordpiece(const std::vector<std::string>& lines, size_t vocab_size,
                                         uint64_t min_frequency = 2,
                                         WordpieceMergeRule rule = WordpieceMergeRule::kFrequency);

// Writes dir/tokenizer_config.json (tokenizer class, the BertOptions switches, model_max_length,
// special tokens) and dir/special_tokens_map.json, as published Hugging Face BERT folders carry
// them, so that AutoTokenizer.from_pretrained(dir) builds the same tokenizer. Throws pe::Error
// naming the file on failure.
void write_hf_tokenizer_files(const std::string& dir, const BertOptions& options, int64_t model_max_length);

// Writes a vocab.txt (one token per line). Throws pe::Error naming the file on failure.
void write_vocab(const std::string& path, const std::vector<std::string>& vocab);

}  // namespace pe
