#!/usr/bin/env python3
"""CPU peer benchmark (issue #14): the engine's `protst embed` and training step against what a CPU
user would pick instead -- Hugging Face transformers eager fp32, esm-cpp, and a PyTorch eager twin
of the quick-start training step -- on identical inputs, one process per measurement, rounds
interleaved, medians reported per wall-second and per CPU-second. Run by hand, not in CI:

    python3 bench/cpu_peers/run.py [--quick] [--threads 1 2] [--out results.md]

It creates (or reuses) a venv with torch, transformers, safetensors, esm-cpp and numpy from PyPI
(default <repo>/.venv-peers, or $PROTST_PEERS_VENV) and re-runs itself inside it. See README.md.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import functools
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = HERE / "peers.py"
PACKAGES = ["torch", "transformers", "safetensors", "esm-cpp", "numpy"]
IMPORTS = "import torch, transformers, safetensors, esm_cpp, numpy, tokenizers"
ALPHABET = set("LAGVSERTIDPKQNFYMHWCXBUZO")  # residue letters of the ESM-2 vocabulary
QUICKSTART_DATASET = "pairs_maxlen512_sub20000x1000_held50"  # configs/quickstart.toml's GO subset


def log(*a):
    print("[cpu_peers]", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- venv

def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating venv {venv}")
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    if subprocess.call([str(py), "-c", IMPORTS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        log(f"installing {' '.join(PACKAGES)} into {venv} (torch from PyPI is large; this takes a while)")
        subprocess.check_call([str(py), "-m", "pip", "install", *PACKAGES])
    return py


def reexec_in_venv(venv: Path):
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    py = ensure_venv(venv)
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


# ------------------------------------------------------------------------------------------- data

def find_go_dataset(go_cache: Path):
    """(train.jsonl, test.jsonl) of the GO dataset build, the quick-start subset first."""
    dirs = sorted(glob.glob(str(go_cache / "*")), key=lambda d: (Path(d).name != QUICKSTART_DATASET, d))
    for d in dirs:
        tr, te = Path(d) / "train.jsonl", Path(d) / "test.jsonl"
        if tr.exists() and te.exists():
            return tr, te
    return None


def read_jsonl_proteins(paths):
    for p in paths:
        with open(p) as f:
            for line in f:
                r = json.loads(line)
                yield r["id"], r["seq"]


def read_uniprot_dat(path):
    pid, seq = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("ID   "):
                pid = line.split()[1]
            elif line.startswith("SQ   "):
                seq = []
            elif line.startswith("//"):
                if pid and seq is not None:
                    yield pid, "".join(seq)
                pid, seq = None, None
            elif seq is not None:
                seq.append(line.replace(" ", "").strip())


def pick_proteins(source_iter, n, min_len, max_len, seed=0):
    """A fixed sample: standard-alphabet sequences of min_len..max_len residues, deduplicated,
    ordered by id, then n drawn with a seeded RNG."""
    seen, cand = set(), []
    for pid, seq in source_iter:
        seq = seq.strip().upper()
        if min_len <= len(seq) <= max_len and set(seq) <= ALPHABET and seq not in seen:
            seen.add(seq)
            cand.append((pid, seq))
    cand.sort()
    if len(cand) > n:
        cand = random.Random(seed).sample(cand, n)
    # Same order for every tool: by length (then id), so that consecutive batches hold similar
    # lengths for the padded tools; rows of every output follow this order.
    return sorted(cand, key=lambda x: (len(x[1]), x[0]))


def write_fasta(path, prots):
    with open(path, "w") as f:
        for pid, seq in prots:
            f.write(f">{pid}\n")
            for i in range(0, len(seq), 60):
                f.write(seq[i:i + 60] + "\n")


# ---------------------------------------------------------------------------------------- timing

def run_timed(cmd, env=None, cwd=None, log_path=None):
    """Runs cmd; returns (rc, wall seconds, CPU-seconds of the child and its children, output)."""
    full_env = dict(os.environ, **(env or {}))
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if log_path:
        out.close()
    text = Path(log_path).read_text(errors="replace") if log_path else ""
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, text


def thread_env(n):
    n = str(n)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "ESM_NUM_THREADS": n}


def worker(py, args, threads, logdir, tag):
    """A peers.py worker; returns its RESULT dict (timed region inside the worker)."""
    rc, wall, cpu, text = run_timed([py, PEERS, *args], env=thread_env(threads), log_path=logdir / f"{tag}.log")
    lines = [l for l in text.splitlines() if l.startswith("RESULT ")]
    if rc != 0 or not lines:
        raise RuntimeError(f"{tag} failed (rc {rc}); log {logdir / (tag + '.log')}:\n" + "\n".join(text.splitlines()[-15:]))
    r = json.loads(lines[-1][len("RESULT "):])
    r["process_wall"], r["process_cpu"] = wall, cpu
    return r


# ---------------------------------------------------------------------------------------- engine

def engine_supports_embed(protst):
    if not protst or not Path(protst).exists():
        return f"engine binary {protst} not found (build it first)"
    try:
        h = subprocess.run([protst, "embed", "--help"], capture_output=True, text=True, timeout=60)
    except Exception as e:  # noqa: BLE001
        return f"`{protst} embed --help` failed: {e}"
    text = h.stdout + h.stderr
    missing = [f for f in ("--protein-model", "--include", "--repr-layers") if f not in text]
    if missing:
        return f"`protst embed` lacks {', '.join(missing)} (this build predates the flags)"
    return None


def engine_embed(protst, model_dir, fasta, out, batch, threads, logdir, tag):
    cmd = [protst, "embed", "--protein-model", model_dir, "--input", fasta, "--output", out, "--include", "mean",
           "--repr-layers", "-1", "--batch-size", batch]
    rc, wall, cpu, text = run_timed(cmd, env=thread_env(threads), cwd=REPO, log_path=logdir / f"{tag}.log")
    if rc != 0:
        raise RuntimeError(f"engine embed failed (rc {rc}); log {logdir / (tag + '.log')}:\n" +
                           "\n".join(text.splitlines()[-15:]))
    return {"tool": "engine", "wall": wall, "cpu": cpu}


def proc_cpu_seconds(pid):
    """utime + stime of a live process, all its threads (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


STEP_LINE = re.compile(r"^step (\d+)/(\d+) \|")


TRAIN_BATCH = 32  # pairs per training step, engine and twin


def engine_train(protst, warmup, total, threads, go_cache, work, logdir, tag):
    """One quick-start training run with a progress line after every step. The child's CPU-seconds
    (/proc/<pid>/stat) and the wall clock are read when the line of step `warmup` and the line of the
    last step arrive, so start-up (dataset, WordPiece training), warm-up steps, the final checkpoint
    and the final evaluation are not counted; tokens come from metrics.jsonl."""
    outdir = work / "engine_train"
    shutil.rmtree(outdir, ignore_errors=True)
    # The quick-start model shapes at batch TRAIN_BATCH (the twin's), whatever batch the config sets.
    cmd = [protst, "--config", REPO / "configs/quickstart.toml", "train", "--steps", total, "--eval-every", 0,
           "--batch-size", TRAIN_BATCH,
           "--save-every", 100000, "--log-every", 1, "--out", outdir, "--no-resume", "--go-cache", go_cache]
    env = dict(os.environ, **thread_env(threads))
    marks = {}
    with open(logdir / f"{tag}.log", "w") as logf:
        t0 = time.perf_counter()
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             cwd=REPO, text=True, bufsize=1)
        for line in p.stdout:
            m = STEP_LINE.match(line)
            if m and int(m.group(1)) in (warmup, total):
                try:
                    marks[int(m.group(1))] = (time.perf_counter(), proc_cpu_seconds(p.pid))
                except OSError:
                    pass
            logf.write(line)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        whole_wall, whole_cpu = time.perf_counter() - t0, ru.ru_utime + ru.ru_stime
    if p.returncode != 0 or warmup not in marks or total not in marks:
        text = (logdir / f"{tag}.log").read_text(errors="replace")
        raise RuntimeError(f"engine train failed (rc {p.returncode}); log {logdir / (tag + '.log')}:\n" +
                           "\n".join(text.splitlines()[-15:]))
    tokens = {}
    with open(outdir / "metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if "tokens" in m:
                tokens[int(m["step"])] = int(m["tokens"])
    shutil.rmtree(outdir, ignore_errors=True)
    (w0, c0), (w1, c1) = marks[warmup], marks[total]
    return {"tool": "engine", "wall": w1 - w0, "cpu": c1 - c0, "tokens": tokens[total] - tokens[warmup],
            "steps": total - warmup, "process_wall": whole_wall, "process_cpu": whole_cpu}


# --------------------------------------------------------------------------------------- report

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_rate(x):
    if x != x:
        return "–"
    return f"{x / 1000:.1f}k" if x >= 10000 else f"{x:.0f}"


def machine_info():
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except FileNotFoundError:
        commit = "?"
    return model, os.cpu_count(), commit, os.getloadavg()


def versions():
    import esm_cpp
    import torch
    import transformers
    return (f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), transformers "
            f"{transformers.__version__}, esm-cpp {esm_cpp.__version__} ({esm_cpp.current_isa()})")


@functools.lru_cache(maxsize=None)
def engine_gemm_peak(protst):
    """The best GFLOP/CPU-s of the engine's bench_cpu_gemm (built beside the binary: oneDNN's sgemm and the
    engine's own x W^T kernel), or None; measured once per run (its shapes do not depend on the model)."""
    exe = Path(protst).resolve().parents[1] / "bench" / "bench_cpu_gemm"
    if not exe.exists():
        return None
    try:
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=thread_env(1)).stdout
    except Exception:  # noqa: BLE001
        return None
    rates = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for col in (5, 7):  # oneDNN, own linear_f32 (absent in older builds)
            if len(cells) > col and len(cells) >= 7 and cells[col].replace(".", "", 1).isdigit():
                rates.append(float(cells[col]))
    return max(rates) if rates else None


def roofline(py, protst, hf_dir, lens, rows, logdir, size):
    """A markdown row: FLOP floor of the 1-thread embedding pass and the bound it puts on engine ÷ HF."""
    if "engine" not in rows or "hf" not in rows:
        return None
    cfg = json.loads((Path(hf_dir) / "config.json").read_text())
    d, layers, ff = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    toks = [n + 2 for n in lens]  # <cls> ... <eos>
    flop = 2.0 * sum(toks) * layers * (4 * d * d + 2 * d * ff) + 4.0 * sum(t * t for t in toks) * d * layers
    try:
        mkl = worker(py, ["gemm-peak", "--hidden", d, "--ffn", ff, "--threads", 1], 1, logdir, f"gemm-peak-{size}")
    except RuntimeError as e:
        log(str(e))
        return None
    peaks = [(mkl["gflops"], "torch.mm")]
    dnnl = engine_gemm_peak(protst)
    if dnnl:
        peaks.append((dnnl, "engine bench_cpu_gemm"))
    peak, where = max(peaks)
    floor = flop / (peak * 1e9)
    residues = sum(lens)
    eng, hf = residues / rows["engine"]["cpu"], residues / rows["hf"]["cpu"]
    log(f"roofline {size}: {flop / 1e9:.0f} GFLOP, peak {peak:.1f} GFLOP/CPU-s ({where}), floor {floor:.1f} CPU-s, "
        f"engine {eng:.1f}, HF {hf:.1f}: engine ÷ HF at most {hf / floor:.2f}")
    return (f"| ESM-2 {size} | {flop / 1e9:.0f} | {peak:.1f} ({where}; "
            + ", ".join(f"{w} {p:.1f}" for p, w in peaks) + f") | {floor:.1f} | {eng:.1f} ({floor / eng:.2f}) | "
            f"{hf:.1f} ({floor / hf:.2f}) | {hf / eng:.2f} | **{hf / floor:.2f}** |")


def rate_rows(results, unit_key):
    """results: list of dicts with tool, wall, cpu and the unit count; medians per tool."""
    by = {}
    for r in results:
        by.setdefault(r["tool"], []).append(r)
    rows = {}
    for tool, rs in by.items():
        cpu_rates = [r[unit_key] / r["cpu"] for r in rs if r["cpu"] > 0]
        wall_rates = [r[unit_key] / r["wall"] for r in rs if r["wall"] > 0]
        rows[tool] = dict(cpu=median(cpu_rates), wall=median(wall_rates), lo=min(cpu_rates, default=float("nan")),
                          hi=max(cpu_rates, default=float("nan")), n=len(rs))
    return rows


def table(title_rows, unit):
    out = [f"| work | threads | tool | {unit}/CPU-s | {unit}/s wall | CPU-s spread | engine ÷ tool (CPU-s) | "
           f"engine ÷ tool (wall) | runs |", "|---|---|---|---|---|---|---|---|---|"]
    for work, threads, rows in title_rows:
        eng = rows.get("engine")
        for tool, v in rows.items():
            rc = rw = "–"
            if eng and tool != "engine":
                rc, rw = f"{eng['cpu'] / v['cpu']:.2f}", f"{eng['wall'] / v['wall']:.2f}"
            out.append(f"| {work} | {threads} | {tool} | {fmt_rate(v['cpu'])} | {fmt_rate(v['wall'])} | "
                       f"{fmt_rate(v['lo'])}–{fmt_rate(v['hi'])} | {rc} | {rw} | {v['n']} |")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: 16 proteins, 1 round, short training runs")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (one tool at a time)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, --quick 1)")
    p.add_argument("--proteins", type=int, help="proteins embedded (default 256, --quick 16)")
    p.add_argument("--min-len", type=int, default=50)
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8, help="proteins per batch, engine and HF")
    p.add_argument("--models", nargs="+", default=["8m", "35m"], choices=["8m", "35m"])
    p.add_argument("--only", nargs="+", default=["embed", "train"], choices=["embed", "train"])
    p.add_argument("--skip-tools", nargs="+", default=[], choices=["hf", "esm-cpp"],
                   help="embedding peers not to run (esm-cpp takes ~25x the engine's time on an AVX2-only host)")
    p.add_argument("--train-steps", type=int, help="timed training steps, engine and twin, after 2 untimed "
                   "warm-up steps (default 30, --quick 4)")
    p.add_argument("--hf-attn", default="sdpa", choices=["sdpa", "eager"],
                   help="transformers attention implementation (sdpa is its default on CPU)")
    p.add_argument("--protst", default=str(REPO / "build/app/protst"), help="engine binary")
    p.add_argument("--no-engine", action="store_true", help="time the peers only")
    p.add_argument("--go-cache", default=str(REPO / "datasets/go"), help="GO dataset cache (quick-start build)")
    p.add_argument("--work", default=str(HERE / "work"), help="models, FASTA, outputs and logs")
    p.add_argument("--venv", default=os.environ.get("PROTST_PEERS_VENV", str(REPO / ".venv-peers")))
    p.add_argument("--out", default=None, help="also write the markdown section here (default <work>/results.md)")
    p.add_argument("--append-results", action="store_true", help="append the section to bench/RESULTS.md")
    a = p.parse_args()
    reexec_in_venv(Path(a.venv))

    rounds = a.rounds or (1 if a.quick else 3)
    n_prot = a.proteins or (16 if a.quick else 256)
    train_steps = a.train_steps or (4 if a.quick else 30)
    warmup = 2
    work = Path(a.work).resolve()
    logdir = work / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    protst = str(Path(a.protst).resolve())
    model_name, ncpu, commit, load0 = machine_info()
    started = datetime.datetime.now(datetime.timezone.utc)
    notes = []

    go = find_go_dataset(Path(a.go_cache))
    if go:
        source = f"GO dataset {go[1].parent.name} (test.jsonl + train.jsonl)"
        prots = pick_proteins(read_jsonl_proteins([go[1], go[0]]), n_prot, a.min_len, a.max_len)
    else:
        dat = REPO / "data/samples/SWISS100.dat"
        source = f"{dat.relative_to(REPO)} (no GO dataset under {a.go_cache})"
        prots = pick_proteins(read_uniprot_dat(dat), n_prot, a.min_len, a.max_len)
        notes.append(f"No GO dataset under {a.go_cache}: embedding proteins come from SWISS100.dat; "
                     "the training rows need the dataset (`protst dataset --max-len 512 --subset-train 20000 "
                     "--subset-test 1000`).")
    fasta = work / f"proteins_{len(prots)}.fasta"
    write_fasta(fasta, prots)
    lens = [len(s) for _, s in prots]
    residues = sum(lens)
    log(f"{len(prots)} proteins, {residues} residues (lengths {min(lens)}–{max(lens)}, mean {residues / len(lens):.0f}) "
        f"from {source} -> {fasta}")

    engine_why = "--no-engine" if a.no_engine else None
    if not engine_why and "embed" in a.only:
        engine_why = engine_supports_embed(protst)
        if engine_why:
            notes.append(f"Engine embedding not measured: {engine_why}.")
            log("engine embed skipped:", engine_why)

    # ---- embedding
    embed_rows, parity_rows, roofline_rows = [], [], []
    if "embed" in a.only:
        for size in a.models:
            hf_dir, ec_dir = work / f"esm2_{size}", work / f"esm2_{size}_esmcpp"
            if not (hf_dir / "model.safetensors").exists() or not (ec_dir / "model.safetensors").exists():
                log(f"building random-initialised ESM-2 {size} in {hf_dir}")
                worker(py, ["make-model", "--size", size, "--out", hf_dir, "--out-esmcpp", ec_dir], 1, logdir,
                       f"make-{size}")
            outputs = {}
            for threads in a.threads:
                results = []
                for rnd in range(rounds):
                    for tool in ("engine", "hf", "esm-cpp"):
                        if tool in a.skip_tools:
                            continue
                        tag = f"embed-{size}-t{threads}-r{rnd}-{tool}"
                        out = work / f"{tag}.npy"
                        try:
                            if tool == "engine":
                                if engine_why:
                                    continue
                                r = engine_embed(protst, hf_dir, fasta, out, a.batch_size, threads, logdir, tag)
                            elif tool == "hf":
                                r = worker(py, ["hf-embed", "--model", hf_dir, "--fasta", fasta, "--out", out,
                                                "--threads", threads, "--batch-size", a.batch_size, "--attn",
                                                a.hf_attn], threads, logdir, tag)
                            else:
                                r = worker(py, ["esmcpp-embed", "--model", ec_dir, "--fasta", fasta, "--out", out,
                                                "--threads", threads], threads, logdir, tag)
                        except RuntimeError as e:
                            log(str(e))
                            notes.append(f"{tag}: failed, see {logdir / (tag + '.log')}")
                            if tool == "engine":
                                engine_why = "it failed"
                            continue
                        r["residues"] = residues
                        results.append(r)
                        outputs.setdefault(tool, out)
                        log(f"{tag}: {residues / r['cpu']:.0f} res/CPU-s, {residues / r['wall']:.0f} res/s wall")
                embed_rows.append((f"embed ESM-2 {size}", threads, rate_rows(results, "residues")))
                if threads == 1:
                    rl = roofline(py, protst, hf_dir, lens, embed_rows[-1][2], logdir, size)
                    if rl:
                        roofline_rows.append(rl)
            ref = outputs.get("hf")
            for tool in ("engine", "esm-cpp"):
                if ref and tool in outputs:
                    c = worker(py, ["compare", outputs[tool], ref], 1, logdir, f"compare-{size}-{tool}")
                    if c.get("ok"):
                        parity_rows.append(f"| ESM-2 {size} | {tool} vs HF | {c['max_rel']:.2e} | "
                                           f"{c['min_cos']:.9f} | {'ok' if c['max_rel'] <= 1e-5 else 'FAIL'} |")
                    else:
                        parity_rows.append(f"| ESM-2 {size} | {tool} vs HF | {c.get('error')} | – | FAIL |")
                    log(parity_rows[-1])

    # ---- training step
    train_rows = []
    steps_tokens = {}
    if "train" in a.only:
        if not go:
            notes.append("Training rows skipped: the GO dataset (quick-start subset) is missing.")
        else:
            eng_train = not a.no_engine and Path(protst).exists()
            if not eng_train and not a.no_engine:
                notes.append(f"Engine training not measured: {protst} not found.")
            if eng_train and go[0].parent.name != QUICKSTART_DATASET:
                # the engine would start building the quick-start subset itself (download, clustering)
                eng_train = False
                notes.append(f"Engine training not measured: no {QUICKSTART_DATASET} under {a.go_cache}.")
            for threads in a.threads:
                results = []
                for rnd in range(rounds):
                    tag = f"train-t{threads}-r{rnd}"
                    if eng_train:
                        try:
                            r = engine_train(protst, warmup, warmup + train_steps, threads,
                                             Path(a.go_cache).resolve(), work, logdir, tag + "-engine")
                            results.append(r)
                            steps_tokens.setdefault("engine", []).append(r["tokens"] / r["steps"])
                            log(f"{tag}-engine: {r['tokens'] / r['cpu']:.0f} tok/CPU-s over {r['steps']} steps "
                                f"(whole process {r['process_cpu']:.1f} CPU-s)")
                        except (RuntimeError, KeyError, FileNotFoundError) as e:
                            log(f"engine training failed: {e}")
                            notes.append(f"{tag}-engine: failed ({str(e).splitlines()[0]})")
                            eng_train = False
                    try:
                        r = worker(py, ["twin-train", "--train", go[0], "--work", work, "--threads", threads,
                                        "--steps", train_steps, "--warmup", warmup, "--attn", a.hf_attn,
                                        "--batch-size", TRAIN_BATCH],
                                   threads, logdir, tag + "-twin")
                        r["tool"] = "PyTorch twin"
                        results.append(r)
                        steps_tokens.setdefault("twin", []).append(r["tokens"] / r["steps"])
                        log(f"{tag}-twin: {r['tokens'] / r['cpu']:.0f} tok/CPU-s over {r['steps']} steps "
                            f"({r['tokens'] / r['steps']:.0f} real tokens/step, {r['padded_tokens'] / r['steps']:.0f} "
                            "padded)")
                    except RuntimeError as e:
                        log(str(e))
                        notes.append(f"{tag}-twin: failed, see {logdir / (tag + '-twin.log')}")
                train_rows.append(("train step, quick-start", threads, rate_rows(results, "tokens")))

    # ---- report
    tok_per_step = ", ".join(f"{tool} {median(v):.0f}" for tool, v in steps_tokens.items())
    day = started.strftime("%Y-%m-%d")
    md = [f"### {day} — CPU peers — {model_name}, {ncpu} logical CPUs — commit {commit}", "",
          f"command: `python3 bench/cpu_peers/run.py {' '.join(sys.argv[1:])}`  ",
          f"{versions()}; load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f}. "
          "CPU numbers (no GPU).", ""]
    bullets = [
          f"- Embedding: {len(prots)} proteins, {residues} residues (lengths {min(lens)}–{max(lens)}) from {source}, "
          f"random-initialised ESM-2 configs (transformers `save_pretrained`). FASTA sorted by length for every tool; "
          f"engine and HF in batches of {a.batch_size} in that order (HF padded, attention `{a.hf_attn}`, fp32, "
          "`inference_mode`); esm-cpp one `forward_with_hidden_states` call per protein (its Python API returns hidden "
          "states only per sequence). Output: mean of the final hidden state over residues.",
          "- Timing: embedding by the engine = the whole process (`os.wait4` CPU-seconds, model load included); "
          "Python tools = the timed region of the worker, `time.process_time()` (interpreter and imports excluded; "
          "embedding: model load to embeddings written; training: the timed steps). One tool at a time, "
          f"{rounds} interleaved round(s), medians.",
          f"- Training: real (non-pad) tokens = residues + <cls>/<eos> + text tokens with [CLS]/[SEP]; {train_steps} "
          f"timed steps after {warmup} warm-up steps on both sides. Engine: `protst --config configs/quickstart.toml "
          f"train --steps {warmup + train_steps} --log-every 1 ...`, its CPU-seconds read from /proc/<pid>/stat when "
          f"the progress lines of step {warmup} and step {warmup + train_steps} arrive (start-up, checkpoint and "
          "final evaluation excluded). PyTorch twin: transformers EsmModel/BertModel + ProtST heads, same shapes, "
          "batches built like the engine's, forward + backward + clip 5 + Adam."
          + (f" Real tokens per step: {tok_per_step}." if tok_per_step else "")]
    if embed_rows:
        md += bullets[:2]
    if train_rows:
        md += bullets[1:] if not embed_rows else bullets[2:]
    md.append("")
    if embed_rows:
        md += [table(embed_rows, "res"), ""]
    if roofline_rows:
        md += ["How far the 1-thread embedding can go (a roofline in f32 arithmetic): the matrix-product FLOPs of the "
               "pass (Q/K/V/O and FFN over every real token incl. <cls>/<eos>, plus QK^T and PV per sequence; "
               "softmax, layer norm, GELU not counted), divided by the fastest f32 GEMM measured on this CPU at one "
               "thread (PyTorch/MKL `torch.mm` at the model's shapes and 1024^3; the engine's "
               "`bench_cpu_gemm`, oneDNN and its own kernel, when built). No implementation doing these FLOPs in f32 on this core can take "
               "fewer CPU-seconds than the floor, so HF's CPU-seconds over the floor bound engine ÷ HF.", "",
               "| model | GFLOP | best f32 GEMM, GFLOP/CPU-s (where) | floor, CPU-s | engine CPU-s (floor ÷ engine) "
               "| HF CPU-s (floor ÷ HF) | engine ÷ HF now | engine ÷ HF at most |",
               "|---|---|---|---|---|---|---|---|", *roofline_rows, ""]
    if parity_rows:
        md += ["| model | outputs | max abs diff / max abs ref | min cosine | ≤ 1e-5 |", "|---|---|---|---|---|",
               *parity_rows, ""]
    if train_rows:
        md += [table(train_rows, "tok"), ""]
    if notes:
        md += ["Notes:", *[f"- {n}" for n in notes], ""]
    text = "\n".join(md)
    print(text)
    out = Path(a.out) if a.out else work / "results.md"
    out.write_text(text + "\n")
    log(f"wrote {out}")
    if a.append_results:
        with open(REPO / "bench/RESULTS.md", "a") as f:
            f.write("\n" + text + "\n")
        log("appended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
