#include "probe/tasks.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "data/text_io.h"

namespace pe {

namespace {

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

const char* kAspectDirs[3] = {"MFO", "BPO", "CCO"};

}  // namespace

std::string go_annotation_dir(const std::string& go_cache) {
  return go_cache + "/root/usr/share/metastudent-data/dataset_201401";
}

GoAnnotations read_go_annotations(const std::string& data_dir) {
  GoAnnotations g;
  {
    const std::string path = data_dir + "/nameMapping.txt";
    PE_CHECK(file_exists(path), "probe: ", path, " not found (build the GO dataset first: protst dataset)");
    LineReader in(path);
    std::string line;
    while (in.next(line)) {
      if (line.empty()) continue;
      const auto tab = line.find('\t');
      PE_CHECK(tab != std::string::npos, in.where(), ": expected GO:id<TAB>name");
      g.names.emplace(line.substr(0, tab), line.substr(tab + 1));
    }
  }
  for (int a = 0; a < 3; ++a) {
    const std::string path = data_dir + "/" + kAspectDirs[a] + "/goasp_annot.dat";
    PE_CHECK(file_exists(path), "probe: ", path, " not found");
    LineReader in(path);
    std::string line;
    while (in.next(line)) {
      if (line.empty()) continue;
      std::vector<std::string> f = split_on(line, '\t');
      PE_CHECK(f.size() >= 2 && !f[0].empty(), in.where(), ": expected ACC<TAB>GO:id...");
      auto& ids = g.terms[f[0]][size_t(a)];
      for (size_t k = 1; k < f.size(); ++k) {
        PE_CHECK(f[k].rfind("GO:", 0) == 0, in.where(), ": '", f[k], "' is not a GO id");
        ids.push_back(f[k]);
      }
    }
  }
  for (auto& kv : g.terms)
    for (auto& ids : kv.second) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    }
  return g;
}

int go_task_aspect(const std::string& task) {
  if (task == "go-mf") return 0;
  if (task == "go-bp") return 1;
  if (task == "go-cc" || task == "go-cc-multimodal") return 2;
  return -1;
}

std::vector<int64_t> term_positive_counts(const ProbeSide& s, int64_t terms) {
  std::vector<int64_t> c(size_t(terms), 0);
  for (int64_t i = 0; i < s.size(); ++i)
    for (int64_t k = 0; k < terms; ++k) c[size_t(k)] += s.labels[size_t(i * terms + k)];
  return c;
}

namespace {

// Fills labels of one side from each protein's term list and the kept columns.
void fill_labels(ProbeSide& s, const std::vector<std::vector<std::string>>& per_protein,
                 const std::map<std::string, int64_t>& column) {
  const int64_t K = int64_t(column.size());
  s.labels.assign(size_t(s.size() * K), 0);
  for (int64_t i = 0; i < s.size(); ++i)
    for (const auto& t : per_protein[size_t(i)]) {
      auto it = column.find(t);
      if (it != column.end()) s.labels[size_t(i * K + it->second)] = 1;
    }
}

}  // namespace

ProbeTask build_go_task(const std::string& task, const std::vector<ProteinRecord>& train,
                        const std::vector<ProteinRecord>& test, const GoAnnotations& go, int64_t min_train_proteins) {
  const int aspect = go_task_aspect(task);
  PE_CHECK(aspect >= 0, "probe: unknown GO task '", task, "' (go-mf, go-bp, go-cc, go-cc-multimodal)");
  PE_CHECK(min_train_proteins >= 1, "probe: --min-train-proteins must be at least 1, got ", min_train_proteins);
  ProbeTask t;
  t.name = task;
  t.multi_label = true;
  t.multimodal = task == "go-cc-multimodal";
  t.min_train_proteins = min_train_proteins;
  auto take = [&](const std::vector<ProteinRecord>& recs, ProbeSide& side, std::vector<std::vector<std::string>>& terms,
                  int64_t& dropped) {
    for (const auto& r : recs) {
      auto it = go.terms.find(r.id);
      if (it == go.terms.end() || it->second[size_t(aspect)].empty()) {
        ++dropped;
        continue;
      }
      std::string text;
      if (t.multimodal) {
        std::array<std::vector<std::string>, 2> names;
        for (int a = 0; a < 2; ++a)  // MF and BP only: the CC labels never reach the text
          for (const auto& id : it->second[size_t(a)]) {
            auto n = go.names.find(id);
            if (n != go.names.end()) names[size_t(a)].push_back(n->second);
          }
        text = go_text(names[0], names[1], {});
        if (text.empty()) {
          ++dropped;
          continue;
        }
      }
      side.ids.push_back(r.id);
      side.seqs.push_back(r.seq);
      if (t.multimodal) side.texts.push_back(text);
      terms.push_back(it->second[size_t(aspect)]);
    }
  };
  std::vector<std::vector<std::string>> tr_terms, te_terms;
  take(train, t.train, tr_terms, t.dropped_train);
  take(test, t.test, te_terms, t.dropped_test);
  PE_CHECK(!t.train.ids.empty(), "probe: ", task, ": no training protein has a term of this aspect");
  PE_CHECK(!t.test.ids.empty(), "probe: ", task, ": no test protein has a term of this aspect");
  std::map<std::string, int64_t> count;
  for (const auto& ts : tr_terms)
    for (const auto& x : ts) ++count[x];
  t.candidate_terms = int64_t(count.size());
  std::map<std::string, int64_t> column;
  for (const auto& kv : count)
    if (kv.second >= min_train_proteins) {
      column.emplace(kv.first, int64_t(t.terms.size()));
      t.terms.push_back(kv.first);
      auto n = go.names.find(kv.first);
      t.term_names.push_back(n == go.names.end() ? kv.first : n->second);
    }
  PE_CHECK(!t.terms.empty(), "probe: ", task, ": no term has ", min_train_proteins,
           " training proteins (lower --min-train-proteins)");
  fill_labels(t.train, tr_terms, column);
  fill_labels(t.test, te_terms, column);
  for (int64_t c : term_positive_counts(t.test, int64_t(t.terms.size())))
    if (c == 0) ++t.test_terms_without_positives;
  static const char* aspect_names[3] = {"molecular function", "biological process", "cellular component"};
  t.notes = std::string(aspect_names[aspect]) + " terms with >= " + std::to_string(min_train_proteins) +
            " training proteins (" + std::to_string(t.terms.size()) + " of " + std::to_string(t.candidate_terms) + ")" +
            (t.multimodal ? "; text = names of the protein's MF and BP terms only (no CC)" : "; sequence only");
  return t;
}

std::vector<std::string> labels_auto_split_ids(const std::string& labels_tsv) {
  std::vector<std::string> ids;
  LineReader in(labels_tsv);
  std::string line;
  while (in.next(line)) {
    if (trim(line).empty()) continue;
    std::vector<std::string> f = split_on(line, '\t');
    if (f.size() >= 2 && trim(f[1]) == "auto") ids.push_back(trim(f[0]));
  }
  return ids;
}

ProbeTask build_file_task(const std::vector<ProteinRecord>& records, const std::string& labels_tsv,
                          bool force_multi_label, int64_t min_train_proteins,
                          const std::unordered_map<std::string, bool>* auto_test) {
  PE_CHECK(min_train_proteins >= 1, "probe: --min-train-proteins must be at least 1, got ", min_train_proteins);
  std::unordered_map<std::string, size_t> by_id;
  bool any_text = false, all_text = true;
  for (size_t i = 0; i < records.size(); ++i) {
    PE_CHECK(by_id.emplace(records[i].id, i).second, "probe: the sequence file holds id '", records[i].id, "' twice");
    if (records[i].text.empty()) all_text = false;
    else any_text = true;
  }
  ProbeTask t;
  t.name = "files";
  t.multimodal = any_text && all_text;
  t.min_train_proteins = min_train_proteins;
  std::vector<std::vector<std::string>> tr_terms, te_terms;
  std::set<std::string> seen;
  bool multi = force_multi_label;
  LineReader in(labels_tsv);
  std::string line;
  while (in.next(line)) {
    if (trim(line).empty()) continue;
    std::vector<std::string> f = split_on(line, '\t');
    if (in.line_no() == 1 && trim(f[0]) == "id") continue;  // header
    PE_CHECK(f.size() == 3, in.where(), ": expected id<TAB>split<TAB>labels (split train|test|auto, labels separated by ';'), got ", f.size(),
             " fields");
    const std::string id = trim(f[0]);
    std::string split = trim(f[1]);
    PE_CHECK(split == "train" || split == "test" || split == "auto", in.where(),
             ": split must be train, test or auto, got '", split, "'");
    if (split == "auto") {
      PE_CHECK(auto_test, in.where(), ": split 'auto' needs the proteins clustered (protst probe does it with mmseqs)");
      auto a = auto_test->find(id);
      PE_CHECK(a != auto_test->end(), in.where(), ": id '", id, "' has split 'auto' but no cluster assignment");
      split = a->second ? "test" : "train";
    }
    auto r = by_id.find(id);
    PE_CHECK(r != by_id.end(), in.where(), ": id '", id, "' is not in the sequence file");
    PE_CHECK(seen.insert(id).second, in.where(), ": id '", id, "' has a second label line");
    std::vector<std::string> labels;
    for (auto& l : split_on(f[2], ';'))
      if (!trim(l).empty()) labels.push_back(trim(l));
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    PE_CHECK(!labels.empty(), in.where(), ": no label");
    if (labels.size() > 1) multi = true;
    ProbeSide& side = split == "train" ? t.train : t.test;
    const ProteinRecord& rec = records[r->second];
    side.ids.push_back(id);
    side.seqs.push_back(rec.seq);
    if (t.multimodal) side.texts.push_back(rec.text);
    (split == "train" ? tr_terms : te_terms).push_back(labels);
  }
  PE_CHECK(!t.train.ids.empty() && !t.test.ids.empty(), labels_tsv, ": needs proteins in both splits (train ",
           t.train.ids.size(), ", test ", t.test.ids.size(), ")");
  t.multi_label = multi;
  std::map<std::string, int64_t> count;
  for (const auto& ts : tr_terms)
    for (const auto& x : ts) ++count[x];
  t.candidate_terms = int64_t(count.size());
  std::map<std::string, int64_t> column;
  for (const auto& kv : count)
    if (!multi || kv.second >= min_train_proteins) {  // single-label keeps every training class
      column.emplace(kv.first, int64_t(t.terms.size()));
      t.terms.push_back(kv.first);
      t.term_names.push_back(kv.first);
    }
  PE_CHECK(t.terms.size() >= (multi ? 1u : 2u), labels_tsv, ": ",
           multi ? "no label has --min-train-proteins training proteins" : "a single-label task needs 2 classes in train");
  if (!multi) {  // a test protein whose class never occurs in train cannot be predicted: dropped, counted
    ProbeSide kept;
    std::vector<std::vector<std::string>> kept_terms;
    for (int64_t i = 0; i < t.test.size(); ++i) {
      if (!column.count(te_terms[size_t(i)][0])) {
        ++t.dropped_test;
        continue;
      }
      kept.ids.push_back(t.test.ids[size_t(i)]);
      kept.seqs.push_back(t.test.seqs[size_t(i)]);
      if (t.multimodal) kept.texts.push_back(t.test.texts[size_t(i)]);
      kept_terms.push_back(te_terms[size_t(i)]);
    }
    t.test = std::move(kept);
    te_terms = std::move(kept_terms);
    PE_CHECK(!t.test.ids.empty(), labels_tsv, ": no test protein has a class seen in train");
    for (const auto& ts : tr_terms) t.train.classes.push_back(column.at(ts[0]));
    for (const auto& ts : te_terms) t.test.classes.push_back(column.at(ts[0]));
  }
  fill_labels(t.train, tr_terms, column);
  fill_labels(t.test, te_terms, column);
  for (int64_t c : term_positive_counts(t.test, int64_t(t.terms.size())))
    if (c == 0) ++t.test_terms_without_positives;
  t.notes = std::string(multi ? "multi-label" : "single-label") + ", " + std::to_string(t.terms.size()) +
            (multi ? " labels with >= " + std::to_string(min_train_proteins) + " training proteins" : " classes") +
            (t.multimodal ? "; text from the input file" : "; sequence only");
  return t;
}

ClusterCheck check_cluster_disjoint(const std::vector<std::string>& train_ids, const std::vector<std::string>& test_ids,
                                    const std::unordered_map<std::string, std::string>& member_to_rep) {
  ClusterCheck c;
  std::unordered_map<std::string, std::string> train_rep_member;
  for (const auto& id : train_ids) {
    ++c.train;
    auto it = member_to_rep.find(id);
    if (it == member_to_rep.end()) {
      ++c.missing;
      continue;
    }
    train_rep_member.emplace(it->second, id);
  }
  for (const auto& id : test_ids) {
    ++c.test;
    auto it = member_to_rep.find(id);
    if (it == member_to_rep.end()) {
      ++c.missing;
      continue;
    }
    auto hit = train_rep_member.find(it->second);
    if (hit != train_rep_member.end()) {
      ++c.test_sharing_cluster;
      if (c.examples.size() < 5) c.examples.push_back(id + " ~ " + hit->second + " (cluster " + it->second + ")");
    }
  }
  return c;
}

}  // namespace pe
