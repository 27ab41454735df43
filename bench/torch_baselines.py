#!/usr/bin/env python3
"""PyTorch twins of the engine's microbenchmarks (bench/bench_*.cpp|cu), timed the same way on
the same card: CUDA events after warm-up, median and p10-p90 of many samples, input sets rotated
past twice the L2, one row per measurement in the table format of bench/RESULTS.md.

impl is 'torch eager' or 'torch.compile' (default mode; compiled for four bf16 forward ops:
layer norm, attention softmax, gelu, bias add; each compile costs seconds of device time). Backward rows call the aten
backward kernels directly (native_layer_norm_backward, _softmax_backward_data, gelu_backward,
embedding_dense_backward), so they time the same work as the engine's backward kernels.

Usage: python3 bench/torch_baselines.py [--no-compile] [--only gemm,rowops,adam,elementwise]
"""
import argparse
import math
import sys
import time

import torch
import torch.nn.functional as F


def card():
    p = torch.cuda.get_device_properties(0)
    hbm = 4300e9 if "H200" in p.name else 3000e9  # measured device-to-device rates (BENCH.md, KINDS.md)
    return {"name": p.name, "bf16": 798e12, "hbm": hbm, "l2": getattr(p, "L2_cache_size", 50 << 20)}


def rotation_copies(nbytes, c):
    want = 2 * c["l2"] + 1
    return max(1, min(16, math.ceil(want / max(nbytes, 1))))


def time_it(run, samples=50, warmup=5):
    counter = 0
    for _ in range(warmup):
        run(counter)
        counter += 1
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    run(counter)
    counter += 1
    b.record()
    b.synchronize()
    one_ms = a.elapsed_time(b)
    inner = max(1, min(1000, int(0.2 / max(one_ms, 1e-4))))
    us = []
    for _ in range(samples):
        a.record()
        for _ in range(inner):
            run(counter)
            counter += 1
        b.record()
        b.synchronize()
        us.append(1000.0 * a.elapsed_time(b) / inner)
    us.sort()
    q = lambda f: us[int(f * (len(us) - 1) + 0.5)]
    return q(0.5), q(0.1), q(0.9)


def row(bench, op, shape, dtype, impl, t, amount, is_flops, c, limit=0.0):
    med, p10, p90 = t
    per_s = amount / (med * 1e-6)
    lim = limit or (c["bf16"] if is_flops else c["hbm"])
    ach = f"{per_s / 1e12:.1f} TFLOP/s" if is_flops else f"{per_s / 1e9:.0f} GB/s"
    print(f"| {bench} | {op} | {shape} | {dtype} | {impl} | {med:.1f} | {p10:.1f}-{p90:.1f} | {ach} | "
          f"{100.0 * per_s / lim:.0f}% |", flush=True)


def header():
    print("| bench | op | shape | dtype | impl | median us | p10-p90 us | achieved | of limit |")
    print("|---|---|---|---|---|---|---|---|---|")


def rand(shape, dtype, gen):
    mag = torch.rand(shape, device="cuda", generator=gen) + 0.5
    sign = torch.randint(0, 2, shape, device="cuda", generator=gen) * 2 - 1
    return (mag * sign).to(dtype)


def dname(dt):
    return {torch.bfloat16: "bf16", torch.float32: "f32"}[dt]


# ---------------------------------------------------------------- GEMM (same cases as bench_gemm.cu)
GEMM_CASES = [
    ("square", 1, 8192, 8192, 8192, False, False),
    ("esm650 qkv", 1, 8192, 1280, 1280, False, True),
    ("esm650 ffn up", 1, 8192, 5120, 1280, False, True),
    ("esm650 ffn down", 1, 8192, 1280, 5120, False, True),
    ("esm650 dW ffn up", 1, 5120, 1280, 8192, True, False),
    ("esm35 ffn up", 1, 32768, 1920, 480, False, True),
    ("attn QK^T h64", 320, 512, 512, 64, False, True),
    ("attn PV h64", 320, 512, 64, 512, False, False),
    ("attn QK^T h24", 1280, 512, 512, 24, False, True),
]


def gemm(c, gen):
    def case(g, dt, label, tf32, limit):
        name, batch, M, N, K, ta, tb = g
        torch.backends.cuda.matmul.allow_tf32 = tf32
        sa = (batch, K, M) if ta else (batch, M, K)
        sb = (batch, N, K) if tb else (batch, K, N)
        es = torch.tensor([], dtype=dt).element_size()
        copies = rotation_copies((math.prod(sa) + math.prod(sb) + batch * M * N) * es, c)
        As = [rand(sa, dt, gen) for _ in range(copies)]
        Bs = [rand(sb, dt, gen) for _ in range(copies)]
        Os = [torch.empty((batch, M, N), device="cuda", dtype=dt) for _ in range(copies)]

        def run(i):
            k = i % copies
            a = As[k].transpose(-1, -2) if ta else As[k]
            b = Bs[k].transpose(-1, -2) if tb else Bs[k]
            torch.matmul(a, b, out=Os[k])

        shape = f"{batch}x{M}x{N}x{K}" + (" ta" if ta else "") + (" tb" if tb else "")
        row("gemm", name, shape, label, "torch eager", time_it(run), 2.0 * batch * M * N * K, True, c, limit)
        torch.backends.cuda.matmul.allow_tf32 = False

    for g in GEMM_CASES:
        case(g, torch.bfloat16, "bf16", False, 0.0)
    # Linear with bias (bench_gemm linear_bias_case). The engine writes f32 from bf16 inputs; PyTorch's
    # F.linear on bf16 tensors writes bf16 (half the output bytes), which is what autocast runs.
    for name, _, M, N, K, _, _ in (GEMM_CASES[1], GEMM_CASES[2]):
        copies = rotation_copies((M * K + N * K + M * N) * 2, c)
        xs = [rand((M, K), torch.bfloat16, gen) for _ in range(copies)]
        W, bias = rand((N, K), torch.bfloat16, gen), rand((N,), torch.bfloat16, gen)
        row("gemm", name + " + bias", f"1x{M}x{N}x{K} tb", "bf16 (bf16 out)", "torch eager F.linear",
            time_it(lambda i: F.linear(xs[i % copies], W, bias)), 2.0 * M * N * K, True, c)
    for g in [("square", 1, 4096, 4096, 4096, False, False), GEMM_CASES[2]]:
        case(g, torch.float32, "f32", False, 67e12)
        case(g, torch.float32, "tf32", True, 495e12)


# ---------------------------------------------------------------- row ops (same cases as bench_rowops.cpp)
def rowops(c, gen, compile_ok):
    def sets(shape, dt, count):
        es = torch.tensor([], dtype=dt).element_size()
        copies = rotation_copies(math.prod(shape) * es * 3, c)
        return [[rand(shape, dt, gen) for _ in range(count)] for _ in range(copies)]

    for dt in (torch.bfloat16, torch.float32):
        for rows, n in ((8192, 1280), (32768, 480), (16384, 768)):
            s = (rows, n)
            shape = f"{rows}x{n}"
            es = torch.tensor([], dtype=dt).element_size()
            io = sets(s, dt, 2)
            w, b = rand((n,), dt, gen), rand((n,), dt, gen)
            fwd = lambda x: F.layer_norm(x, (n,), w, b, 1e-5)
            row("rowops", "layer_norm fwd", shape, dname(dt), "torch eager",
                time_it(lambda i: fwd(io[i % len(io)][0])), rows * n * es * 2, False, c)
            if compile_ok and dt == torch.bfloat16 and rows == 8192:
                cf = torch.compile(fwd)
                row("rowops", "layer_norm fwd", shape, dname(dt), "torch.compile",
                    time_it(lambda i: cf(io[i % len(io)][0])), rows * n * es * 2, False, c)
            stats = [torch.ops.aten.native_layer_norm(t[0], [n], w, b, 1e-5) for t in io]

            def bwd(i):
                k = i % len(io)
                _, mean, rstd = stats[k]
                torch.ops.aten.native_layer_norm_backward(io[k][1], io[k][0], [n], mean, rstd, w, b,
                                                          [True, True, True])

            row("rowops", "layer_norm bwd (+dw, db)", shape, dname(dt), "torch eager", time_it(bwd),
                rows * n * es * 3, False, c)
            if (rows, n) == (16384, 768):  # the post-LN residual block, as bench_rowops add_layer_norm_case
                addln = lambda x, r: F.layer_norm(x + r, (n,), w, b, 1e-5)
                row("rowops", "add + layer_norm fwd", shape, dname(dt), "torch eager",
                    time_it(lambda i: addln(io[i % len(io)][0], io[i % len(io)][1])), rows * n * es * 4, False, c)
                if compile_ok:
                    ca = torch.compile(addln)
                    row("rowops", "add + layer_norm fwd", shape, dname(dt), "torch.compile",
                        time_it(lambda i: ca(io[i % len(io)][0], io[i % len(io)][1])), rows * n * es * 4, False, c)

    for dt in (torch.bfloat16, torch.float32):
        for rows, n, log in ((320 * 512, 512, False), (8192, 33, True), (2048, 30522, True)):
            s = (rows, n)
            shape = f"{rows}x{n}"
            es = torch.tensor([], dtype=dt).element_size()
            io = sets(s, dt, 2)
            op = "log_softmax" if log else "softmax"
            fwd = (lambda x: torch.log_softmax(x, -1)) if log else (lambda x: torch.softmax(x, -1))
            row("rowops", op + " fwd", shape, dname(dt), "torch eager",
                time_it(lambda i: fwd(io[i % len(io)][0])), rows * n * es * 2, False, c)
            if compile_ok and dt == torch.bfloat16 and not log:
                cf = torch.compile(fwd)
                row("rowops", op + " fwd", shape, dname(dt), "torch.compile",
                    time_it(lambda i: cf(io[i % len(io)][0])), rows * n * es * 2, False, c)
            ys = [fwd(t[0]) for t in io]
            back = torch.ops.aten._log_softmax_backward_data if log else torch.ops.aten._softmax_backward_data
            row("rowops", op + " bwd", shape, dname(dt), "torch eager",
                time_it(lambda i: back(io[i % len(io)][1], ys[i % len(io)], -1, dt)), rows * n * es * 3, False, c)

    for rows, n, dt in ((8192, 1280, torch.bfloat16), (1280, 8192, torch.float32)):
        es = torch.tensor([], dtype=dt).element_size()
        io = sets((rows, n), dt, 1)
        row("rowops", "reduce_rows sum", f"{rows}x{n}", dname(dt), "torch eager",
            time_it(lambda i: io[i % len(io)][0].sum(-1)), rows * n * es, False, c)


# ---------------------------------------------------------------- Adam (same parameter lists as bench_adam.cpp)
def model_params(layers, d, ffn, vocab):
    sizes = [vocab * d]
    for _ in range(layers):
        sizes += [d * d, d] * 4 + [ffn * d, ffn, d * ffn, d] + [d] * 4
    return sizes


def adam(c, gen):
    small = model_params(12, 480, 1920, 33) + model_params(4, 768, 3072, 30522)
    for name, sizes in (("esm35+text4", small), ("esm650", model_params(33, 1280, 5120, 33))):
        params = [torch.nn.Parameter(rand((n,), torch.float32, gen)) for n in sizes]
        for p in params:
            p.grad = rand(p.shape, torch.float32, gen)
        total = sum(sizes)
        shape = f"{len(sizes)} tensors, {total // 1000000}M"
        for impl, kw in (("AdamW fused", {"fused": True}), ("AdamW foreach", {"foreach": True})):
            opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01, **kw)
            row("adam", name, shape, "f32", "torch " + impl, time_it(lambda i: opt.step(), 20, 2), 28.0 * total,
                False, c)
            del opt
        del params
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- elementwise and index (as bench_elementwise.cpp)
def elementwise(c, gen, compile_ok):
    s = (8192, 5120)
    n = math.prod(s)
    for dt in (torch.bfloat16, torch.float32):
        es = torch.tensor([], dtype=dt).element_size()
        copies = rotation_copies(n * es * 3, c)
        io = [[rand(s, dt, gen), rand(s, dt, gen), torch.empty(s, device="cuda", dtype=dt)] for _ in range(copies)]
        bias = rand((s[1],), dt, gen)
        shape = f"{s[0]}x{s[1]}"
        cases = [
            ("gelu fwd", lambda t: torch.nn.functional.gelu(t[0]), 2),
            ("gelu bwd", lambda t: torch.ops.aten.gelu_backward(t[1], t[0]), 3),
            ("add", lambda t: torch.add(t[0], t[1], out=t[2]), 3),
            ("add bias (broadcast)", lambda t: torch.add(t[0], bias, out=t[2]), 2),
        ]
        for op, fn, k in cases:
            row("elementwise", op, shape, dname(dt), "torch eager", time_it(lambda i: fn(io[i % copies])),
                k * n * es, False, c)
        if compile_ok and dt == torch.bfloat16:
            for op, fn, k in (("gelu fwd", lambda x: F.gelu(x), 2), ("add bias (broadcast)", lambda x: x + bias, 2)):
                cf = torch.compile(fn)
                row("elementwise", op, shape, dname(dt), "torch.compile",
                    time_it(lambda i: cf(io[i % copies][0])), k * n * es, False, c)

    s = (8192, 1280)
    n = math.prod(s)
    copies = rotation_copies(n * 2 * 2, c)
    xs = [rand((1280, 8192), torch.bfloat16, gen) for _ in range(copies)]
    row("elementwise", "copy transpose", "8192x1280", "bf16", "torch eager",
        time_it(lambda i: xs[i % copies].t().contiguous()), 2 * n * 2, False, c)
    fs = [rand(s, torch.float32, gen) for _ in range(rotation_copies(n * 6, c))]
    row("elementwise", "cast f32->bf16", "8192x1280", "f32->bf16", "torch eager",
        time_it(lambda i: fs[i % len(fs)].to(torch.bfloat16)), n * 6, False, c)

    tokens, d = 8192, 1280
    for vocab in (33, 30522):
        idx = torch.randint(0, vocab, (tokens,), device="cuda", generator=gen)
        table = rand((vocab, d), torch.bfloat16, gen)
        shape = f"{tokens} of {vocab}x{d}"
        row("index", "embedding index_select", shape, "bf16", "torch eager",
            time_it(lambda i: F.embedding(idx, table)), tokens * d * 2 * 2, False, c)
        for dt in (torch.float32, torch.bfloat16):
            es = torch.tensor([], dtype=dt).element_size()
            grad = rand((tokens, d), dt, gen)
            row("index", "embedding backward (embedding_dense_backward)", shape, dname(dt), "torch eager",
                time_it(lambda i: torch.ops.aten.embedding_dense_backward(grad, idx, vocab, -1, False), 20, 2),
                tokens * d * es * 2, False, c)

    grads = [rand((1280 * 5120 if i % 4 == 0 else 1280,), torch.bfloat16, gen) for i in range(200)]
    total = sum(g.numel() for g in grads)

    def nonfinite(_):
        bad = torch.stack([torch.logical_not(torch.isfinite(g)).any() for g in grads]).any()
        bad.item()

    row("elementwise", "any_nonfinite (incl. sync)", f"200 tensors, {total // 1000000}M", "bf16", "torch eager",
        time_it(nonfinite, 20, 2), total * 2, False, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--only", default="gemm,rowops,adam,elementwise")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("[cuda-skipped] no CUDA device: torch baselines not run")
        return 0
    c = card()
    print(f"torch_baselines on {c['name']} (torch {torch.__version__})")
    header()
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    t0 = time.time()
    parts = args.only.split(",")
    if "gemm" in parts:
        gemm(c, gen)
    if "rowops" in parts:
        rowops(c, gen, not args.no_compile)
    if "adam" in parts:
        adam(c, gen)
    if "elementwise" in parts:
        elementwise(c, gen, not args.no_compile)
    print(f"torch_baselines done in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
