#pragma once
// Autoregressive generation for the generative arms (issue #12): greedy, sampling (temperature,
// top-k, top-p), beam search, repetition penalty, allowed/banned tokens, minimum and maximum length,
// seeded. The search runs on the host over next-token logits that a DecodeSession computes; the
// session owns the model state (the decoder, its conditioning memory and, when it has one, the KV
// cache), so the search is independent of how the logits are computed and is tested with
// hand-built sessions.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "decoders/decoder.h"

namespace pe {

// Rows of sequences being decoded. Every row starts empty; step() appends one token to every row
// and returns the logits of the next token for each row.
class DecodeSession {
 public:
  virtual ~DecodeSession() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Appends tokens[r] to row r (tokens.size() == rows()) and returns logits [rows, V], row-major.
  virtual std::vector<float> step(const std::vector<int64_t>& tokens) = 0;
  // Rebuilds the rows: new row i continues old row parent[i] (any length; parents may repeat).
  virtual void reorder(const std::vector<int64_t>& parent) = 0;
};

// The decoder conditioned on memory [B, Lm, memory_dim] (+ mask [B, Lm] or undefined): one row per
// memory row at start. Each step recomputes the decoder over the whole prefix (no cache); it is the
// reference the cached session is tested against.
std::unique_ptr<DecodeSession> make_recompute_session(const Decoder& decoder, const Tensor& memory,
                                                      const Tensor& memory_mask);

struct GenerateOptions {
  enum class Strategy { Greedy, Sample, Beam };
  Strategy strategy = Strategy::Greedy;
  int64_t max_new_tokens = 64;  // tokens generated per sequence, the end token included
  int64_t min_new_tokens = 0;   // the end token is barred before this many tokens
  double temperature = 1.0;     // sampling: logits / temperature
  int64_t top_k = 0;            // sampling: keep the k most likely tokens (0: all)
  double top_p = 1.0;           // sampling: keep the smallest set whose probability reaches p
  double repetition_penalty = 1.0;  // > 1 discourages tokens already in the sequence (CTRL / HF rule)
  int64_t num_beams = 4;        // beam search width
  double length_penalty = 1.0;  // beam search: a finished hypothesis scores sum(log p) / length^length_penalty
  int64_t num_return = 1;       // sequences returned per input (samples, or the best beams)
  uint64_t seed = 0;            // sampling: input i draws from its own stream (seed, i)
  int64_t bos_id = 0, eos_id = 0;
  std::vector<int64_t> allowed;  // when not empty, only these tokens and the end token can be generated
  std::vector<int64_t> banned;   // never generated (padding, start, mask, unknown, ...)
  // Throws pe::Error naming the option for an out-of-range value.
  void validate(int64_t vocab_size) const;
  static Strategy parse_strategy(const std::string& name);  // greedy | sample | beam
};

struct Generated {
  std::vector<int64_t> tokens;  // generated tokens, without the start token and without the end token
  double logprob = 0;           // sum of the log-probabilities of the chosen tokens (after processing)
  double score = 0;             // what the search ranked by (beam: logprob / length^length_penalty)
  bool finished = false;        // ended with the end token (false: stopped at max_new_tokens)
};

// Generates for each of the session's rows (its inputs); result[i] holds num_return sequences of
// input i, best first for beam search. The session is reordered as the search needs (it ends with
// inputs * num_return or inputs * num_beams rows).
std::vector<std::vector<Generated>> generate(DecodeSession& session, const GenerateOptions& opt);

}  // namespace pe
