#pragma once
// Builds the real protein–text training data offline, from Debian packages only (DATA.md):
// Swiss-Prot sequences with GO annotations (metastudent-data, 2014) as
//   {"id": ACC, "seq": ..., "text": "Molecular function: a; b. Biological process: c. Cellular component: d."}
// split into train.jsonl / test.jsonl by sequence clusters, so no test protein has a close
// homologue (>= 50 % identity over 80 % of its length) in train.
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
//  6. Length policy: a protein longer than max_seq_len residues (when > 0) is dropped after the
//     split; it is not cropped (training crops at a random offset, SPEC §3), and the clusters are
//     computed on all proteins so the filter cannot move a cluster across the split.
//  7. Optional subsets for the quick start: keep the subset_train train pairs and subset_test test
//     pairs with the smallest stable_hash(accession, kSubsetSalt): deterministic, spread over
//     clusters, and independent of the cluster hash used in step 5.
//  8. Write <out_dir>/train.jsonl, test.jsonl (sorted by accession) and, last, manifest.json with
//     the options, counts, source package versions and the mmseqs command.
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

// The options that determine the output, as the JSON text stored under "options" in manifest.json.
std::string go_dataset_options_json(const GoDatasetOptions& opt);
// Default output folder name for the options, e.g. "pairs", "pairs_maxlen1024_sub2000x200".
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

}  // namespace pe
