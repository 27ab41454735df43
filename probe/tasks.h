#pragma once
// Tasks of `protst probe` (issue #13): downstream function prediction on the held-out cluster split.
// Pure data (no engine): which proteins are in train and test, their sequences, an optional text per
// protein, and the label matrix.
//
// GO tasks (the offline Swiss-Prot/GO data of `protst dataset`, metastudent-data 2014):
//  - go-mf / go-bp / go-cc: multi-label prediction of the protein's terms of one aspect (as listed in
//    <aspect>/goasp_annot.dat, de-duplicated; no further propagation) from the sequence alone. A
//    protein enters a side only when it has at least one term of the aspect. The label set is every
//    term annotated to at least `min_train_proteins` training proteins (kDefaultMinTrainProteins);
//    rarer terms are dropped from both sides, and a protein left with no kept term still counts as a
//    (negative-only) example: Fmax leaves it out (CAFA), AUPR counts its negatives.
//  - go-cc-multimodal: the go-cc labels, plus a text per protein built ONLY from the names of its MF
//    and BP terms ("Molecular function: a; b. Biological process: c.", go_text()), never from CC,
//    so the text cannot leak the labels. Proteins without any MF or BP term are dropped (counted).
// Train and test are the pair dataset's train.jsonl / test.jsonl (split by mmseqs clusters, test
// homology-filtered); check_cluster_disjoint() verifies with the cluster table that no test protein
// shares a cluster with a training protein.
//
// User tasks (`--task files`): sequences from FASTA or JSONL {id, seq[, text]} and a TSV of
//   id<TAB>split<TAB>labels        split = train | test, labels separated by ';'
// (a first line starting with "id<TAB>" is a header). Multi-label when any row has more than one
// label or when asked; otherwise single-label (one class per protein). Errors name file:line.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/records.h"

namespace pe {

inline constexpr int64_t kDefaultMinTrainProteins = 50;

struct ProbeSide {
  std::vector<std::string> ids, seqs, texts;  // texts empty unless the task is multimodal
  std::vector<uint8_t> labels;                // [n x terms] row-major, 0/1
  std::vector<int64_t> classes;               // single-label tasks: class per protein
  int64_t size() const { return int64_t(ids.size()); }
};

struct ProbeTask {
  std::string name;              // go-mf, go-bp, go-cc, go-cc-multimodal, files
  bool multi_label = true;
  bool multimodal = false;       // texts present
  std::vector<std::string> terms, term_names;  // label columns
  ProbeSide train, test;
  int64_t min_train_proteins = 0;
  // Bookkeeping for the report.
  int64_t candidate_terms = 0;            // distinct terms of the aspect in training proteins
  int64_t test_terms_without_positives = 0;
  int64_t dropped_train = 0, dropped_test = 0;  // proteins without a term of the aspect / without text
  std::string notes;                      // one line on how the task was built
};

// GO annotations per protein: aspect 0 = MF, 1 = BP, 2 = CC (term ids, de-duplicated, sorted).
struct GoAnnotations {
  std::unordered_map<std::string, std::array<std::vector<std::string>, 3>> terms;
  std::unordered_map<std::string, std::string> names;  // GO:id -> name
};
// Reads <data_dir>/{MFO,BPO,CCO}/goasp_annot.dat and <data_dir>/nameMapping.txt. Errors name file:line.
GoAnnotations read_go_annotations(const std::string& data_dir);
// The folder holding them under a `protst dataset` cache (<cache>/root/usr/share/metastudent-data/dataset_201401).
std::string go_annotation_dir(const std::string& go_cache);

// Aspect by task name: "go-mf" -> 0, "go-bp" -> 1, "go-cc" and "go-cc-multimodal" -> 2; -1 otherwise.
int go_task_aspect(const std::string& task);

ProbeTask build_go_task(const std::string& task, const std::vector<ProteinRecord>& train,
                        const std::vector<ProteinRecord>& test, const GoAnnotations& go, int64_t min_train_proteins);

// --labels TSV rows: id<TAB>split<TAB>labels, split = train | test | auto. Rows marked auto go to the test
// split where auto_test[id] is true, else to train; auto_test must hold every such id (the caller
// clusters the proteins with mmseqs and draws whole clusters, see labels_need_auto_split).
ProbeTask build_file_task(const std::vector<ProteinRecord>& records, const std::string& labels_tsv,
                          bool force_multi_label, int64_t min_train_proteins,
                          const std::unordered_map<std::string, bool>* auto_test = nullptr);
// The ids of the rows of a --labels TSV whose split is "auto" (empty: every split is given).
std::vector<std::string> labels_auto_split_ids(const std::string& labels_tsv);

struct ClusterCheck {
  int64_t train = 0, test = 0;            // proteins looked up
  int64_t test_sharing_cluster = 0;       // test proteins whose cluster holds a training protein
  int64_t missing = 0;                    // ids absent from the cluster table
  std::vector<std::string> examples;      // up to 5 "test_id ~ train_id (cluster rep)"
};
// Every id must be in member_to_rep (from read_clusters()); a missing id is counted, not guessed.
ClusterCheck check_cluster_disjoint(const std::vector<std::string>& train_ids, const std::vector<std::string>& test_ids,
                                    const std::unordered_map<std::string, std::string>& member_to_rep);

// Per-term counts of positives in a side (column sums).
std::vector<int64_t> term_positive_counts(const ProbeSide& s, int64_t terms);

}  // namespace pe
