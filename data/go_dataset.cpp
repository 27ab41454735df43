#include "data/go_dataset.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
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
// `packages` order.
std::vector<std::string> fetch_packages(const fs::path& cache, const std::vector<std::string>& packages,
                                        const Progress& progress) {
  const fs::path debs = cache / "debs", logs = cache / "logs", root = cache / "root";
  fs::create_directories(debs);
  fs::create_directories(logs);
  std::vector<std::string> missing;
  for (const auto& p : packages)
    if (find_deb(debs, p).empty()) missing.push_back(p);
  if (!missing.empty()) {
    // Download into a scratch folder and move the files in only when apt-get succeeded, so a
    // broken download never looks like a cached package.
    const fs::path scratch = debs / ".download";
    fs::remove_all(scratch);
    fs::create_directories(scratch);
    progress("downloading " + join(missing) + " with apt-get" +
             (missing.size() == kPackages.size() ? " (about 310 MB)" : ""));
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
  for (const auto& p : packages) {
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

// ------------------------------------------------------------------------------------ mmseqs, split check

namespace {

void write_fasta(const std::string& path, const std::vector<ProteinRecord>& records, char prefix) {
  TextWriter fa(path);
  for (std::size_t i = 0; i < records.size(); ++i) {
    fa.write(std::string(">") + prefix + std::to_string(i) + "\n");
    fa.write_line(records[i].seq);
  }
  fa.close();
}

// Index from a ">q<index>" / ">t<index>" name written by write_fasta.
std::size_t fasta_index(const std::string& name, char prefix, std::size_t n, const std::string& where) {
  PE_CHECK(name.size() > 1 && name[0] == prefix, where, ": unexpected sequence name '", name, "'");
  std::size_t i = 0;
  for (std::size_t k = 1; k < name.size(); ++k) {
    PE_CHECK(name[k] >= '0' && name[k] <= '9', where, ": unexpected sequence name '", name, "'");
    i = i * 10 + static_cast<std::size_t>(name[k] - '0');
  }
  PE_CHECK(i < n, where, ": sequence index out of range in '", name, "'");
  return i;
}

}  // namespace

void run_mmseqs(const Mmseqs& mm, const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv = {mm.binary};
  argv.insert(argv.end(), args.begin(), args.end());
  if (mm.threads > 0) argv.insert(argv.end(), {"--threads", std::to_string(mm.threads)});
  const int rc = run_logged(argv, cwd, mm.ld_library_path, mm.log);
  PE_CHECK(rc == 0, "mmseqs ", args.empty() ? "" : args[0], " failed (exit ", rc, "); log ", mm.log, ":",
           log_tail(mm.log));
}

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> f;
  for (std::size_t b = 0;;) {
    const auto e = line.find('\t', b);
    f.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return f;
}

double parse_double(const std::string& s, const std::string& where) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  PE_CHECK(!s.empty() && end == s.c_str() + s.size(), where, ": '", s, "' is not a number");
  return v;
}

}  // namespace

Mmseqs prepare_mmseqs(const std::string& cache_dir, bool show_progress) {
  const Progress progress{show_progress};
  const fs::path cache = fs::absolute(cache_dir);
  const auto debs = fetch_packages(cache, {"mmseqs2", "libgzstream0"}, progress);
  Mmseqs mm;
  const fs::path root = cache / "root";
  mm.binary = pick_mmseqs(root);
  mm.ld_library_path = gzstream_dir(root);
  mm.log = (cache / "logs" / "mmseqs.log").string();
  mm.version = deb_version(debs[0]);
  return mm;
}

std::unordered_map<std::string, std::string> linclust(const Mmseqs& mm, const std::vector<ProteinRecord>& records,
                                                      const std::string& work_dir, double min_seq_id,
                                                      double coverage) {
  const fs::path dir = fs::absolute(work_dir);
  fs::create_directories(dir);
  write_fasta((dir / "all.fasta").string(), records, 'p');
  fs::remove_all(dir / "tmp");
  run_mmseqs(mm, {"easy-linclust", "all.fasta", "clu", "tmp", "--min-seq-id", fmt_g(min_seq_id), "-c",
                  fmt_g(coverage), "--cov-mode", "1"},
             dir.string());
  const std::string tsv = (dir / "clu_cluster.tsv").string();
  std::unordered_map<std::string, std::string> out;
  for (const auto& [m, r] : read_clusters(tsv))
    out.emplace(records[fasta_index(m, 'p', records.size(), tsv)].id,
                records[fasta_index(r, 'p', records.size(), tsv)].id);
  for (const char* f : {"tmp", "all.fasta", "clu_all_seqs.fasta", "clu_rep_seq.fasta", "clu_cluster.tsv"})
    fs::remove_all(dir / f);
  return out;
}

std::unordered_map<std::string, TrainHit> best_train_hits(const Mmseqs& mm, const std::vector<ProteinRecord>& train,
                                                          const std::vector<ProteinRecord>& test,
                                                          const std::string& work_dir, const SplitSearchOptions& opt) {
  PE_CHECK(opt.coverage >= 0 && opt.coverage <= 1, "split search: coverage ", opt.coverage, " must be in [0, 1]");
  PE_CHECK(opt.sensitivity >= 1 && opt.sensitivity <= 7.5, "split search: sensitivity ", opt.sensitivity,
           " must be in [1, 7.5] (mmseqs -s)");
  std::unordered_map<std::string, TrainHit> best;
  {
    std::unordered_set<std::string_view> ids;
    for (const auto& r : test) PE_CHECK(ids.insert(r.id).second, "split search: test id ", r.id, " appears twice");
  }
  // Exact duplicates by comparing sequences: they must never straddle the split, whatever the search finds.
  {
    std::unordered_map<std::string_view, std::size_t> train_seq;
    for (std::size_t i = 0; i < train.size(); ++i) train_seq.emplace(train[i].seq, i);
    for (const auto& r : test) {
      const auto it = train_seq.find(r.seq);
      if (it != train_seq.end()) best[r.id] = {train[it->second].id, 1.0, 1.0, 1.0, true};
    }
  }
  if (train.empty() || test.empty()) return best;

  const fs::path dir = fs::absolute(work_dir);
  fs::create_directories(dir);
  write_fasta((dir / "test.fasta").string(), test, 'q');
  write_fasta((dir / "train.fasta").string(), train, 't');
  fs::remove_all(dir / "tmp");
  std::vector<std::string> args = {"easy-search", "test.fasta", "train.fasta", "hits.m8", "tmp", "-s",
                                   fmt_g(opt.sensitivity), "--format-output", "query,target,fident,qcov,tcov"};
  if (opt.evalue > 0) args.insert(args.end(), {"-e", fmt_g(opt.evalue)});
  run_mmseqs(mm, args, dir.string());
  const std::string m8 = (dir / "hits.m8").string();
  {
    LineReader in(m8);
    std::string line;
    while (in.next(line)) {
      if (line.empty()) continue;
      const auto f = split_tabs(line);
      PE_CHECK(f.size() == 5, in.where(), ": expected query, target, fident, qcov, tcov");
      const ProteinRecord& q = test[fasta_index(f[0], 'q', test.size(), in.where())];
      const ProteinRecord& t = train[fasta_index(f[1], 't', train.size(), in.where())];
      TrainHit h{t.id, parse_double(f[2], in.where()), parse_double(f[3], in.where()),
                 parse_double(f[4], in.where()), false};
      // mmseqs prints 3 decimals: a value that rounds up to the threshold counts (the stricter side).
      if (std::max(h.qcov, h.tcov) < opt.coverage - 1e-9) continue;
      auto [it, inserted] = best.try_emplace(q.id, h);
      if (inserted || it->second.identical) continue;
      const TrainHit& b = it->second;
      if (h.identity > b.identity || (h.identity == b.identity && std::max(h.qcov, h.tcov) > std::max(b.qcov, b.tcov)))
        it->second = h;
    }
  }
  for (const char* f : {"tmp", "test.fasta", "train.fasta", "hits.m8"}) fs::remove_all(dir / f);
  return best;
}

bool is_leaky(const TrainHit& hit, double identity_threshold) {
  return hit.identical || hit.identity >= identity_threshold - 1e-9;
}

const std::vector<std::string>& IdentityDistribution::bucket_names() {
  static const std::vector<std::string> names = {"identical", ">=90%",  "70-90%", "50-70%",
                                                 "40-50%",    "30-40%", "<30%",   "no hit"};
  return names;
}

void IdentityDistribution::add(const TrainHit* hit) {
  ++proteins;
  if (!hit) {
    ++no_hit;
    ++buckets[7];
    return;
  }
  const double id = hit->identical ? 1.0 : hit->identity;
  std::size_t b = 6;
  if (hit->identical) b = 0;
  else if (id >= 0.9 - 1e-9) b = 1;
  else if (id >= 0.7 - 1e-9) b = 2;
  else if (id >= 0.5 - 1e-9) b = 3;
  else if (id >= 0.4 - 1e-9) b = 4;
  else if (id >= 0.3 - 1e-9) b = 5;
  ++buckets[b];
  ++histogram[std::min<std::size_t>(49, static_cast<std::size_t>(std::max(0.0, id) * 50.0 + 1e-9))];
}

void drop_leaky(std::vector<ProteinRecord>& test, const std::unordered_map<std::string, TrainHit>& hits,
                double identity_threshold, std::size_t& removed_identical, std::size_t& removed_homolog) {
  std::vector<ProteinRecord> kept;
  kept.reserve(test.size());
  for (auto& r : test) {
    const auto it = hits.find(r.id);
    if (it != hits.end() && is_leaky(it->second, identity_threshold)) {
      ++(it->second.identical ? removed_identical : removed_homolog);
      continue;
    }
    kept.push_back(std::move(r));
  }
  test = std::move(kept);
}

IdentityDistribution identity_distribution(const std::vector<ProteinRecord>& test,
                                           const std::unordered_map<std::string, TrainHit>& hits) {
  IdentityDistribution d;
  for (const auto& r : test) {
    const auto it = hits.find(r.id);
    d.add(it == hits.end() ? nullptr : &it->second);
  }
  return d;
}

namespace {
json distribution_to_json(const IdentityDistribution& d) {
  json b = json::object();
  for (std::size_t i = 0; i < d.buckets.size(); ++i) b[IdentityDistribution::bucket_names()[i]] = d.buckets[i];
  return {{"proteins", d.proteins}, {"no_hit", d.no_hit}, {"buckets", b}, {"histogram_2pct", d.histogram}};
}
}  // namespace

std::string identity_distribution_json(const IdentityDistribution& d) { return distribution_to_json(d).dump(); }

SplitCheckReport check_split(const Mmseqs& mm, const std::vector<ProteinRecord>& train,
                             const std::vector<ProteinRecord>& test, const std::string& work_dir,
                             double identity_threshold, const SplitSearchOptions& opt) {
  SplitCheckReport rep;
  rep.train = train.size();
  rep.test = test.size();
  const auto hits = best_train_hits(mm, train, test, work_dir, opt);
  rep.distribution = identity_distribution(test, hits);
  for (const auto& r : test) {
    const auto it = hits.find(r.id);
    if (it != hits.end() && is_leaky(it->second, identity_threshold)) rep.leaky.emplace_back(r, it->second);
  }
  return rep;
}

// ------------------------------------------------------------------------------------ options

std::string go_dataset_options_json(const GoDatasetOptions& o) {
  json j = {{"format", 2},
            {"source", "Debian metastudent-data dataset_201401"},
            {"test_fraction", o.test_fraction},
            {"max_seq_len", o.max_seq_len},
            {"subset_train", o.subset_train},
            {"subset_test", o.subset_test},
            {"min_seq_id", o.min_seq_id},
            {"coverage", o.coverage},
            {"split_identity", o.split_identity},
            {"split_coverage", o.split_coverage},
            {"split_sensitivity", o.split_sensitivity},
            {"split_search", "pass 1 at mmseqs' default e-value, pass 2 of the survivors at -e 10"}};
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
  // The homology filter is always named, so a folder built before it existed (or with other
  // filter parameters) is never taken for a filtered one.
  if (o.split_identity <= 0) {
    s += "_unfiltered";
  } else {
    s += "_held" + fmt_g(std::round(o.split_identity * 1000) / 10);
    if (o.split_coverage != GoDatasetOptions{}.split_coverage) s += "c" + fmt_g(o.split_coverage);
    if (o.split_sensitivity != GoDatasetOptions{}.split_sensitivity) s += "s" + fmt_g(o.split_sensitivity);
  }
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
  PE_CHECK(opt.split_identity >= 0 && opt.split_identity <= 1, "go_dataset: split_identity ", opt.split_identity,
           " must be in [0, 1] (0 = no homology filter)");
  PE_CHECK(opt.split_coverage >= 0 && opt.split_coverage <= 1, "go_dataset: split_coverage ", opt.split_coverage,
           " must be in [0, 1]");
  PE_CHECK(opt.split_sensitivity >= 1 && opt.split_sensitivity <= 7.5, "go_dataset: split_sensitivity ",
           opt.split_sensitivity, " must be in [1, 7.5] (mmseqs -s)");
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
  const std::vector<std::string> debs = fetch_packages(cache, kPackages, progress);
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
      const std::vector<std::string> f = split_tabs(line);
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

  // ---- 5b. homology filter: every test candidate against all training sequences
  const std::size_t test_candidates = test.size();
  std::size_t removed_identical = 0, removed_homolog = 0;
  std::unordered_map<std::string, TrainHit> hits;
  IdentityDistribution dist_candidates;
  std::size_t test_searched = 0;
  json search_command;
  if (opt.split_identity > 0) {
    const SplitSearchOptions so{opt.split_coverage, opt.split_sensitivity};
    const fs::path sdir = cache / ("search-test" + fmt_g(opt.test_fraction) + "-c" + fmt_g(opt.split_coverage) +
                                   "-s" + fmt_g(opt.split_sensitivity));
    fs::create_directories(sdir);
    search_command = "mmseqs easy-search test.fasta train.fasta hits.m8 tmp -s " + fmt_g(so.sensitivity) +
                     " --format-output query,target,fident,qcov,tcov";
    const json search_key = {{"clusters", cluster_key},
                             {"metastudent-data", versions["metastudent-data"]},
                             {"test_fraction", opt.test_fraction},
                             {"train", train.size()},
                             {"test", test.size()},
                             {"coverage", so.coverage},
                             {"command", search_command}};
    // Cached search of `queries` against all training sequences into best_<tag>.tsv.
    auto cached_search = [&](const std::vector<ProteinRecord>& queries, const SplitSearchOptions& o,
                             const std::string& tag, json key) {
      std::unordered_map<std::string, TrainHit> found;
      const fs::path sdone = sdir / ("done_" + tag + ".json");
      const std::string best_tsv = (sdir / ("best_" + tag + ".tsv")).string();
      bool sreuse = false;
      if (fs::exists(sdone) && file_exists(best_tsv)) {
        try {
          sreuse = json::parse(std::ifstream(sdone)) == key;
        } catch (const json::exception&) {
        }
      }
      if (sreuse) {
        progress("reusing the split search " + best_tsv);
        LineReader in(best_tsv);
        std::string line;
        while (in.next(line)) {
          if (line.empty()) continue;
          const auto f = split_tabs(line);
          PE_CHECK(f.size() == 6, in.where(), ": expected id, target, identity, qcov, tcov, identical");
          found[f[0]] = {f[1], parse_double(f[2], in.where()), parse_double(f[3], in.where()),
                         parse_double(f[4], in.where()), f[5] == "1"};
        }
        return found;
      }
      fs::remove(sdone);
      progress("searching " + std::to_string(queries.size()) + " test candidates against " +
               std::to_string(train.size()) + " training sequences: " + fs::path(mmseqs).filename().string() +
               " easy-search -s " + fmt_g(o.sensitivity) + (o.evalue > 0 ? " -e " + fmt_g(o.evalue) : "") +
               " (minutes on 2 cores)");
      Mmseqs mm{mmseqs, gzstream_dir(root), (cache / "logs" / "mmseqs-search.log").string(),
                versions["mmseqs2"].get<std::string>(), opt.threads};
      std::ofstream(mm.log, std::ios::trunc).close();
      found = best_train_hits(mm, train, queries, sdir.string(), o);
      TextWriter w(best_tsv);
      char buf[64];
      for (const auto& [id, h] : found) {
        std::snprintf(buf, sizeof buf, "\t%.3f\t%.3f\t%.3f\t%d", h.identity, h.qcov, h.tcov, h.identical ? 1 : 0);
        w.write_line(id + "\t" + h.target + buf);
      }
      w.close();
      std::ofstream(sdone) << key.dump(2) << "\n";
      return found;
    };
    // One filter pass over `queries`: pass 1 at mmseqs' default e-value (1e-3); pass 2 the survivors
    // again at -e 10, which reports the short peptides whose 60-80 % hits have an e-value above 1e-3
    // against 491k training sequences (found by the independent check of the quick-start subset);
    // together the same filter as one pass at -e 10, at a third of its cost.
    auto filter_search = [&](const std::vector<ProteinRecord>& queries, const std::string& suffix, json key) {
      std::unordered_map<std::string, TrainHit> found = cached_search(queries, so, "hits" + suffix, key);
      std::vector<ProteinRecord> survivors;
      for (const auto& r : queries) {
        const auto it = found.find(r.id);
        if (it == found.end() || !is_leaky(it->second, opt.split_identity)) survivors.push_back(r);
      }
      SplitSearchOptions so2 = so;
      so2.evalue = 10;
      json key2 = key;
      key2["pass"] = 2;
      key2["split_identity"] = opt.split_identity;
      key2["survivors"] = survivors.size();
      key2["command"] = search_command.get<std::string>() + " -e 10";
      for (auto& [id, h] : cached_search(survivors, so2, "e10_held" + fmt_g(opt.split_identity) + suffix, key2)) {
        auto [it, inserted] = found.try_emplace(id, h);
        if (!inserted && !it->second.identical && h.identity > it->second.identity) it->second = h;
      }
      return found;
    };
    const std::string pass2 = search_command.get<std::string>() + " -e 10 (pass 2: the survivors of pass 1)";
    if (opt.subset_test == 0) {
      hits = filter_search(test, "", search_key);
    } else {
      // A subset keeps the subset_test survivors with the smallest stable_hash(id, kSubsetSalt) among
      // the test proteins within the length limit. Searching those candidates in that order, chunk by
      // chunk, until enough survive gives exactly the subset a search of every candidate would give
      // (every unsearched candidate hashes higher), at a fraction of its cost (the quick start needs
      // ~4,000 of ~25,000 candidates searched). The report then covers the searched candidates.
      std::vector<ProteinRecord> cand;
      for (auto& r : test)
        if (opt.max_seq_len == 0 || r.seq.size() <= opt.max_seq_len) cand.push_back(std::move(r));
      std::vector<std::pair<std::uint64_t, std::size_t>> order;
      for (std::size_t i = 0; i < cand.size(); ++i) order.push_back({stable_hash(cand[i].id, kSubsetSalt), i});
      std::sort(order.begin(), order.end());
      std::vector<std::size_t> searched;  // indices into cand
      std::size_t next = 0, survivors = 0;
      for (int round = 0; survivors < opt.subset_test && next < order.size(); ++round) {
        const std::size_t take = std::min(order.size() - next, std::max<std::size_t>(4 * (opt.subset_test - survivors), 512));
        std::vector<ProteinRecord> chunk;
        for (std::size_t k = next; k < next + take; ++k) chunk.push_back(cand[order[k].second]);
        next += take;
        json key = search_key;
        key["subset_order"] = {{"round", round}, {"first", chunk.front().id}, {"last", chunk.back().id},
                               {"queries", chunk.size()}, {"max_seq_len", opt.max_seq_len}};
        for (auto& [id, h] : filter_search(chunk, "_sub" + std::to_string(round), key)) hits.emplace(id, h);
        for (const auto& r : chunk) {
          const auto it = hits.find(r.id);
          if (it == hits.end() || !is_leaky(it->second, opt.split_identity)) ++survivors;
        }
        for (std::size_t k = next - take; k < next; ++k) searched.push_back(order[k].second);
      }
      progress("subset order: searched " + std::to_string(searched.size()) + " of " + std::to_string(cand.size()) +
               " test candidates within the length limit for " + std::to_string(opt.subset_test) + " clean ones");
      std::sort(searched.begin(), searched.end());  // back to the input order
      test.clear();
      for (std::size_t i : searched) test.push_back(std::move(cand[i]));
    }
    search_command = json::array({search_command, pass2});
    test_searched = test.size();
    dist_candidates = identity_distribution(test, hits);
    drop_leaky(test, hits, opt.split_identity, removed_identical, removed_homolog);
    progress("homology filter: removed " + std::to_string(removed_identical + removed_homolog) + " of " +
             std::to_string(test_searched) + " test candidates searched (" + std::to_string(removed_identical) +
             " identical to a training sequence, " + std::to_string(removed_homolog) + " with a training hit >= " +
             fmt_g(opt.split_identity * 100) + " % identity)");
  }
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

  json split_filter = {{"enabled", opt.split_identity > 0}};
  const std::string identity_tsv = (out / "test_identity.tsv").string(), table_tsv = (out / "split_identity.tsv").string();
  fs::remove(identity_tsv);
  fs::remove(table_tsv);
  if (opt.split_identity > 0) {
    const IdentityDistribution dist_test = identity_distribution(test, hits);
    {
      TextWriter w(identity_tsv);
      w.write_line("id\tclosest_train\tidentity\ttest_coverage\ttrain_coverage\tidentical");
      char buf[64];
      for (const auto& r : test) {
        const auto it = hits.find(r.id);
        if (it == hits.end()) {
          w.write_line(r.id + "\t-\t-\t-\t-\t0");
          continue;
        }
        const TrainHit& h = it->second;
        std::snprintf(buf, sizeof buf, "\t%.3f\t%.3f\t%.3f\t%d", h.identity, h.qcov, h.tcov, h.identical ? 1 : 0);
        w.write_line(r.id + "\t" + h.target + buf);
      }
      w.close();
    }
    {
      TextWriter w(table_tsv);
      w.write_line("# highest identity of each test protein to any training protein (mmseqs fident over >= " +
                   fmt_g(opt.split_coverage) + " of the test or the training protein; -s " +
                   fmt_g(opt.split_sensitivity) + ")");
      w.write_line("bucket\ttest_candidates\ttest_file");
      for (std::size_t i = 0; i < dist_test.buckets.size(); ++i)
        w.write_line(IdentityDistribution::bucket_names()[i] + "\t" + std::to_string(dist_candidates.buckets[i]) +
                     "\t" + std::to_string(dist_test.buckets[i]));
      w.close();
    }
    split_filter = {
        {"enabled", true},
        {"identity", opt.split_identity},
        {"coverage", opt.split_coverage},
        {"coverage_rule", "the alignment covers >= coverage of the test protein or of the training protein"},
        {"identity_rule", "mmseqs fident (identical residues / alignment length) >= identity, or the same sequence"},
        {"sensitivity", opt.split_sensitivity},
        {"search_command", search_command},
        {"policy", opt.subset_test == 0
                       ? "a leaky test protein is dropped (not moved to train); every test candidate is searched, "
                         "before the length filter"
                       : "a leaky test protein is dropped (not moved to train); with a test subset, the candidates "
                         "within the length limit are searched in subset order until subset_test survive: the "
                         "same subset as searching all of them"},
        {"test_candidates", test_candidates},
        {"test_candidates_searched", test_searched},
        {"removed_identical", removed_identical},
        {"removed_homolog", removed_homolog},
        {"test_after_filter", test_searched - removed_identical - removed_homolog},
        {"distribution_candidates", distribution_to_json(dist_candidates)},
        {"distribution_test_file", distribution_to_json(dist_test)},
        {"files", {{"per_protein", "test_identity.tsv"}, {"table", "split_identity.tsv"}}}};
  }

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
      {"split", "cluster to test when fmix64(FNV-1a-64(representative)) / 2^64 < test_fraction, then the "
                "homology filter (split_filter) drops leaky test proteins"},
      {"split_filter", split_filter},
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
