"""Workers of the CPU peer benchmark, run inside the peers' venv by run.py.

Each subcommand runs in its own process so that thread settings are fresh and the CPU-seconds
belong to one tool alone; it prints one JSON line (prefixed "RESULT ") with what it measured.

  make-model   random-initialised ESM-2 (facebook/esm2 config values) as a transformers folder,
               plus a copy in facebook's tensor naming for esm-cpp
  hf-embed     transformers EsmModel, eval, fp32, inference_mode: mean of the last hidden state
  esmcpp-embed esm-cpp forward_with_hidden_states: mean of the last (post-final-LN) hidden state
  twin-train   a PyTorch eager twin of the quick-start ProtST training step (Adam, clip 5)
  compare      max |a - b| / max |b| of two .npy files

Timed regions: from loading the model (after the Python imports) to the embeddings written,
counted with time.perf_counter() (wall) and time.process_time() (CPU-seconds of all threads).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

ESM_ALPHABET = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q",
                "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
ESM_IDS = {t: i for i, t in enumerate(ESM_ALPHABET)}
CLS, PAD, EOS, MASK = 0, 1, 2, 32

# facebook/esm2_t6_8M_UR50D and esm2_t12_35M_UR50D (config.json on the Hub).
ESM2_SIZES = {
    "8m": dict(hidden_size=320, num_hidden_layers=6, num_attention_heads=20, intermediate_size=1280),
    "35m": dict(hidden_size=480, num_hidden_layers=12, num_attention_heads=20, intermediate_size=1920),
    # the quick-start protein preset "tiny" (app/train.cpp): d64, 2 layers, 4 heads, FFN 4d
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
}


def quiet_transformers():
    try:
        from transformers.utils import logging
        logging.set_verbosity_error()
        logging.disable_progress_bar()
    except Exception:
        pass


def result(**kv):
    print("RESULT " + json.dumps(kv), flush=True)


def set_threads(n: int):
    import torch
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def read_fasta(path):
    ids, seqs, cur = [], [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if ids:
                    seqs.append("".join(cur))
                ids.append(line[1:].split()[0])
                cur = []
            elif line:
                cur.append(line)
    if ids:
        seqs.append("".join(cur))
    return ids, seqs


def esm_config(size: str, **extra):
    from transformers import EsmConfig
    return EsmConfig(vocab_size=33, max_position_embeddings=1026, layer_norm_eps=1e-5, token_dropout=True,
                     position_embedding_type="rotary", emb_layer_norm_before=False, mask_token_id=MASK,
                     pad_token_id=PAD, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     initializer_range=0.02, is_folding_model=False, use_cache=False, **ESM2_SIZES[size], **extra)


# ----------------------------------------------------------------------------------------- models

def cmd_make_model(a):
    """EsmForMaskedLM(config) with a fixed seed; LayerNorm parameters and biases are perturbed from
    their 1/0 initialisation so that a loader which drops or misnames them fails the parity check."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import EsmForMaskedLM, EsmTokenizer
    quiet_transformers()

    torch.manual_seed(a.seed)
    model = EsmForMaskedLM(esm_config(a.size)).eval()
    g = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif "LayerNorm" in name or "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)  # safetensors
    with open(os.path.join(a.out, "vocab.txt"), "w") as f:
        f.write("\n".join(ESM_ALPHABET) + "\n")
    EsmTokenizer(os.path.join(a.out, "vocab.txt")).save_pretrained(a.out)

    # esm-cpp 0.2.1 reads facebook's naming: LayerNorm.weight/.bias (transformers 5.x writes
    # LayerNorm.gamma/.beta) and a rotary inv_freq tensor in every layer.
    sd = load_file(os.path.join(a.out, "model.safetensors"))
    out = {}
    for k, v in sd.items():
        if k.endswith("LayerNorm.gamma"):
            k = k[: -len("gamma")] + "weight"
        elif k.endswith("LayerNorm.beta"):
            k = k[: -len("beta")] + "bias"
        out[k] = v.contiguous()
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    for i in range(cfg.num_hidden_layers):
        out[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = inv_freq.clone()
    os.makedirs(a.out_esmcpp, exist_ok=True)
    save_file(out, os.path.join(a.out_esmcpp, "model.safetensors"), metadata={"format": "pt"})
    n = sum(p.numel() for p in model.esm.parameters())
    result(size=a.size, params=n, hf_dir=a.out, esmcpp_dir=a.out_esmcpp)


# -------------------------------------------------------------------------------------- embedding

def batches_in_order(n, batch_size):
    return [list(range(s, min(n, s + batch_size))) for s in range(0, n, batch_size)]


def cmd_hf_embed(a):
    import numpy as np
    import torch
    set_threads(a.threads)
    ids, seqs = read_fasta(a.fasta)
    from transformers import EsmModel, EsmTokenizer
    quiet_transformers()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    tok = EsmTokenizer.from_pretrained(a.model)
    model = EsmModel.from_pretrained(a.model, add_pooling_layer=False, attn_implementation=a.attn,
                                     dtype=torch.float32).eval()
    out = np.zeros((len(seqs), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for b in batches_in_order(len(seqs), a.batch_size):
            enc = tok([seqs[i] for i in b], padding=True, return_tensors="pt")
            h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            # residues only: drop <cls> (position 0), <eos> and padding
            m = enc["attention_mask"].clone()
            m[:, 0] = 0
            m[torch.arange(len(b)), enc["attention_mask"].sum(1) - 1] = 0
            m = m.unsqueeze(-1).to(h.dtype)
            out[b] = ((h * m).sum(1) / m.sum(1)).numpy()
    np.save(a.out, out)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    res = sum(len(s) for s in seqs)
    result(tool="hf", wall=wall, cpu=cpu, proteins=len(seqs), residues=res, tokens=res + 2 * len(seqs),
           attn=model.config._attn_implementation, threads=torch.get_num_threads())


def cmd_esmcpp_embed(a):
    # The thread pool is sized from ESM_NUM_THREADS at the first model load (run.py sets it).
    import numpy as np
    import esm_cpp
    ids, seqs = read_fasta(a.fasta)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = esm_cpp.Model.load_from_safetensors(os.path.join(a.model, "model.safetensors"))
    tok = esm_cpp.Tokenizer()
    out = np.zeros((len(seqs), model.config.hidden_size), dtype=np.float32)
    # esm-cpp's Python API returns hidden states only per sequence (its batched/packed paths
    # return logits), so an embedding is one forward_with_hidden_states call per protein.
    for i, s in enumerate(seqs):
        t = np.asarray(tok.encode(s, add_special=True, truncate=False), dtype=np.int32)
        _, hs = model.forward_with_hidden_states(t)
        out[i] = hs[-1][1:-1].mean(0)  # post-final-LN, residues only
    np.save(a.out, out)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    res = sum(len(s) for s in seqs)
    result(tool="esm-cpp", wall=wall, cpu=cpu, proteins=len(seqs), residues=res, tokens=res + 2 * len(seqs),
           threads=esm_cpp.Model.num_threads, isa=esm_cpp.current_isa(), version=esm_cpp.__version__)


def cmd_compare(a):
    import numpy as np
    x, ref = np.load(a.a).astype(np.float64), np.load(a.ref).astype(np.float64)
    if x.shape != ref.shape:
        result(ok=False, error=f"shape {x.shape} vs reference {ref.shape}")
        return
    d = float(np.abs(x - ref).max() / np.abs(ref).max())
    cos = float(((x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))).min())
    result(ok=True, max_rel=d, min_cos=cos, rows=int(x.shape[0]))


# ------------------------------------------------------------------------------- training twin

def load_pairs(path, limit=None):
    pairs = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            pairs.append((r["id"], r["seq"], r["text"]))
            if limit and len(pairs) >= limit:
                break
    return pairs


def train_wordpiece(texts, vocab_size, out_dir):
    """A BERT WordPiece vocabulary of vocab_size trained on the training texts (as the engine does
    when it has no vocab.txt): lower case, strip accents, split punctuation."""
    from tokenizers import BertWordPieceTokenizer
    t = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
    t.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                          special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    os.makedirs(out_dir, exist_ok=True)
    t.save_model(out_dir)
    return t


class Twin:
    """The quick-start ProtST model in PyTorch (SPEC §2-3): transformers EsmModel (tiny preset) and
    BertModel encoders, two-layer ReLU projection MLPs, one cross-attention fusion layer without
    1/sqrt(d) scaling (shared per-modality bias-free Q/K/V, four maps, keys masked by padding),
    BatchNorm over real tokens + ReLU, MLM / MMP heads, multi-positive InfoNCE with a clamped
    learnable logit scale. Same shapes and losses as the engine, not bit-identical."""

    def __init__(self, text_vocab, text_pad, embed=128, heads=4, text_hidden=128, text_layers=2, text_heads=4,
                 max_text=64, attn="sdpa"):
        import torch
        from torch import nn
        from transformers import BertConfig, BertModel, EsmModel
        self.torch, self.nn = torch, nn
        pc = esm_config("tiny")
        tc = BertConfig(vocab_size=text_vocab, hidden_size=text_hidden, num_hidden_layers=text_layers,
                        num_attention_heads=text_heads, intermediate_size=4 * text_hidden,
                        max_position_embeddings=max(max_text, 64), pad_token_id=text_pad, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)
        pc._attn_implementation = attn
        tc._attn_implementation = attn
        dp, dt, e = pc.hidden_size, text_hidden, embed

        def mlp(i, h, o):
            return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))

        m = nn.ModuleDict(dict(
            protein=EsmModel(pc, add_pooling_layer=False), text=BertModel(tc, add_pooling_layer=False),
            graph_mlp=mlp(dp, dp, e), residue_mlp=mlp(dp, dp, e), text_mlp=mlp(dt, dt, e), word_mlp=mlp(dt, dt, e),
            q1=nn.Linear(e, e, bias=False), k1=nn.Linear(e, e, bias=False), v1=nn.Linear(e, e, bias=False),
            q2=nn.Linear(e, e, bias=False), k2=nn.Linear(e, e, bias=False), v2=nn.Linear(e, e, bias=False),
            bn_p=nn.BatchNorm1d(e), bn_t=nn.BatchNorm1d(e),
            mlm_head=mlp(e, e, 33), mmp_p_head=mlp(e, e, 33), mmp_t_head=mlp(e, e, text_vocab)))
        m.train()
        self.m, self.heads, self.e = m, heads, e
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def parameters(self):
        return list(self.m.parameters()) + [self.logit_scale]

    def attend(self, q, k, v, key_mask):
        # q [B, Lq, e], k/v [B, Lk, e]; no 1/sqrt(d) scaling (ProtST's fusion)
        torch = self.torch
        B, Lq, e = q.shape
        Lk, H = k.shape[1], self.heads
        q = q.view(B, Lq, H, e // H).transpose(1, 2)
        k = k.view(B, Lk, H, e // H).transpose(1, 2)
        v = v.view(B, Lk, H, e // H).transpose(1, 2)
        bias = torch.zeros(B, 1, 1, Lk, dtype=q.dtype).masked_fill(key_mask.view(B, 1, 1, Lk) == 0, float("-inf"))
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        return o.transpose(1, 2).reshape(B, Lq, e)

    @staticmethod
    def masked_bn(bn, x, mask):
        # BatchNorm statistics over real tokens only; padding rows stay zero
        flat, keep = x.reshape(-1, x.shape[-1]), mask.reshape(-1).bool()
        y = flat.new_zeros(flat.shape)
        y = y.index_put((keep.nonzero().squeeze(1),), bn(flat[keep]))
        return y.view(x.shape)

    def loss(self, b):
        torch, F, m = self.torch, self.torch.nn.functional, self.m
        hp = m["protein"](input_ids=b["pid"], attention_mask=b["pmask"]).last_hidden_state
        ht = m["text"](input_ids=b["tid"], attention_mask=b["tmask"]).last_hidden_state
        rm, wm = b["rmask"].unsqueeze(-1).float(), b["wmask"].unsqueeze(-1).float()
        pe = m["graph_mlp"]((hp * rm).sum(1) / rm.sum(1))
        te = m["text_mlp"]((ht * wm).sum(1) / wm.sum(1).clamp(min=1))
        residue, word = m["residue_mlp"](hp), m["word_mlp"](ht)
        # InfoNCE, both directions summed; identical texts are positives of each other
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        logits = scale * F.normalize(pe, dim=-1) @ F.normalize(te, dim=-1).t()
        pos = (b["group"].view(-1, 1) == b["group"].view(1, -1)).float()

        def multi_pos(lg):
            return (torch.logsumexp(lg, 1) - torch.logsumexp(lg.masked_fill(pos == 0, float("-inf")), 1)).mean()

        cl = multi_pos(logits) + multi_pos(logits.t())
        B, Lp, e = residue.shape
        Lt = word.shape[1]

        def masked_ce(h, index, target, head):
            return F.cross_entropy(head(h.reshape(-1, e)[index]), target)

        mlm = masked_ce(residue, b["pmi"], b["pmt"], m["mlm_head"])
        pmask_f, tmask_f = b["rmask"].float(), b["tmask"].float()
        q1, k1, v1 = m["q1"](residue), m["k1"](residue), m["v1"](residue)
        q2, k2, v2 = m["q2"](word), m["k2"](word), m["v2"](word)
        op = 0.5 * (self.attend(q1, k1, v1, pmask_f) + self.attend(q1, k2, v2, tmask_f)) * pmask_f.unsqueeze(-1)
        ot = 0.5 * (self.attend(q2, k1, v1, pmask_f) + self.attend(q2, k2, v2, tmask_f)) * tmask_f.unsqueeze(-1)
        fp = F.relu(self.masked_bn(m["bn_p"], op, pmask_f))
        ft = F.relu(self.masked_bn(m["bn_t"], ot, tmask_f))
        mmp_p = masked_ce(fp, b["pmi"], b["pmt"], m["mmp_p_head"])
        mmp_t = masked_ce(ft, b["tmi"], b["tmt"], m["mmp_t_head"]) if b["tmi"].numel() else fp.sum() * 0
        return cl + mlm + mmp_p + mmp_t


def make_twin_batches(pairs, tokenizer, n_batches, batch_size, max_protein, max_text, seed, bucket_batches=50):
    """Batches as the engine builds them (app/dataset.cpp): shuffled, sorted by length within windows
    of bucket_batches batches, proteins cropped to max_protein residues at a random offset, padded
    to the longest in the batch; texts [CLS] ... [SEP] of at most max_text tokens; ProtST masking."""
    import torch
    rng = random.Random(seed)
    vocab = tokenizer.get_vocab()
    cls_id, sep_id, pad_id, mask_id = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"], vocab["[MASK]"]
    items = []
    text_group = {}
    for _, seq, text in pairs:
        items.append([seq, text, text_group.setdefault(text, len(text_group))])
    encoded = set()

    def encode(i):  # only the items that land in a batch
        if i not in encoded:
            seq, text, g = items[i]
            t = tokenizer.encode(text, add_special_tokens=False).ids[: max_text - 2]
            items[i] = [[ESM_IDS.get(c, 3) for c in seq.upper()], [cls_id] + t + [sep_id], g]
            encoded.add(i)
    order = list(range(len(items)))
    rng.shuffle(order)
    window = bucket_batches * batch_size
    for s in range(0, len(order), window):
        order[s:s + window] = sorted(order[s:s + window], key=lambda i: len(items[i][0]))
    groups = [order[s:s + batch_size] for s in range(0, len(order) - batch_size + 1, batch_size)]
    rng.shuffle(groups)
    out = []
    for gi in range(n_batches):
        idx = groups[gi % len(groups)]
        B = len(idx)
        for i in idx:
            encode(i)
        crops = []
        for i in idx:
            r = items[i][0]
            keep = min(len(r), max_protein)
            st = rng.randrange(0, len(r) - keep + 1)
            crops.append(r[st:st + keep])
        Lp = max(len(c) for c in crops) + 2
        Lt = max(len(items[i][1]) for i in idx)
        pid = torch.full((B, Lp), PAD, dtype=torch.long)
        pmask = torch.zeros(B, Lp, dtype=torch.long)
        rmask = torch.zeros(B, Lp, dtype=torch.long)
        tid = torch.full((B, Lt), pad_id, dtype=torch.long)
        tmask = torch.zeros(B, Lt, dtype=torch.long)
        wmask = torch.zeros(B, Lt, dtype=torch.long)
        pmi, pmt, tmi, tmt = [], [], [], []
        residues = text_tokens = 0
        for b, (i, c) in enumerate(zip(idx, crops)):
            n = len(c)
            pid[b, 0], pid[b, 1:n + 1], pid[b, n + 1] = CLS, torch.tensor(c), EOS
            pmask[b, :n + 2], rmask[b, 1:n + 1] = 1, 1
            for p in sorted(rng.sample(range(n), max(1, int(0.15 * n)))):
                pmi.append(b * Lp + 1 + p)
                pmt.append(c[p])
                pid[b, 1 + p] = MASK
            t = items[i][1]
            tid[b, :len(t)], tmask[b, :len(t)] = torch.tensor(t), 1
            wmask[b, 1:len(t) - 1] = 1
            for j in range(1, len(t) - 1):
                if rng.random() < 0.15:
                    tmi.append(b * Lt + j)
                    tmt.append(t[j])
                    tid[b, j] = mask_id
            residues += n
            text_tokens += len(t)
        out.append(dict(pid=pid, pmask=pmask, rmask=rmask, tid=tid, tmask=tmask, wmask=wmask,
                        pmi=torch.tensor(pmi), pmt=torch.tensor(pmt), tmi=torch.tensor(tmi, dtype=torch.long),
                        tmt=torch.tensor(tmt, dtype=torch.long),
                        group=torch.tensor([items[i][2] for i in idx]),
                        real_tokens=residues + 2 * B + text_tokens, residues=residues, text_tokens=text_tokens,
                        padded_tokens=B * (Lp + Lt)))
    return out


def cmd_twin_train(a):
    import torch
    set_threads(a.threads)
    torch.manual_seed(a.seed)
    pairs = load_pairs(a.train)
    tok = train_wordpiece([p[2] for p in pairs], a.text_vocab, os.path.join(a.work, "twin_vocab"))
    vocab = tok.get_vocab()
    batches = make_twin_batches(pairs, tok, a.warmup + a.steps, a.batch_size, a.max_protein_len, a.max_text_len,
                                a.seed)
    twin = Twin(len(vocab), vocab["[PAD]"], max_text=a.max_text_len, attn=a.attn)
    params = twin.parameters()
    opt = torch.optim.Adam(params, lr=a.lr)

    def step(b):
        loss = twin.loss(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach().item()

    for b in batches[:a.warmup]:  # allocator and kernel warm-up, untimed
        step(b)
    timed = batches[a.warmup:]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    losses = [step(b) for b in timed]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tokens = sum(b["real_tokens"] for b in timed)
    result(tool="torch-twin", wall=wall, cpu=cpu, steps=len(timed), tokens=tokens,
           residues=sum(b["residues"] for b in timed), text_tokens=sum(b["text_tokens"] for b in timed),
           padded_tokens=sum(b["padded_tokens"] for b in timed), first_loss=losses[0], last_loss=losses[-1],
           params=sum(p.numel() for p in params), text_vocab=len(vocab), threads=torch.get_num_threads())


def cmd_gemm_peak(a):
    """The fastest f32 matrix product PyTorch (MKL) reaches on this CPU at the model's linear-layer shapes
    and at a large square one: GFLOP per CPU-second, best of 5 repeats of ~0.3 s each."""
    import torch
    set_threads(a.threads)
    d, ff, rows = a.hidden, a.ffn, a.rows
    shapes = [(rows, d, d), (rows, d, ff), (rows, ff, d), (rows, d, 3 * d), (1024, 1024, 1024)]
    best = {}
    with torch.inference_mode():
        for m, k, n in shapes:
            x, w = torch.randn(m, k), torch.randn(k, n)
            flop = 2.0 * m * k * n
            calls = max(1, int(2.4e10 / flop))
            for _ in range(2):
                torch.mm(x, w)
            rate = 0.0
            for _ in range(5):
                t0 = time.process_time()
                for _ in range(calls):
                    torch.mm(x, w)
                rate = max(rate, flop * calls / (time.process_time() - t0) * 1e-9)
            best[f"{m}x{k}x{n}"] = rate
    result(tool="torch-mm", gflops=max(best.values()), shapes=best, threads=torch.get_num_threads())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("make-model")
    s.add_argument("--size", choices=sorted(ESM2_SIZES), required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-esmcpp", required=True)
    s.add_argument("--seed", type=int, default=0)
    for name in ("hf-embed", "esmcpp-embed"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True)
        s.add_argument("--fasta", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--batch-size", type=int, default=8)
        s.add_argument("--attn", default="sdpa")
    s = sub.add_parser("compare")
    s.add_argument("a")
    s.add_argument("ref")
    s = sub.add_parser("twin-train")
    s.add_argument("--train", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--max-protein-len", type=int, default=128)
    s.add_argument("--max-text-len", type=int, default=64)
    s.add_argument("--text-vocab", type=int, default=4000)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--attn", default="sdpa")
    s = sub.add_parser("gemm-peak")
    s.add_argument("--hidden", type=int, required=True)
    s.add_argument("--ffn", type=int, required=True)
    s.add_argument("--rows", type=int, default=2400)
    s.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    {"gemm-peak": cmd_gemm_peak, "make-model": cmd_make_model, "hf-embed": cmd_hf_embed, "esmcpp-embed": cmd_esmcpp_embed,
     "compare": cmd_compare, "twin-train": cmd_twin_train}[a.cmd](a)


if __name__ == "__main__":
    main()
