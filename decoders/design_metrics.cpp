#include "decoders/design_metrics.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "core/error.h"

namespace pe {

bool is_standard_protein(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c == '\0' || std::string(kStandardResidues).find(c) == std::string::npos) return false;
  return true;
}

namespace {

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

int residue_index(char c) {
  const char* p = std::char_traits<char>::find(kStandardResidues, 20, c);
  return p ? int(p - kStandardResidues) : -1;
}

}  // namespace

LengthSummary length_summary(const std::vector<std::string>& seqs) {
  LengthSummary s;
  s.n = int64_t(seqs.size());
  if (seqs.empty()) return s;
  std::vector<double> l;
  for (const std::string& x : seqs) l.push_back(double(x.size()));
  std::sort(l.begin(), l.end());
  double sum = 0, sq = 0;
  for (double v : l) sum += v;
  s.mean = sum / double(l.size());
  for (double v : l) sq += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(sq / double(l.size()));
  s.min = l.front();
  s.max = l.back();
  s.p5 = quantile(l, 0.05);
  s.median = quantile(l, 0.5);
  s.p95 = quantile(l, 0.95);
  return s;
}

double ks_statistic(std::vector<double> a, std::vector<double> b) {
  PE_CHECK(!a.empty() && !b.empty(), "ks_statistic: both samples must be non-empty");
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::fabs(double(i) / double(a.size()) - double(j) / double(b.size())));
  }
  return d;
}

std::array<double, 20> residue_frequencies(const std::vector<std::string>& seqs) {
  std::array<double, 20> f{};
  double n = 0;
  for (const std::string& s : seqs)
    for (char c : s) {
      const int k = residue_index(c);
      if (k >= 0) f[size_t(k)] += 1, n += 1;
    }
  if (n > 0)
    for (double& v : f) v /= n;
  return f;
}

double total_variation(const std::array<double, 20>& p, const std::array<double, 20>& q) {
  double d = 0;
  for (size_t k = 0; k < 20; ++k) d += std::fabs(p[k] - q[k]);
  return d / 2;
}

Validity validity(const std::vector<std::string>& seqs, const std::vector<std::string>& reference) {
  Validity v;
  v.sequences = int64_t(seqs.size());
  for (const std::string& s : seqs) v.valid += is_standard_protein(s) ? 1 : 0;
  v.valid_share = seqs.empty() ? 0 : double(v.valid) / double(seqs.size());
  v.lengths = length_summary(seqs);
  if (!seqs.empty() && !reference.empty()) {
    std::vector<double> a, b;
    for (const std::string& s : seqs) a.push_back(double(s.size()));
    for (const std::string& s : reference) b.push_back(double(s.size()));
    v.length_ks = ks_statistic(a, b);
  }
  v.composition_tv = total_variation(residue_frequencies(seqs), residue_frequencies(reference));
  return v;
}

// ---------------------------------------------------------------- alignment

namespace {

// EMBOSS's EBLOSUM62 (the matrix of `needle`), rows and columns in the order of kBlosumLetters.
constexpr char kBlosumLetters[] = "ARNDCQEGHILKMFPSTWYVBZX*";
constexpr int kBlosum62[24][24] = {
    { 4, -1, -2, -2,  0, -1, -1,  0, -2, -1, -1, -1, -1, -2, -1,  1,  0, -3, -2,  0, -2, -1,  0, -4},  // A
    {-1,  5,  0, -2, -3,  1,  0, -2,  0, -3, -2,  2, -1, -3, -2, -1, -1, -3, -2, -3, -1,  0, -1, -4},  // R
    {-2,  0,  6,  1, -3,  0,  0,  0,  1, -3, -3,  0, -2, -3, -2,  1,  0, -4, -2, -3,  3,  0, -1, -4},  // N
    {-2, -2,  1,  6, -3,  0,  2, -1, -1, -3, -4, -1, -3, -3, -1,  0, -1, -4, -3, -3,  4,  1, -1, -4},  // D
    { 0, -3, -3, -3,  9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1, -3, -3, -2, -4},  // C
    {-1,  1,  0,  0, -3,  5,  2, -2,  0, -3, -2,  1,  0, -3, -1,  0, -1, -2, -1, -2,  0,  3, -1, -4},  // Q
    {-1,  0,  0,  2, -4,  2,  5, -2,  0, -3, -3,  1, -2, -3, -1,  0, -1, -3, -2, -2,  1,  4, -1, -4},  // E
    { 0, -2,  0, -1, -3, -2, -2,  6, -2, -4, -4, -2, -3, -3, -2,  0, -2, -2, -3, -3, -1, -2, -1, -4},  // G
    {-2,  0,  1, -1, -3,  0,  0, -2,  8, -3, -3, -1, -2, -1, -2, -1, -2, -2,  2, -3,  0,  0, -1, -4},  // H
    {-1, -3, -3, -3, -1, -3, -3, -4, -3,  4,  2, -3,  1,  0, -3, -2, -1, -3, -1,  3, -3, -3, -1, -4},  // I
    {-1, -2, -3, -4, -1, -2, -3, -4, -3,  2,  4, -2,  2,  0, -3, -2, -1, -2, -1,  1, -4, -3, -1, -4},  // L
    {-1,  2,  0, -1, -3,  1,  1, -2, -1, -3, -2,  5, -1, -3, -1,  0, -1, -3, -2, -2,  0,  1, -1, -4},  // K
    {-1, -1, -2, -3, -1,  0, -2, -3, -2,  1,  2, -1,  5,  0, -2, -1, -1, -1, -1,  1, -3, -1, -1, -4},  // M
    {-2, -3, -3, -3, -2, -3, -3, -3, -1,  0,  0, -3,  0,  6, -4, -2, -2,  1,  3, -1, -3, -3, -1, -4},  // F
    {-1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4,  7, -1, -1, -4, -3, -2, -2, -1, -2, -4},  // P
    { 1, -1,  1,  0, -1,  0,  0,  0, -1, -2, -2,  0, -1, -2, -1,  4,  1, -3, -2, -2,  0,  0,  0, -4},  // S
    { 0, -1,  0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1,  1,  5, -2, -2,  0, -1, -1,  0, -4},  // T
    {-3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1,  1, -4, -3, -2, 11,  2, -3, -4, -3, -2, -4},  // W
    {-2, -2, -2, -3, -2, -1, -2, -3,  2, -1, -1, -2, -1,  3, -3, -2, -2,  2,  7, -1, -3, -2, -1, -4},  // Y
    { 0, -3, -3, -3, -1, -2, -2, -3, -3,  3,  1, -2,  1, -1, -2, -2,  0, -3, -1,  4, -3, -2, -1, -4},  // V
    {-2, -1,  3,  4, -3,  0,  1, -1,  0, -3, -4,  0, -3, -3, -2,  0, -1, -4, -3, -3,  4,  1, -1, -4},  // B
    {-1,  0,  0,  1, -3,  3,  4, -2,  0, -3, -3,  1, -1, -3, -1,  0, -1, -3, -2, -2,  1,  4, -1, -4},  // Z
    { 0, -1, -1, -1, -2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -2,  0,  0, -2, -1, -1, -1, -1, -1, -4},  // X
    {-4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4,  1},  // *
};

int blosum_index(char c) {
  if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  const char* p = std::char_traits<char>::find(kBlosumLetters, 24, c);
  return p ? int(p - kBlosumLetters) : 22;  // X
}

struct Cell {
  int64_t s;
  int64_t id, col;
};
constexpr int64_t kNeg = INT64_MIN / 4;
// Higher score wins; of equal scores, more identical pairs.
inline const Cell& better(const Cell& x, const Cell& y) {
  if (x.s != y.s) return x.s > y.s ? x : y;
  return x.id >= y.id ? x : y;
}

}  // namespace

Alignment global_alignment(const std::string& a, const std::string& b) {
  constexpr int64_t kOpen = 20, kExtend = 1;  // x 2: open 10, extend 0.5
  const size_t n = a.size(), m = b.size();
  Alignment out;
  if (n == 0 && m == 0) return out;
  std::vector<int> ai(n), bi(m);
  for (size_t i = 0; i < n; ++i) ai[i] = blosum_index(a[i]);
  for (size_t j = 0; j < m; ++j) bi[j] = blosum_index(b[j]);
  // M: ends in an aligned pair; X: ends in a[i] against a gap; Y: ends in b[j] against a gap.
  const Cell none{kNeg, 0, 0};
  std::vector<Cell> Mp(m + 1, none), Xp(m + 1, none), Yp(m + 1, none), Mc(m + 1), Xc(m + 1), Yc(m + 1);
  Mp[0] = {0, 0, 0};
  for (size_t j = 1; j <= m; ++j) Yp[j] = {-(kOpen + kExtend * int64_t(j - 1)), 0, int64_t(j)};
  auto add = [](const Cell& c, int64_t ds, int64_t did) {
    return c.s <= kNeg ? Cell{kNeg, 0, 0} : Cell{c.s + ds, c.id + did, c.col + 1};
  };
  for (size_t i = 1; i <= n; ++i) {
    Mc[0] = none;
    Yc[0] = none;
    Xc[0] = {-(kOpen + kExtend * int64_t(i - 1)), 0, int64_t(i)};
    for (size_t j = 1; j <= m; ++j) {
      const int64_t sub = 2 * kBlosum62[ai[i - 1]][bi[j - 1]];
      const int64_t same = a[i - 1] == b[j - 1] ? 1 : 0;
      Mc[j] = add(better(better(Mp[j - 1], Xp[j - 1]), Yp[j - 1]), sub, same);
      Xc[j] = better(better(add(Mp[j], -kOpen, 0), add(Xp[j], -kExtend, 0)), add(Yp[j], -kOpen, 0));
      Yc[j] = better(better(add(Mc[j - 1], -kOpen, 0), add(Yc[j - 1], -kExtend, 0)), add(Xc[j - 1], -kOpen, 0));
    }
    std::swap(Mp, Mc);
    std::swap(Xp, Xc);
    std::swap(Yp, Yc);
  }
  const Cell& best = better(better(Mp[m], Xp[m]), Yp[m]);
  out.score2 = best.s;
  out.identical = best.id;
  out.columns = best.col;
  out.identity = best.col > 0 ? double(best.id) / double(best.col) : 0;
  return out;
}

double mean_pairwise_identity(const std::vector<std::string>& seqs) {
  if (seqs.size() < 2) return -1;
  double sum = 0;
  int64_t pairs = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (size_t j = i + 1; j < seqs.size(); ++j) {
      sum += global_alignment(seqs[i], seqs[j]).identity;
      ++pairs;
    }
  return sum / double(pairs);
}

// ---------------------------------------------------------------- retrieval

double retrieval_share(const std::vector<std::vector<float>>& scores, const std::vector<int64_t>& own, int64_t T) {
  PE_CHECK(T >= 1, "retrieval_share: T = ", T, " must be at least 1");
  PE_CHECK(scores.size() == own.size(), "retrieval_share: ", scores.size(), " score rows but ", own.size(),
           " own-prompt indices");
  PE_CHECK(!scores.empty(), "retrieval_share: no proteins");
  const size_t M = scores[0].size();
  PE_CHECK(int64_t(M) - 1 >= T, "retrieval_share: T = ", T, " needs at least ", T + 1, " prompts, have ", M);
  double total = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    PE_CHECK(scores[i].size() == M, "retrieval_share: row ", i, " has ", scores[i].size(), " scores, row 0 has ", M);
    PE_CHECK(own[i] >= 0 && size_t(own[i]) < M, "retrieval_share: own prompt ", own[i], " of protein ", i,
             " is not in [0, ", M, ")");
    const float mine = scores[i][size_t(own[i])];
    int64_t below = 0;
    for (size_t j = 0; j < M; ++j)
      if (j != size_t(own[i]) && scores[i][j] < mine) ++below;
    // C(below, T) / C(M-1, T) = prod_{t<T} (below - t) / (M - 1 - t)
    double p = 1;
    for (int64_t t = 0; t < T; ++t) p *= double(std::max<int64_t>(0, below - t)) / double(int64_t(M) - 1 - t);
    total += p;
  }
  return total / double(scores.size());
}

// ---------------------------------------------------------------- random baseline

std::vector<std::string> random_sequences(int64_t n, const std::array<double, 20>& frequencies,
                                          const std::vector<int64_t>& lengths, uint64_t seed) {
  PE_CHECK(n >= 0, "random_sequences: n = ", n);
  PE_CHECK(!lengths.empty() || n == 0, "random_sequences: no lengths to draw from");
  std::array<double, 20> cdf{};
  double sum = 0;
  for (size_t k = 0; k < 20; ++k) {
    PE_CHECK(frequencies[k] >= 0 && std::isfinite(frequencies[k]), "random_sequences: frequency of ",
             kStandardResidues[k], " is ", frequencies[k]);
    sum += frequencies[k];
    cdf[k] = sum;
  }
  PE_CHECK(sum > 0 || n == 0, "random_sequences: all residue frequencies are zero");
  std::mt19937_64 rng(seed);
  auto uniform = [&rng] { return double(rng() >> 11) * 0x1.0p-53; };  // [0, 1)
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = lengths[size_t(rng() % lengths.size())];
    std::string s(size_t(std::max<int64_t>(0, len)), 'A');
    for (char& c : s) {
      const double u = uniform() * sum;
      size_t k = size_t(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      c = kStandardResidues[std::min<size_t>(k, 19)];
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace pe
