#!/usr/bin/env python3
"""Static checks of the CUDA kernels that need no GPU (run by CTest, label cuda-static).

For every kernels/cuda/*.cu, compiled for the configured architecture:
  - ptxas -v: registers, stack, spills and shared memory of every kernel. A kernel that spills
    registers to local memory fails the check (a silent slowdown nobody sees without a GPU).
  - PTX: every kernel whose name says it is a tensor-core kernel ("_mma") must contain
    mma.sync.aligned.m16n8k16 (bf16) instructions; the compiler must not have lost them.
Prints one table row per kernel, and exits non-zero on a failure.

Usage: check_cuda_static.py NVCC ARCH SOURCE_DIR
"""
import os
import re
import subprocess
import sys
import tempfile


def demangle_all(names):
    """Readable kernel names through c++filt: namespaces and parameter lists dropped."""
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), stdout=subprocess.PIPE, text=True, check=True).stdout
        pretty = out.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pretty = list(names)
    result = {}
    for raw, p in zip(names, pretty):
        p = re.sub(r"\(anonymous namespace\)::|pe::cuda::|\(.*\)$", "", p)
        result[raw] = re.sub(r"^void ", "", p).strip()
    return result


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout)
        raise SystemExit(f"check_cuda_static: command failed: {' '.join(cmd)}")
    return p.stdout


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    nvcc, arch, src = sys.argv[1], sys.argv[2].split(";")[0], sys.argv[3]
    kdir = os.path.join(src, "kernels", "cuda")
    flags = ["-std=c++17", f"-arch=sm_{arch}", "--expt-relaxed-constexpr", "-I", src]
    flags += os.environ.get("PE_STATIC_EXTRA_FLAGS", "").split()  # e.g. -maxrregcount=32 shows a failing run
    only = os.environ.get("PE_STATIC_ONLY")  # one file, e.g. attention.cu
    failures = []
    rows = []
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted(os.listdir(kdir)):
            if not f.endswith(".cu") or (only and f != only):
                continue
            path = os.path.join(kdir, f)
            out = run([nvcc, *flags, "-cubin", "-Xptxas", "-v", "-o", os.path.join(tmp, f + ".cubin"), path])
            current = None
            info = {}
            for line in out.splitlines():
                m = re.search(r"Compiling entry function '([^']+)'", line)
                if m:
                    current = m.group(1)
                    info[current] = {"spill": 0, "regs": 0, "stack": 0, "smem": 0}
                    continue
                if current is None:
                    continue
                m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
                if m:
                    info[current]["stack"] = int(m.group(1))
                    info[current]["spill"] = int(m.group(2)) + int(m.group(3))
                m = re.search(r"Used (\d+) registers", line)
                if m:
                    info[current]["regs"] = int(m.group(1))
                m = re.search(r"(\d+) bytes smem", line)
                if m:
                    info[current]["smem"] = int(m.group(1))
            ptx = run([nvcc, *flags, "-ptx", "-o", "-", path])
            bodies = {}
            for part in re.split(r"\n(?=\.(?:visible )?\.?entry )|\n(?=\.entry )", ptx):
                m = re.match(r"\.(?:visible \.)?entry (\S+?)\(", part.strip())
                if m:
                    bodies[m.group(1)] = part
            names = demangle_all(list(info))
            spills = sum(r["spill"] for r in info.values())
            summary.append((f, len(info), max((r["regs"] for r in info.values()), default=0),
                            max((r["smem"] for r in info.values()), default=0), spills))
            for name, r in sorted(info.items(), key=lambda kv: names[kv[0]]):
                short = names[name]
                tensor = "_mma" in name
                mma = bodies.get(name, "").count("mma.sync.aligned.m16n8k16") if tensor else None
                ok = r["spill"] == 0 and (not tensor or mma > 0)
                if r["spill"]:
                    failures.append(f"{f}: {short} spills {r['spill']} bytes")
                if tensor and not mma:
                    failures.append(f"{f}: {short} has no mma.sync.m16n8k16 instruction in its PTX")
                if tensor or not ok:
                    rows.append((f, short, r["regs"], r["stack"], r["spill"], r["smem"], "-" if mma is None else str(mma),
                                 "ok" if ok else "FAIL"))
    print("| file | kernels | max registers | max static smem B | spill B |")
    print("|---|---|---|---|---|")
    for r in summary:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print()
    print("| file | tensor-core kernel (or failing kernel) | registers | stack B | spill B | static smem B | mma.sync in PTX | |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"{sum(r[1] for r in summary)} kernels checked for sm_{arch}: no spills, tensor-core kernels use mma.sync"
          if not failures else "")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
