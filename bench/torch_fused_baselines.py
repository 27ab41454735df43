#!/usr/bin/env python3
"""PyTorch twins of the fused-op benchmarks (bench/bench_attention.cu, bench_info_nce.cu,
bench_masked_ce.cu), timed the same way on the same card with the helpers of torch_baselines.py
(CUDA events after warm-up, median and p10-p90, inputs rotated past twice the L2).

attention  F.scaled_dot_product_attention with the flash backend only (sdpa_kernel(FLASH_ATTENTION)),
           [B, H, L, D] bf16, scale 1/sqrt(D), the shapes of bench_attention.cu; forward and
           forward + backward; FLOPs with the FlashAttention accounting (fwd 4 B H L^2 D, fwd+bwd 3.5x).
           The varlen rows run the same batch padded to its longest sequence (SDPA's flash path takes
           no key mask) and report real tokens per second.
info_nce   logits = exp(min(s, ln 100)) * (p @ t.T) in bf16 then fp32 (as under autocast), cross-entropy
           both ways; eager and torch.compile; peak memory of one loss + gradient beyond the inputs.
masked_ce  hidden[index] -> F.linear(weight, bias) -> fp32 cross-entropy over the 15% masked rows of
           64k tokens, V = 33 and 30522; eager and torch.compile; peak memory.
Out-of-memory cases print a row saying so.

Usage: python3 bench/torch_fused_baselines.py [--no-compile] [--only attention,info_nce,masked_ce]
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baselines import card, header, rand, rotation_copies, row, time_it  # noqa: E402


def peak_mb(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 1e6


def oom_row(bench, op, shape, impl):
    print(f"| {bench} | {op} | {shape} | bf16 | {impl} | out of memory | | | |", flush=True)
    torch.cuda.empty_cache()


# ---------------------------------------------------------------- attention
def attention(c, gen):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def time_case(op, shape, B, H, L, D, flops, real_tokens=0.0):
        es = 2
        copies = rotation_copies(B * H * L * D * es * 7, c)
        sets = []
        for _ in range(copies):
            q, k, v = (rand((B, H, L, D), torch.bfloat16, gen).requires_grad_(True) for _ in range(3))
            sets.append((q, k, v, rand((B, H, L, D), torch.bfloat16, gen)))
        scale = 1.0 / math.sqrt(D)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            def fwd(i):
                q, k, v, _ = sets[i % copies]
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, scale=scale)

            def fwd_bwd(i):
                q, k, v, g = sets[i % copies]
                o = F.scaled_dot_product_attention(q, k, v, scale=scale)
                torch.autograd.grad(o, (q, k, v), g)

            row("attention", op + " fwd", shape, "bf16", "torch sdpa flash", time_it(fwd), flops, True, c)
            t = time_it(fwd_bwd)
            row("attention", op + " fwd+bwd", shape, "bf16", "torch sdpa flash", t, 3.5 * flops, True, c)
            if real_tokens:
                print(f"| attention | {op} fwd+bwd | {shape} | bf16 | torch sdpa flash | real tokens/s "
                      f"{real_tokens / (t[0] * 1e-6):.3g} | | | |", flush=True)

    for D in (24, 32, 64):
        for L in (128, 256, 512, 1024, 2048):
            H = 16
            B = max(1, (1 << 18) // (L * H))
            time_case("padded", f"{B}x{L}x{H}x{D}", B, H, L, D, 4.0 * B * H * L * L * D)
    # Varlen twin: the same lengths as bench_attention.cu (uniform in [L/4, L], seed fixed there with
    # std::mt19937; here torch's generator, so the draw differs but the distribution matches).
    for D in (32, 64):
        L, H = 1024, 16
        B = max(1, (1 << 18) // (L * H))
        g = torch.Generator().manual_seed(7)
        lens = torch.randint(L // 4, L + 1, (B,), generator=g)
        flops = sum(4.0 * H * n * n * D for n in lens.tolist())
        Lmax = int(lens.max())
        shape = f"{B} seqs in [{L // 4},{L}]x{H}x{D}"
        time_case("varlen", shape + " (padded to max)", B, H, Lmax, D, flops, float(lens.sum()))


# ---------------------------------------------------------------- InfoNCE
def info_nce_loss(p, t, s, labels):
    logits = (p @ t.T).float() * s.clamp(max=math.log(100.0)).exp()
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def info_nce(c, gen, compile_ok):
    compiled = torch.compile(info_nce_loss) if compile_ok else None
    D = 512
    for B in (256, 1024, 4096, 16384, 65536):
        shape = f"{B}x{D}"
        copies = rotation_copies(2 * B * D * 2, c)
        sets = []
        for _ in range(copies):
            p = F.normalize(rand((B, D), torch.float32, gen), dim=-1).to(torch.bfloat16).requires_grad_(True)
            t = F.normalize(rand((B, D), torch.float32, gen), dim=-1).to(torch.bfloat16).requires_grad_(True)
            sets.append((p, t))
        s = torch.tensor(math.log(1 / 0.07), device="cuda", requires_grad=True)
        labels = torch.arange(B, device="cuda")
        b2d = float(B) * B * D
        samples, warm = (10, 1) if B >= 16384 else (50, 5)
        impls = [("torch eager", info_nce_loss)]
        if compiled is not None and B in (4096, 16384):
            impls.append(("torch.compile", compiled))
        for impl, fn in impls:
            def fwd(i, fn=fn):
                p, t = sets[i % copies]
                with torch.no_grad():
                    fn(p, t, s, labels)

            def fwd_bwd(i, fn=fn):
                p, t = sets[i % copies]
                torch.autograd.grad(fn(p, t, s, labels), (p, t, s))

            try:
                mem = peak_mb(lambda: fwd_bwd(0))
                row("info_nce", "loss fwd", shape, "bf16", impl, time_it(fwd, samples, warm), 2.0 * b2d, True, c)
                row("info_nce", "loss fwd+bwd", shape, "bf16", impl, time_it(fwd_bwd, samples, warm), 6.0 * b2d,
                    True, c)
                print(f"| info_nce | loss fwd+bwd peak memory | {shape} | bf16 | {impl} | {mem:.1f} MB | | | |",
                      flush=True)
            except torch.cuda.OutOfMemoryError:
                oom_row("info_nce", "loss fwd+bwd", shape, impl)
        del sets
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- masked cross-entropy
def masked_ce_loss(hidden, weight, bias, index, targets):
    return F.cross_entropy(F.linear(hidden[index], weight, bias).float(), targets)


def masked_ce(c, gen, compile_ok):
    compiled = torch.compile(masked_ce_loss) if compile_ok else None
    N, d = 65536, 512
    M = (N * 15 + 50) // 100
    for V in (33, 30522):
        shape = f"{M}x{d} V{V}"
        copies = rotation_copies((M * d + V * d) * 2, c)
        sets = []
        for _ in range(copies):
            hidden = rand((N, d), torch.bfloat16, gen).requires_grad_(True)
            weight = (rand((V, d), torch.float32, gen) / math.sqrt(d)).to(torch.bfloat16).requires_grad_(True)
            bias = rand((V,), torch.bfloat16, gen).requires_grad_(True)
            index = torch.randperm(N, device="cuda", generator=gen)[:M]
            targets = torch.randint(0, V, (M,), device="cuda", generator=gen)
            sets.append((hidden, weight, bias, index, targets))
        mvd = float(M) * V * d
        impls = [("torch eager", masked_ce_loss)]
        if compiled is not None:
            impls.append(("torch.compile", compiled))
        for impl, fn in impls:
            def fwd(i, fn=fn):
                h, w, b, idx, tg = sets[i % copies]
                with torch.no_grad():
                    fn(h, w, b, idx, tg)

            def fwd_bwd(i, fn=fn):
                h, w, b, idx, tg = sets[i % copies]
                torch.autograd.grad(fn(h, w, b, idx, tg), (h, w, b))

            try:
                mem = peak_mb(lambda: fwd_bwd(0))
                row("masked_ce", "loss fwd", shape, "bf16", impl, time_it(fwd), 2.0 * mvd, True, c)
                row("masked_ce", "loss fwd+bwd", shape, "bf16", impl, time_it(fwd_bwd), 6.0 * mvd, True, c)
                print(f"| masked_ce | loss fwd+bwd peak memory | {shape} | bf16 | {impl} | {mem:.1f} MB | | | |",
                      flush=True)
            except torch.cuda.OutOfMemoryError:
                oom_row("masked_ce", "loss fwd+bwd", shape, impl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--only", default="attention,info_nce,masked_ce")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("[cuda-skipped] no CUDA device: torch fused baselines not run")
        return 0
    c = card()
    print(f"torch_fused_baselines on {c['name']} (torch {torch.__version__})")
    header()
    gen = torch.Generator(device="cuda")
    gen.manual_seed(4321)
    t0 = time.time()
    parts = args.only.split(",")
    if "attention" in parts:
        attention(c, gen)
    if "masked_ce" in parts:
        masked_ce(c, gen, not args.no_compile)
    if "info_nce" in parts:
        info_nce(c, gen, not args.no_compile)
    print(f"torch_fused_baselines done in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
