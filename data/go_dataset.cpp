#include "data/go_dataset.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"
#include "data/blastdb.h"
#include "data/jsonl.h"
#include "data/text_io.h"

extern char** environ;

namespace pe {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kPackages = {"metastudent-data", "emboss-data", "mmseqs2", "libgzstream0"};
const char* const kDataDir = "usr/share/metastudent-data/dataset_201401";
// Ontology folder, and the aspect index used by go_text(): 0 MF, 1 BP, 2 CC.
const std::array<const char*, 3> kOntologies = {"MFO", "BPO", "CCO"};

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;

std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Progress {
  bool on;
  Clock::time_point t0 = Clock::now();
  void operator()(const std::string& msg) const {
    if (on) std::fprintf(stderr, "go_dataset [%6.1fs] %s\n", seconds_since(t0), msg.c_str());
  }
};

// Last `n` lines of a log file, for error messages.
std::string log_tail(const std::string& path, std::size_t n = 15) {
  std::ifstream f(path);
  std::deque<std::string> lines;
  for (std::string l; std::getline(f, l);) {
    lines.push_back(l);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += "\n  | " + l;
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep = " ") {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// Runs argv[0] (looked up in PATH) in `cwd` with stdout and stderr appended to `log`, and
// LD_LIBRARY_PATH replaced when `ld_library_path` is not empty. Returns the exit status
// (127 when the program could not be started, 128+signal when killed).
int run_logged(const std::vector<std::string>& argv, const std::string& cwd,
               const std::string& ld_library_path, const std::string& log) {
  {
    std::ofstream(log, std::ios::app) << "$ (cd " << cwd << " && " << join(argv) << ")\n";
  }
  // Everything the child needs is prepared here: between fork and exec only async-signal-safe
  // calls are made.
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LD_LIBRARY_PATH=", 16) != 0 || ld_library_path.empty()) env_store.emplace_back(*e);
  if (!ld_library_path.empty()) env_store.push_back("LD_LIBRARY_PATH=" + ld_library_path);
  std::vector<char*> envp, args;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store = argv;
  for (auto& s : argv_store) args.push_back(s.data());
  args.push_back(nullptr);

  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  PE_CHECK(fd >= 0, log, ": cannot open log: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    PE_FAIL("go_dataset: fork failed: ", std::strerror(errno));
  }
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execvpe(args[0], args.data(), envp.data());
    static const char msg[] = "exec failed: program not found or not executable\n";
    const ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) PE_FAIL("go_dataset: waitpid failed: ", std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// The .deb of `pkg` in `dir` ("<pkg>_<version>_<arch>.deb"), or "" when absent.
std::string find_deb(const fs::path& dir, const std::string& pkg) {
  std::vector<std::string> found;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(pkg + "_", 0) == 0 && name.size() > 4 && name.compare(name.size() - 4, 4, ".deb") == 0)
        found.push_back(e.path().string());
    }
  std::sort(found.begin(), found.end());
  return found.empty() ? std::string() : found.back();
}

// Version from a .deb file name; apt writes an epoch's ':' as "%3a".
std::string deb_version(const std::string& deb_path) {
  const std::string name = fs::path(deb_path).filename().string();
  const auto a = name.find('_'), b = name.find('_', a + 1);
  std::string v = name.substr(a + 1, b - a - 1);
  for (std::size_t p; (p = v.find("%3a")) != std::string::npos;) v.replace(p, 3, ":");
  return v;
}

// Step 1: downloads what is missing, unpacks what is not unpacked yet. Returns the .deb paths in
// kPackages order.
std::vector<std::string> fetch_packages(const fs::path& cache, const Progress& progress) {
  const fs::path debs = cache / "debs", logs = cache / "logs", root = cache / "root";
  fs::create_directories(debs);
  fs::create_directories(logs);
  std::vector<std::string> missing;
  for (const auto& p : kPackages)
    if (find_deb(debs, p).empty()) missing.push_back(p);
  if (!missing.empty()) {
    // Download into a scratch folder and move the files in only when apt-get succeeded, so a
    // broken download never looks like a cached package.
    const fs::path scratch = debs / ".download";
    fs::remove_all(scratch);
    fs::create_directories(scratch);
    progress("downloading " + join(missing) + " with apt-get (about 310 MB)");
    const std::string log = (logs / "apt-get.log").string();
    std::vector<std::string> argv = {"apt-get", "download"};
    argv.insert(argv.end(), missing.begin(), missing.end());
    const int rc = run_logged(argv, scratch.string(), "", log);
    if (rc != 0) {
      fs::remove_all(scratch);
      PE_FAIL("go_dataset: `apt-get download ", join(missing), "` failed (exit ", rc, "); log ", log,
              ":", log_tail(log),
              "\nThis step needs a Debian-family system (Debian 12 has these packages) whose apt can "
              "reach the Debian archive. Run `apt-get update` (as root) and try again, or download "
              "the .deb files of ",
              join(missing, ", "), " elsewhere and put them into ", debs.string(), ".");
    }
    for (const auto& e : fs::directory_iterator(scratch))
      if (e.path().extension() == ".deb") fs::rename(e.path(), debs / e.path().filename());
    fs::remove_all(scratch);
  }
  std::vector<std::string> debs_found;
  for (const auto& p : kPackages) {
    const std::string deb = find_deb(debs, p);
    PE_CHECK(!deb.empty(), "go_dataset: apt-get reported success but no ", p, "_*.deb is in ", debs.string());
    debs_found.push_back(deb);
  }

  // Unpack each .deb once; the marker is written only after dpkg-deb succeeded.
  const fs::path markers = root / ".unpacked";
  fs::create_directories(markers);
  for (const auto& deb : debs_found) {
    const fs::path marker = markers / fs::path(deb).filename();
    if (fs::exists(marker)) continue;
    progress("unpacking " + fs::path(deb).filename().string());
    const std::string log = (logs / "dpkg-deb.log").string();
    const int rc = run_logged({"dpkg-deb", "-x", deb, root.string()}, cache.string(), "", log);
    PE_CHECK(rc == 0, "go_dataset: `dpkg-deb -x ", deb, "` failed (exit ", rc, "); log ", log, ":",
             log_tail(log), "\nIs dpkg-deb installed and is there about 1 GB free under ",
             cache.string(), "?");
    std::ofstream(marker) << "unpacked\n";
  }
  return debs_found;
}

// Best mmseqs build of the unpacked package for this CPU.
std::string pick_mmseqs(const fs::path& root) {
  std::vector<std::pair<const char*, bool>> simd;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  simd = {{"avx2", __builtin_cpu_supports("avx2")},
          {"avx", __builtin_cpu_supports("avx")},
          {"sse4.1", __builtin_cpu_supports("sse4.1")},
          {"ssse3", __builtin_cpu_supports("ssse3")},
          {"sse3", __builtin_cpu_supports("sse3")}};
#endif
  for (const auto& [name, ok] : simd) {
    const fs::path bin = root / "usr/bin" / (std::string("mmseqs-") + name);
    if (ok && fs::exists(bin)) return bin.string();
  }
  PE_FAIL("go_dataset: no mmseqs binary in ", (root / "usr/bin").string(),
          " runs on this CPU (looked for mmseqs-avx2, -avx, -sse4.1, -ssse3, -sse3)");
}

// Folder of the unpacked libgzstream.so.0 (usr/lib/<multiarch>/).
std::string gzstream_dir(const fs::path& root) {
  const fs::path lib = root / "usr/lib";
  if (fs::is_directory(lib))
    for (const auto& e : fs::directory_iterator(lib))
      if (fs::exists(e.path() / "libgzstream.so.0")) return e.path().string();
  PE_FAIL("go_dataset: libgzstream.so.0 not found under ", lib.string(), " (is libgzstream0 unpacked?)");
}

struct Protein {
  std::string seq;
  std::array<std::vector<std::string>, 3> go;  // GO ids per aspect
};

}  // namespace

// ------------------------------------------------------------------------------------ split pieces

std::uint64_t stable_hash(std::string_view s, std::uint64_t salt) {
  std::uint64_t h = fnv1a(kFnvOffset ^ salt, s);
  // MurmurHash3 fmix64: FNV-1a alone leaves its high bits weakly dependent on the last bytes.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

bool is_test_cluster(std::string_view rep, double test_fraction) {
  // Top 53 bits as a double in [0, 1).
  const double u = static_cast<double>(stable_hash(rep) >> 11) * 0x1.0p-53;
  return u < test_fraction;
}

std::unordered_map<std::string, std::string> read_clusters(const std::string& tsv_path) {
  std::unordered_map<std::string, std::string> m;
  LineReader in(tsv_path);
  std::string line;
  while (in.next(line)) {
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    PE_CHECK(tab != std::string::npos && tab > 0 && tab + 1 < line.size(), in.where(),
             ": expected representative<TAB>member");
    std::string member = line.substr(tab + 1);
    const auto [it, inserted] = m.emplace(std::move(member), line.substr(0, tab));
    PE_CHECK(inserted, in.where(), ": ", it->first, " is listed in two clusters");
  }
  return m;
}

void split_by_cluster(std::vector<ProteinRecord>&& records,
                      const std::unordered_map<std::string, std::string>& member_to_rep,
                      double test_fraction, std::vector<ProteinRecord>& train,
                      std::vector<ProteinRecord>& test) {
  for (auto& r : records) {
    const auto it = member_to_rep.find(r.id);
    PE_CHECK(it != member_to_rep.end(), "split_by_cluster: ", r.id, " is in no cluster");
    (is_test_cluster(it->second, test_fraction) ? test : train).push_back(std::move(r));
  }
  records.clear();
}

void keep_subset(std::vector<ProteinRecord>& records, std::size_t n) {
  if (n == 0 || n >= records.size()) return;
  std::vector<std::pair<std::uint64_t, std::size_t>> order(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) order[i] = {stable_hash(records[i].id, kSubsetSalt), i};
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end());
  std::vector<std::size_t> keep(n);
  for (std::size_t i = 0; i < n; ++i) keep[i] = order[i].second;
  std::sort(keep.begin(), keep.end());
  std::vector<ProteinRecord> out;
  out.reserve(n);
  for (std::size_t i : keep) out.push_back(std::move(records[i]));
  records = std::move(out);
}

// ------------------------------------------------------------------------------------ options

std::string go_dataset_options_json(const GoDatasetOptions& o) {
  json j = {{"format", 1},
            {"source", "Debian metastudent-data dataset_201401"},
            {"test_fraction", o.test_fraction},
            {"max_seq_len", o.max_seq_len},
            {"subset_train", o.subset_train},
            {"subset_test", o.subset_test},
            {"min_seq_id", o.min_seq_id},
            {"coverage", o.coverage}};
  return j.dump();
}

std::string go_dataset_default_name(const GoDatasetOptions& o) {
  std::string s = "pairs";
  if (o.max_seq_len) s += "_maxlen" + std::to_string(o.max_seq_len);
  if (o.subset_train || o.subset_test)
    s += "_sub" + (o.subset_train ? std::to_string(o.subset_train) : std::string("all")) + "x" +
         (o.subset_test ? std::to_string(o.subset_test) : std::string("all"));
  if (o.test_fraction != GoDatasetOptions{}.test_fraction) s += "_test" + fmt_g(o.test_fraction);
  if (o.min_seq_id != GoDatasetOptions{}.min_seq_id || o.coverage != GoDatasetOptions{}.coverage)
    s += "_id" + fmt_g(o.min_seq_id) + "_c" + fmt_g(o.coverage);
  return s;
}

// ------------------------------------------------------------------------------------ the build

GoDatasetResult build_go_dataset(const GoDatasetOptions& opt) {
  PE_CHECK(opt.test_fraction > 0 && opt.test_fraction < 1, "go_dataset: test_fraction ",
           opt.test_fraction, " must be in (0, 1)");
  PE_CHECK(opt.min_seq_id > 0 && opt.min_seq_id <= 1, "go_dataset: min_seq_id ", opt.min_seq_id,
           " must be in (0, 1]");
  PE_CHECK(opt.coverage > 0 && opt.coverage <= 1, "go_dataset: coverage ", opt.coverage, " must be in (0, 1]");
  PE_CHECK(opt.threads >= 0, "go_dataset: threads must be >= 0");
  const Progress progress{opt.progress};

  const fs::path cache = fs::absolute(opt.cache_dir);
  const fs::path out = opt.out_dir.empty() ? cache / go_dataset_default_name(opt) : fs::absolute(opt.out_dir);
  GoDatasetResult res;
  res.out_dir = out.string();
  res.train_path = (out / "train.jsonl").string();
  res.test_path = (out / "test.jsonl").string();
  res.manifest_path = (out / "manifest.json").string();
  const json options = json::parse(go_dataset_options_json(opt));

  // ---- cache: same options and both files present -> done.
  if (file_exists(res.manifest_path)) {
    try {
      const json m = json::parse(std::ifstream(res.manifest_path));
      if (m.at("options") == options && file_exists(res.train_path) && file_exists(res.test_path)) {
        res.train_pairs = m.at("counts").at("train_pairs").get<std::size_t>();
        res.test_pairs = m.at("counts").at("test_pairs").get<std::size_t>();
        res.cached = true;
        progress("reusing " + res.out_dir + " (" + std::to_string(res.train_pairs) + " train, " +
                 std::to_string(res.test_pairs) + " test pairs)");
        return res;
      }
    } catch (const json::exception& e) {
      progress(res.manifest_path + " is unreadable (" + e.what() + "); rebuilding");
    }
  }
  fs::create_directories(out);
  fs::remove(res.manifest_path);  // an old manifest must never describe new, half-written files

  // ---- 1. packages
  const std::vector<std::string> debs = fetch_packages(cache, progress);
  const fs::path root = cache / "root";
  const fs::path data = root / kDataDir;
  json versions = json::object();
  for (std::size_t i = 0; i < kPackages.size(); ++i) versions[kPackages[i]] = deb_version(debs[i]);

  // ---- 2. sequences: union of the three ontology databases by accession
  std::unordered_map<std::string, Protein> proteins;
  json per_ontology = json::object();
  std::size_t conflicts = 0;
  std::vector<std::string> conflict_examples;
  for (std::size_t a = 0; a < kOntologies.size(); ++a) {
    const std::string base = (data / kOntologies[a] / "goasp.fasta").string();
    BlastDb db(base);
    progress(std::string("decoding ") + kOntologies[a] + " BLAST database: " + std::to_string(db.size()) +
             " sequences");
    per_ontology[kOntologies[a]] = db.size();
    for (std::size_t i = 0; i < db.size(); ++i) {
      const std::string title = db.defline_title(i);
      std::string acc = title.substr(0, title.find('|'));
      PE_CHECK(!acc.empty(), base, ".phr: sequence ", i, ": empty accession in title '", title, "'");
      std::string seq = db.sequence(i);
      auto [it, inserted] = proteins.try_emplace(std::move(acc));
      if (inserted) {
        it->second.seq = std::move(seq);
      } else if (it->second.seq != seq) {
        // Keep the first (MFO before BPO before CCO); counted in the manifest.
        ++conflicts;
        if (conflict_examples.size() < 10) conflict_examples.push_back(it->first);
      }
    }
  }

  // Residues outside A-Z ('-' gap, '*' stop in NCBIstdaa) cannot be encoded: such proteins go.
  std::size_t bad_residue = 0;
  for (auto it = proteins.begin(); it != proteins.end();) {
    if (first_bad_residue(it->second.seq) != std::string::npos || it->second.seq.empty()) {
      ++bad_residue;
      it = proteins.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<std::string> accessions;
  accessions.reserve(proteins.size());
  for (const auto& [acc, p] : proteins) accessions.push_back(acc);
  std::sort(accessions.begin(), accessions.end());
  progress(std::to_string(accessions.size()) + " distinct proteins");

  // ---- 3. clusters of all clean proteins (the later options cannot change them)
  const std::string mmseqs = pick_mmseqs(root);
  const fs::path cdir = cache / ("cluster-id" + fmt_g(opt.min_seq_id) + "-c" + fmt_g(opt.coverage));
  fs::create_directories(cdir);
  std::uint64_t input_hash = kFnvOffset;
  for (const auto& acc : accessions) input_hash = fnv1a(fnv1a(input_hash, acc), proteins.at(acc).seq);
  std::vector<std::string> mm_args = {"easy-linclust", "all.fasta", "clu", "tmp", "--min-seq-id",
                                      fmt_g(opt.min_seq_id), "-c", fmt_g(opt.coverage), "--cov-mode", "1"};
  if (opt.threads > 0) mm_args.insert(mm_args.end(), {"--threads", std::to_string(opt.threads)});
  const json cluster_key = {{"input_fnv1a", hex64(input_hash)},
                            {"sequences", accessions.size()},
                            {"command", "mmseqs " + join(mm_args)},
                            {"mmseqs2", versions["mmseqs2"]}};
  const fs::path done = cdir / "done.json";
  const std::string tsv = (cdir / "clu_cluster.tsv").string();
  bool reuse = false;
  if (fs::exists(done) && file_exists(tsv)) {
    try {
      reuse = json::parse(std::ifstream(done)) == cluster_key;
    } catch (const json::exception&) {
    }
  }
  if (!reuse) {
    fs::remove(done);
    {
      TextWriter fa((cdir / "all.fasta").string());
      for (const auto& acc : accessions) {
        fa.write(">" + acc + "\n");
        fa.write_line(proteins.at(acc).seq);
      }
      fa.close();
    }
    fs::remove_all(cdir / "tmp");
    progress("clustering " + std::to_string(accessions.size()) + " sequences: " +
             fs::path(mmseqs).filename().string() + " " + join(mm_args) + " (about 30 s on 2 cores)");
    std::vector<std::string> argv = {mmseqs};
    argv.insert(argv.end(), mm_args.begin(), mm_args.end());
    const std::string log = (cache / "logs" / "mmseqs.log").string();
    std::ofstream(log, std::ios::trunc).close();
    const int rc = run_logged(argv, cdir.string(), gzstream_dir(root), log);
    PE_CHECK(rc == 0, "go_dataset: mmseqs failed (exit ", rc, "); log ", log, ":", log_tail(log));
    PE_CHECK(file_exists(tsv), "go_dataset: mmseqs finished but wrote no ", tsv);
    // Only the member table is needed; the rest is large and cheap to redo.
    fs::remove_all(cdir / "tmp");
    fs::remove(cdir / "all.fasta");
    fs::remove(cdir / "clu_all_seqs.fasta");
    fs::remove(cdir / "clu_rep_seq.fasta");
    std::ofstream(done) << cluster_key.dump(2) << "\n";
  } else {
    progress("reusing clusters in " + cdir.string());
  }
  // ---- 4. annotations, names and texts
  std::unordered_map<std::string, std::string> names;
  {
    const std::string path = (data / "nameMapping.txt").string();
    LineReader in(path);
    std::string line;
    while (in.next(line)) {
      if (line.empty()) continue;
      const auto tab = line.find('\t');
      PE_CHECK(tab != std::string::npos, in.where(), ": expected GO:id<TAB>name");
      names.emplace(line.substr(0, tab), line.substr(tab + 1));
    }
  }
  std::size_t annotated_without_sequence = 0;
  for (std::size_t a = 0; a < kOntologies.size(); ++a) {
    const std::string path = (data / kOntologies[a] / "goasp_annot.dat").string();
    LineReader in(path);
    std::string line;
    while (in.next(line)) {
      if (line.empty()) continue;
      std::vector<std::string> f;
      for (std::size_t b = 0;;) {
        const auto e = line.find('\t', b);
        f.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) break;
        b = e + 1;
      }
      PE_CHECK(f.size() >= 2 && !f[0].empty(), in.where(), ": expected ACC<TAB>GO:id...");
      const auto it = proteins.find(f[0]);
      if (it == proteins.end()) {
        ++annotated_without_sequence;
        continue;
      }
      auto& ids = it->second.go[a];
      for (std::size_t k = 1; k < f.size(); ++k) {
        PE_CHECK(f[k].rfind("GO:", 0) == 0, in.where(), ": '", f[k], "' is not a GO id");
        ids.push_back(f[k]);
      }
    }
  }
  progress("read annotations and " + std::to_string(names.size()) + " GO names");

  std::vector<ProteinRecord> records;
  records.reserve(accessions.size());
  std::size_t no_annotation = 0;
  std::unordered_set<std::string> used_ids, unnamed_ids;
  for (const auto& acc : accessions) {
    Protein& p = proteins.at(acc);
    std::array<std::vector<std::string>, 3> term_names;
    for (std::size_t a = 0; a < 3; ++a)
      for (const auto& id : p.go[a]) {
        used_ids.insert(id);
        const auto n = names.find(id);
        if (n == names.end()) unnamed_ids.insert(id);
        else term_names[a].push_back(n->second);
      }
    std::string text = go_text(std::move(term_names[0]), std::move(term_names[1]), std::move(term_names[2]));
    if (text.empty()) {
      ++no_annotation;
      continue;
    }
    records.push_back({acc, std::move(p.seq), std::move(text), 0});
  }

  proteins.clear();  // sequences now live in `records`
  const auto member_to_rep = read_clusters(tsv);
  std::unordered_set<std::string> reps;
  for (const auto& [m, r] : member_to_rep) reps.insert(r);
  progress(std::to_string(reps.size()) + " clusters");

  // ---- 5./6. split, then the length filter
  std::vector<ProteinRecord> train, test;
  split_by_cluster(std::move(records), member_to_rep, opt.test_fraction, train, test);
  std::size_t too_long = 0;
  if (opt.max_seq_len > 0)
    for (auto* side : {&train, &test}) {
      const auto before = side->size();
      side->erase(std::remove_if(side->begin(), side->end(),
                                 [&](const ProteinRecord& r) { return r.seq.size() > opt.max_seq_len; }),
                  side->end());
      too_long += before - side->size();
    }
  const std::size_t train_all = train.size(), test_all = test.size();

  // ---- 7. subsets
  keep_subset(train, opt.subset_train);
  keep_subset(test, opt.subset_test);

  // ---- 8. output
  auto count_clusters = [&](const std::vector<ProteinRecord>& side) {
    std::unordered_set<std::string> s;
    for (const auto& r : side) s.insert(member_to_rep.at(r.id));
    return s.size();
  };
  std::unordered_set<std::string> texts;
  std::vector<std::size_t> lengths;
  for (const auto* side : {&train, &test})
    for (const auto& r : *side) {
      texts.insert(r.text);
      lengths.push_back(r.seq.size());
    }
  std::sort(lengths.begin(), lengths.end());
  progress("writing " + std::to_string(train.size()) + " train and " + std::to_string(test.size()) +
           " test pairs to " + out.string());
  write_jsonl(res.train_path, train);
  write_jsonl(res.test_path, test);

  std::vector<std::string> unnamed(unnamed_ids.begin(), unnamed_ids.end());
  std::sort(unnamed.begin(), unnamed.end());
  if (unnamed.size() > 20) unnamed.resize(20);
  json manifest = {
      {"description", "ProtST-style protein-text pairs: Swiss-Prot sequences with GO term names "
                      "(Debian metastudent-data, 2014), split by mmseqs clusters"},
      {"options", options},
      {"sources", versions},
      {"data_dir", data.string()},
      {"go_obo", (root / "usr/share/EMBOSS/data/OBO/go.obo").string()},
      {"text_template", "Molecular function: a; b. Biological process: c. Cellular component: d."},
      {"split", "cluster to test when fmix64(FNV-1a-64(representative)) / 2^64 < test_fraction"},
      {"clustering", {{"binary", mmseqs}, {"command", cluster_key["command"]}, {"clusters", reps.size()}}},
      {"counts",
       {{"proteins_per_ontology", per_ontology},
        {"proteins_union", accessions.size() + bad_residue},
        {"sequence_conflicts", conflicts},
        {"sequence_conflict_examples", conflict_examples},
        {"dropped_bad_residue", bad_residue},
        {"annotations_without_sequence", annotated_without_sequence},
        {"go_ids_used", used_ids.size()},
        {"go_ids_without_name", unnamed_ids.size()},
        {"go_ids_without_name_examples", unnamed},
        {"dropped_no_annotation", no_annotation},
        {"clusters", reps.size()},
        {"dropped_too_long", too_long},
        {"train_pairs_before_subset", train_all},
        {"test_pairs_before_subset", test_all},
        {"train_pairs", train.size()},
        {"test_pairs", test.size()},
        {"train_clusters", count_clusters(train)},
        {"test_clusters", count_clusters(test)},
        {"distinct_texts", texts.size()},
        {"length_min", lengths.empty() ? 0 : lengths.front()},
        {"length_median", lengths.empty() ? 0 : lengths[lengths.size() / 2]},
        {"length_max", lengths.empty() ? 0 : lengths.back()}}},
      {"files", {{"train", "train.jsonl"}, {"test", "test.jsonl"}}},
      {"build_seconds", seconds_since(progress.t0)}};
  TextWriter m(res.manifest_path);
  m.write_line(manifest.dump(2));
  m.close();
  res.train_pairs = train.size();
  res.test_pairs = test.size();
  progress("done: " + res.manifest_path);
  return res;
}

}  // namespace pe
