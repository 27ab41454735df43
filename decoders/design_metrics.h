#pragma once
// Metrics of designed proteins for the "design" arm (issue #12): validity, diversity, the ProteinDT
// retrieval protocol, and the random-sequence baseline. Pure functions of sequences and score
// matrices; like text_metrics they need nothing of the engine (they live in the protst_data
// library). Novelty (highest identity to any training protein) needs mmseqs and is computed in
// app/design_eval.cpp with data/go_dataset.h's best_train_hits, the search of the held-out split.
//
// Sequences are strings of one-letter residue codes (upper case).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pe {

// The 20 standard amino acids, in this order (the index of residue_frequencies).
inline constexpr char kStandardResidues[] = "ACDEFGHIKLMNPQRSTVWY";

// True when s is non-empty and every letter is one of the 20 standard amino acids.
bool is_standard_protein(const std::string& s);

struct LengthSummary {
  int64_t n = 0;
  double mean = 0, sd = 0;                        // sd: population standard deviation
  double min = 0, p5 = 0, median = 0, p95 = 0, max = 0;  // quantiles: linear interpolation (numpy's default)
};
LengthSummary length_summary(const std::vector<std::string>& seqs);

// Two-sample Kolmogorov-Smirnov statistic: the largest difference between the two empirical
// distribution functions (0 = same distribution, 1 = disjoint). Throws when either side is empty.
double ks_statistic(std::vector<double> a, std::vector<double> b);

// Frequencies of the 20 standard residues over all sequences (other letters are not counted);
// all zero when there are none.
std::array<double, 20> residue_frequencies(const std::vector<std::string>& seqs);

// Total variation distance of two distributions: half the L1 distance (0 = equal, 1 = disjoint).
double total_variation(const std::array<double, 20>& p, const std::array<double, 20>& q);

// Validity of generated sequences next to reference (e.g. training) sequences.
struct Validity {
  int64_t sequences = 0;
  int64_t valid = 0;          // is_standard_protein
  double valid_share = 0;     // valid / sequences
  LengthSummary lengths;      // of all generated sequences
  double length_ks = 0;       // ks_statistic of the lengths against the reference lengths
  double composition_tv = 0;  // total_variation of the residue frequencies against the reference's
};
Validity validity(const std::vector<std::string>& seqs, const std::vector<std::string>& reference);

// Global alignment of two proteins (Gotoh, affine gaps) with EMBOSS needle's default scoring:
// BLOSUM62, gap open 10, gap extend 0.5 (a gap of length g costs 10 + 0.5 (g - 1)), end gaps
// penalised like inner gaps; letters outside BLOSUM62's alphabet score as X. Of the optimal
// alignments, the one with the most identical pairs is taken. identity = identical pairs / alignment
// columns (columns include gaps), 0 when both sequences are empty.
struct Alignment {
  int64_t score2 = 0;  // alignment score x 2 (integer: the extension costs 0.5)
  int64_t identical = 0, columns = 0;
  double identity = 0;
};
Alignment global_alignment(const std::string& a, const std::string& b);

// Mean global_alignment identity over all unordered pairs of seqs (diversity: lower = more
// diverse). Returns -1 when there are fewer than two sequences.
double mean_pairwise_identity(const std::vector<std::string>& seqs);

// ProteinDT's retrieval protocol (Liu et al. 2023, "text-to-protein retrieval"): a generated protein
// i succeeds when the judge scores its own prompt own[i] strictly above each of T other prompts drawn
// uniformly without replacement from the remaining M-1 prompts (scores[i][j]: protein i vs prompt j,
// M = scores[i].size()). Returned is the exact expectation over the draws, averaged over proteins:
// with k = number of other prompts scoring strictly below the own one, a protein succeeds with
// probability C(k, T) / C(M-1, T). Chance level is 1 / (T+1) (without ties). Throws when T < 1,
// M - 1 < T, an own index is out of range, or rows differ in length.
double retrieval_share(const std::vector<std::vector<float>>& scores, const std::vector<int64_t>& own, int64_t T);

// Random proteins for the baseline: n sequences whose lengths are drawn uniformly (with replacement)
// from `lengths` and whose residues are drawn independently from `frequencies` (over
// kStandardResidues; need not be normalised). Deterministic in seed (std::mt19937_64 words, own
// inverse-CDF sampling, so the same on every platform).
std::vector<std::string> random_sequences(int64_t n, const std::array<double, 20>& frequencies,
                                          const std::vector<int64_t>& lengths, uint64_t seed);

}  // namespace pe
