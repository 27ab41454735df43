#pragma once
// Builds the real protein–text training data offline, from Debian packages only (DATA.md):
// Swiss-Prot sequences with GO annotations (metastudent-data, 2014) as
//   {"id": ACC, "seq": ..., "text": "Molecular function: a; b. Biological process: c. Cellular component: d."}
// split into train.jsonl / test.jsonl by sequence clusters, then filtered by search so that no test
// protein has a training protein at >= split_identity (50 %) identity over >= 80 % of the test or
// the training protein, as far as `mmseqs easy-search -s 5.7` (survivors again at -e 10) finds,
// nor the same sequence.
//
// Steps (progress lines go to stderr, tool output to <cache_dir>/logs/):
//  1. `apt-get download metastudent-data emboss-data mmseqs2 libgzstream0` into <cache_dir>/debs
//     (packages already there are not downloaded again), `dpkg-deb -x` each into <cache_dir>/root
//     (nothing is installed on the system).
//  2. Decode the three ontology BLAST databases (MFO, BPO, CCO; data/blastdb.h) and union the
//     proteins by accession (the title's text before '|').
//  3. Cluster all union proteins (a protein with a residue outside A-Z is dropped and counted)
//     with the package's mmseqs (mmseqs-avx2 when the CPU has AVX2,
//     else the best of avx, sse4.1, ssse3, sse3; LD_LIBRARY_PATH at the unpacked libgzstream):
//     `easy-linclust all.fasta clu tmp --min-seq-id 0.5 -c 0.8 --cov-mode 1`. The result is cached
//     in <cache_dir>/cluster-id<..>-c<..>/ together with a hash of the input, and reused while the
//     sequences and parameters are the same.
//  4. Read each ontology's goasp_annot.dat (ACC<TAB>GO:id...) and nameMapping.txt (GO:id<TAB>name);
//     the text lists the term names per aspect, sorted and de-duplicated (go_text() in records.h).
//  5. A cluster goes to test when stable_hash(representative accession) / 2^64 < test_fraction,
//     so whole clusters land on one side and the split does not depend on the input order.
//  5b. Homology filter (linclust assigns members greedily and does not guarantee that two clusters
//     share no pair above its threshold, so a cluster split alone leaks homologs): every test
//     candidate is searched against all training sequences (best_train_hits(): mmseqs easy-search
//     -s split_sensitivity, no identity floor; the survivors a second time at -e 10, because
//     e-values grow with the training set and a short peptide's 60-80 % hit against 491k training
//     sequences is not reported at the default 1e-3) and a test protein is dropped (not moved to train)
//     when its sequence equals a training sequence or a training hit reaches split_identity over
//     >= split_coverage of the test or of the training protein. The search runs on the full split
//     before the length filter and the subsets, so every subset is clean; it is cached in
//     <cache_dir>/search-.../ like the clusters (it does not depend on split_identity).
//  6. Length policy: a protein longer than max_seq_len residues (when > 0) is dropped after the
//     split; it is not cropped (training crops at a random offset, SPEC §3), and the clusters are
//     computed on all proteins so the filter cannot move a cluster across the split.
//  7. Optional subsets for the quick start: keep the subset_train train pairs and subset_test test
//     pairs with the smallest stable_hash(accession, kSubsetSalt): deterministic, spread over
//     clusters, and independent of the cluster hash used in step 5.
//  8. Write <out_dir>/train.jsonl, test.jsonl (sorted by accession), test_identity.tsv (each
//     written test protein's closest training protein and identity), split_identity.tsv (the
//     distribution of that highest identity, candidates before the filter and the written test
//     file, in buckets) and, last, manifest.json with the options, counts, the filter's counts and
//     distribution, source package versions and the mmseqs commands.
// A call whose <out_dir>/manifest.json records the same options (and whose JSONL files exist)
// returns at once without touching anything else.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/records.h"

namespace pe {

struct GoDatasetOptions {
  // Downloads, unpacked packages (~1.3 GB), clusters; relative paths are taken from the current
  // folder ("datasets/" is git-ignored in the repository).
  std::string cache_dir = "datasets/go";
  std::string out_dir;                    // "" = <cache_dir>/<go_dataset_default_name(options)>
  double test_fraction = 0.05;            // fraction of clusters assigned to test, in (0, 1)
  std::size_t max_seq_len = 0;            // 0 = keep every length (see step 6)
  std::size_t subset_train = 0;           // 0 = all train pairs
  std::size_t subset_test = 0;            // 0 = all test pairs
  double min_seq_id = 0.5;                // mmseqs --min-seq-id
  double coverage = 0.8;                  // mmseqs -c (with --cov-mode 1: of the member)
  // Homology filter of the split (step 5b). split_identity = 0 turns it off (the plain cluster
  // split, which leaks homologs); kStrictSplitIdentity is the low-homology preset.
  double split_identity = 0.5;            // drop a test protein with a training hit >= this identity
  double split_coverage = 0.8;            // ... covering >= this of the test or the training protein
  // mmseqs -s of the search: 5.7 (mmseqs' default) finds >= 50 % hits; the strict preset uses
  // kStrictSplitSensitivity. On a shared 2-core VM the full split's first pass took 39 min at 5.7
  // (24,882 candidates against 491,489 training sequences); the 7.5 prefilter was on course for ~45 min alone.
  double split_sensitivity = 5.7;
  int threads = 0;                        // mmseqs --threads; 0 = mmseqs' default (all cores)
  bool progress = true;                   // progress lines on stderr
};

struct GoDatasetResult {
  std::string out_dir, train_path, test_path, manifest_path;
  std::size_t train_pairs = 0, test_pairs = 0;
  bool cached = false;  // true when an earlier build with the same options was reused
};

// Runs (or reuses) the whole build described above. Throws pe::Error naming the step, the file or
// the command (with the tail of its log) on failure.
GoDatasetResult build_go_dataset(const GoDatasetOptions& opt);

// Low-homology split preset (Prot2Text's split uses CD-HIT at 40 %).
inline constexpr double kStrictSplitIdentity = 0.3;
inline constexpr double kStrictSplitSensitivity = 7.5;  // remote homologs need the most sensitive prefilter

// The options that determine the output, as the JSON text stored under "options" in manifest.json.
std::string go_dataset_options_json(const GoDatasetOptions& opt);
// Default output folder name for the options, e.g. "pairs_held50",
// "pairs_maxlen1024_sub2000x200_held50", "pairs_held30" (strict), "pairs_unfiltered".
std::string go_dataset_default_name(const GoDatasetOptions& opt);

// ---- pieces of the split, exposed for tests

// 64-bit FNV-1a of `s` (started from the FNV offset basis xor `salt`), finished with the
// MurmurHash3 64-bit finaliser so that every output bit depends on every input byte.
std::uint64_t stable_hash(std::string_view s, std::uint64_t salt = 0);
inline constexpr std::uint64_t kSubsetSalt = 0x5eb5e7ULL;

// True when the cluster whose representative is `rep` belongs to the test split.
bool is_test_cluster(std::string_view rep, double test_fraction);

// Reads mmseqs' "<prefix>_cluster.tsv" (representative<TAB>member per line) into
// member -> representative. Errors name file:line.
std::unordered_map<std::string, std::string> read_clusters(const std::string& tsv_path);

// Moves each record to `train` or `test` by its cluster (`member_to_rep` must hold every id; a
// missing id is a pe::Error). Output keeps the input order.
void split_by_cluster(std::vector<ProteinRecord>&& records,
                      const std::unordered_map<std::string, std::string>& member_to_rep,
                      double test_fraction, std::vector<ProteinRecord>& train,
                      std::vector<ProteinRecord>& test);

// Keeps the `n` records with the smallest stable_hash(id, kSubsetSalt), in their input order
// (n = 0 or n >= size keeps all).
void keep_subset(std::vector<ProteinRecord>& records, std::size_t n);

// ---- the package's mmseqs and the homology check of a split

struct Mmseqs {
  std::string binary;           // e.g. <cache>/root/usr/bin/mmseqs-avx2
  std::string ld_library_path;  // folder of the unpacked libgzstream.so.0
  std::string log;              // tool output is appended here
  std::string version;          // of the mmseqs2 package
  int threads = 0;              // --threads; 0 = mmseqs' default (all cores)
};

// Downloads (apt-get download, when missing) and unpacks only mmseqs2 and libgzstream0 under
// cache_dir, as step 1 does; used by the split check and the tests.
Mmseqs prepare_mmseqs(const std::string& cache_dir, bool progress = false);

// Runs `<binary> args... [--threads N]` in cwd with its output appended to mm.log; a non-zero exit
// is a pe::Error with the log's tail.
void run_mmseqs(const Mmseqs& mm, const std::vector<std::string>& args, const std::string& cwd);

// Runs `mmseqs easy-linclust all.fasta clu tmp --min-seq-id ID -c COV --cov-mode 1` in work_dir
// (created; emptied of mmseqs' files afterwards) and returns member -> representative.
std::unordered_map<std::string, std::string> linclust(const Mmseqs& mm, const std::vector<ProteinRecord>& records,
                                                      const std::string& work_dir, double min_seq_id,
                                                      double coverage);

// A test protein's closest training protein.
struct TrainHit {
  std::string target;     // training id ("" when only `identical` is known)
  double identity = 0;    // mmseqs fident: identical residues / alignment length
  double qcov = 0, tcov = 0;  // alignment coverage of the test / the training protein
  bool identical = false;     // the test sequence equals a training sequence
};

struct SplitSearchOptions {
  double coverage = 0.8;     // a hit counts when it covers >= this of the test OR the train protein
  double sensitivity = 5.7;  // mmseqs -s
  // mmseqs -e; 0 = mmseqs' default 1e-3. E-values grow with the training set, so against a large
  // one a short peptide's 60-80 % hit is not reported at 1e-3: the build's second pass uses 10.
  double evalue = 0;
};

// Searches every test sequence against all training sequences (`mmseqs easy-search test.fasta
// train.fasta hits.m8 tmp -s S --format-output query,target,fident,qcov,tcov`, default e-value
// 1e-3, no identity floor) in work_dir and returns, per test id, the counted hit with the highest
// identity (ties: higher coverage). Test ids without a counted hit are absent unless their
// sequence equals a training sequence (found by comparing sequences, not by the search: then
// identical = true, identity = 1). Ids must be unique per side.
std::unordered_map<std::string, TrainHit> best_train_hits(const Mmseqs& mm, const std::vector<ProteinRecord>& train,
                                                          const std::vector<ProteinRecord>& test,
                                                          const std::string& work_dir, const SplitSearchOptions& opt);

// True when the hit makes the test protein leak: an identical sequence, or identity >= threshold.
bool is_leaky(const TrainHit& hit, double identity_threshold);

// Drops the leaky test records (keeping the order); counts them as identical or homolog.
void drop_leaky(std::vector<ProteinRecord>& test, const std::unordered_map<std::string, TrainHit>& hits,
                double identity_threshold, std::size_t& removed_identical, std::size_t& removed_homolog);

// Distribution of each test protein's highest identity to training.
struct IdentityDistribution {
  // Buckets, in this order: "identical", ">=90%", "70-90%", "50-70%", "40-50%", "30-40%", "<30%",
  // "no hit" (identity in [lo, hi); an identical sequence counts only as "identical").
  static const std::vector<std::string>& bucket_names();
  std::vector<std::size_t> buckets = std::vector<std::size_t>(8, 0);
  std::vector<std::size_t> histogram = std::vector<std::size_t>(50, 0);  // 2 % bins of identity
  std::size_t proteins = 0, no_hit = 0;
  void add(const TrainHit* hit);  // nullptr = no hit
};
IdentityDistribution identity_distribution(const std::vector<ProteinRecord>& test,
                                           const std::unordered_map<std::string, TrainHit>& hits);
// {"proteins": n, "no_hit": n, "buckets": {"identical": n, ...}, "histogram_2pct": [..]}
std::string identity_distribution_json(const IdentityDistribution& d);

// `protst dataset --check-split`: a user's own split, checked without changing the files.
struct SplitCheckReport {
  std::size_t train = 0, test = 0;
  std::vector<std::pair<ProteinRecord, TrainHit>> leaky;  // test records at or above the threshold
  IdentityDistribution distribution;
};
SplitCheckReport check_split(const Mmseqs& mm, const std::vector<ProteinRecord>& train,
                             const std::vector<ProteinRecord>& test, const std::string& work_dir,
                             double identity_threshold, const SplitSearchOptions& opt);

}  // namespace pe
