#pragma once
// `protst dataset`: builds (or reuses) the Swiss-Prot/GO pairs and reports the homology filter of
// their split, or (--check-split) checks a user's own train/test files without changing them.
#include <string>

#include "data/go_dataset.h"

namespace pe {

struct DatasetCommandOptions {
  GoDatasetOptions go;
  bool strict = false;             // low-homology preset: split_identity = kStrictSplitIdentity
  std::string check_train, check_test;  // --check-split TRAIN TEST
  std::string descriptions;        // for FASTA inputs of --check-split
  std::string report;              // --check-split: all leaky entries as TSV here ("" = none)
};
void run_dataset(DatasetCommandOptions o);

// Writes <out_dir>/split_identity.png from manifest.json's split_filter (a histogram of each test
// protein's highest identity to training, before and after the filter). Returns the PNG path, or
// "" when the manifest records no filter.
std::string write_split_histogram(const std::string& manifest_path);

// The filter summary of a dataset manifest (several lines), "" when the manifest has none.
std::string split_filter_summary(const std::string& manifest_path);

// One line naming the split a test file comes from and its homology threshold, read from
// manifest.json beside the file when present.
std::string describe_split(const std::string& test_path);

}  // namespace pe
