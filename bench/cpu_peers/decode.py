#!/usr/bin/env python3
"""Greedy decoding on the CPU: the engine's design arm (`protst design`) against Hugging Face
`generate` with a decoder of the same sizes (issue #12), per CPU-second, one thread each.

The engine side is a design checkpoint (`protst train --task design`); its decoder's sizes are read
from the checkpoint's metadata. The Hugging Face side is a randomly initialised `GPT2LMHeadModel`
of the same depth, width, heads, FFN width, vocabulary and positions with `add_cross_attention=True`
(pre-LayerNorm, GELU, tied output head, learned positions: the engine decoder's architecture),
decoding with `model.generate(do_sample=False, use_cache=True)` against random encoder states
(GPT-2's cross-attention reads memory of the decoder's width; the engine's memory is the text
encoder's width and is projected per layer, a once-per-sequence cost).

Both decode every sequence to exactly N tokens (min length = max length), so both do the same
number of steps. Timing isolates decoding: each side is timed at N and at 1 new token, and the
difference is divided by the (N-1) x sequences extra tokens, so model loading, process start and
prompt encoding cancel out. The engine runs as its own process (CPU-seconds from os.wait4,
OMP_NUM_THREADS=1); Hugging Face in a subprocess of the peers venv (time.process_time around
generate, torch.set_num_threads(1)). Rounds are interleaved; medians are reported.

    python3 bench/cpu_peers/decode.py --checkpoint runs/design/checkpoints/step-400.safetensors \
        --prompts prompts.txt [--batch-sizes 1 16] [--new-tokens 128] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

MAX_TEXT_LEN = 64
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

HF_CHILD = r'''
import json, sys, time, torch
from transformers import GPT2Config, GPT2LMHeadModel
a = json.loads(sys.argv[1])
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = GPT2Config(vocab_size=a["vocab"], n_positions=a["positions"], n_embd=a["hidden"], n_layer=a["layers"],
                 n_head=a["heads"], n_inner=a["ffn"], add_cross_attention=True, activation_function="gelu",
                 bos_token_id=a["bos"], eos_token_id=a["eos"], pad_token_id=a["pad"])
m = GPT2LMHeadModel(cfg).eval()
out = {}
with torch.inference_mode():
    for new in (1, a["new_tokens"]):
        cpu = 0.0
        for i0 in range(0, a["sequences"], a["batch"]):
            B = min(a["batch"], a["sequences"] - i0)
            enc = torch.randn(B, a["memory_len"], a["hidden"])
            mask = torch.ones(B, a["memory_len"], dtype=torch.long)
            ids = torch.full((B, 1), a["bos"], dtype=torch.long)
            t = time.process_time()
            g = m.generate(input_ids=ids, encoder_hidden_states=enc, encoder_attention_mask=mask,
                           max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True)
            cpu += time.process_time() - t
            assert g.shape[1] == new + 1, g.shape
        out[str(new)] = cpu
print(json.dumps(out))
'''


def checkpoint_decoder_config(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.get("__metadata__", {})
    for v in meta.values():
        try:
            j = json.loads(v)
        except (TypeError, ValueError):
            continue
        if isinstance(j, dict) and "decoder" in j and "config" in j["decoder"]:
            return j["decoder"]["config"]
    sys.exit(f"{path}: no decoder config in its metadata (a checkpoint of `protst train --task design`?)")


def engine_cpu(protst, ckpt, prompts, batch, new, out_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [protst, "design", "--checkpoint", ckpt, "--prompts", prompts, "--strategy", "greedy",
           "--min-length", str(new), "--max-length", str(new), "--batch-size", str(batch), "--device", "cpu",
           "--max-text-len", str(MAX_TEXT_LEN),
           "--no-progress", "--output", os.path.join(out_dir, f"d_{batch}_{new}.fasta")]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(p.pid, 0)
    log = p.stdout.read().decode()
    if status != 0:
        sys.exit(f"engine failed ({status}): {' '.join(cmd)}\n{log}")
    with open(os.path.join(out_dir, f"d_{batch}_{new}.fasta")) as f:
        lens = [len(l.strip()) for l in f if not l.startswith(">")]
    assert all(n == new for n in lens), f"engine sequences not all {new} long: {sorted(set(lens))}"
    return ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--prompts", required=True, help="one description per line")
    ap.add_argument("--sequences", type=int, default=32, help="prompts used (from the top of the file)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--memory-len", type=int, default=64,
                    help="prompt tokens: the engine keeps this many (--max-text-len), HF attends to this many positions")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--protst", default=str(REPO / "build/app/protst"))
    ap.add_argument("--venv", default=os.environ.get("PROTST_PEERS_VENV", str(REPO / ".venv-peers")))
    a = ap.parse_args()
    global MAX_TEXT_LEN
    MAX_TEXT_LEN = a.memory_len
    cfg = checkpoint_decoder_config(a.checkpoint)
    assert a.new_tokens + 1 <= cfg["max_position_embeddings"], "more tokens than the decoder's positions"
    py = os.path.join(a.venv, "bin", "python")
    with open(a.prompts) as f:
        lines = [l for l in f if l.strip()][: a.sequences]
    n = len(lines)
    with tempfile.TemporaryDirectory() as tmp:
        pfile = os.path.join(tmp, "prompts.txt")
        with open(pfile, "w") as f:
            f.writelines(lines)
        rows = []
        for batch in a.batch_sizes:
            eng, hf = [], []
            for r in range(a.rounds):
                e = engine_cpu(a.protst, a.checkpoint, pfile, batch, a.new_tokens, tmp) - \
                    engine_cpu(a.protst, a.checkpoint, pfile, batch, 1, tmp)
                args = dict(vocab=cfg["vocab_size"], positions=cfg["max_position_embeddings"], hidden=cfg["hidden_size"],
                            layers=cfg["num_hidden_layers"], heads=cfg["num_attention_heads"],
                            ffn=cfg["intermediate_size"], bos=cfg["bos_token_id"], eos=cfg["eos_token_id"],
                            pad=cfg["pad_token_id"], new_tokens=a.new_tokens,
                            sequences=n, batch=batch, memory_len=a.memory_len)
                res = json.loads(subprocess.run([py, "-c", HF_CHILD, json.dumps(args)], check=True,
                                                capture_output=True, text=True).stdout.strip().splitlines()[-1])
                h = res[str(a.new_tokens)] - res["1"]
                extra = (a.new_tokens - 1) * n
                eng.append(extra / e)
                hf.append(extra / h)
                print(f"batch {batch} round {r + 1}: engine {extra / e:.0f} tok/CPU-s, HF generate {extra / h:.0f} tok/CPU-s",
                      flush=True)
            rows.append((batch, statistics.median(eng), min(eng), max(eng), statistics.median(hf), min(hf), max(hf)))
    print(f"\ndecoder: {cfg['num_hidden_layers']} layers, width {cfg['hidden_size']}, {cfg['num_attention_heads']} heads, FFN "
          f"{cfg['intermediate_size']}, vocabulary {cfg['vocab_size']}; {n} sequences x {a.new_tokens} tokens, greedy, "
          f"KV cache, 1 thread; medians of {a.rounds} rounds (tokens per CPU-second of decoding)\n")
    print("| batch | engine tok/CPU-s | spread | HF generate tok/CPU-s | spread | engine ÷ HF |")
    print("|---|---|---|---|---|---|")
    for b, em, elo, ehi, hm, hlo, hhi in rows:
        print(f"| {b} | {em:.0f} | {elo:.0f}–{ehi:.0f} | {hm:.0f} | {hlo:.0f}–{hhi:.0f} | {em / hm:.2f} |")


if __name__ == "__main__":
    main()
