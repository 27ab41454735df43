#!/usr/bin/env python3
"""Reference fixtures from Hugging Face `transformers` for the engine's ESM-2 / BERT parity tests.

Generate (deterministic, CPU, float64):

    python scripts/make_hf_fixtures.py                 # writes tests/fixtures/hf/<name>/
    python scripts/make_hf_fixtures.py --out DIR --only esm_tiny

Check a checkpoint folder written by the engine (model.safetensors + config.json) against
outputs the engine stored in a safetensors file:

    python scripts/make_hf_fixtures.py --check-engine-checkpoint DIR --kind esm|bert \
        --expect FILE.safetensors [--tol 1e-4] [--real-only] [--stock-hf]

See tests/fixtures/hf/README.md for what every file holds.
"""

import argparse
import contextlib
import copy
import json
import math
import os
import sys

import torch
from torch import nn

import transformers
from transformers import BertConfig, BertModel, EsmConfig, EsmForMaskedLM, EsmTokenizer
import transformers.models.esm.modeling_esm as modeling_esm
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "hf")

# ESM-2 alphabet in index order (SPEC.md section 1).
ESM_VOCAB = ("<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - "
             "<null_1> <mask>").split()
assert len(ESM_VOCAB) == 33 and ESM_VOCAB[1] == "<pad>" and ESM_VOCAB[32] == "<mask>"

SEED = 20240611

# --------------------------------------------------------------------------------------------
# Float64-exact variants of two spots where HF ESM drops to float32 even for a float64 model:
#  * rotary: EsmRotaryEmbedding computes inv_freq/freqs with .float() and apply_rotary_pos_emb
#    does q.float()/k.float() before rotating;
#  * token dropout: mask_ratio_observed = (...).sum(-1).float() / src_lengths is float32 when
#    the attention mask is an integer tensor (we pass the mask as float64 instead, see run_esm).
# The fixtures are produced with these patches so that a float64 engine can match to ~1e-12;
# the size of the difference to stock HF is measured and stored in the fixture metadata.
# --------------------------------------------------------------------------------------------


def _apply_rotary_f64(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (modeling_esm.rotate_half(q) * sin), (k * cos) + (modeling_esm.rotate_half(k) * sin)


def _rotary_forward_f64(self, x, position_ids, layer_type=None):
    dim = self.config.hidden_size // self.config.num_attention_heads
    inv_freq = 1.0 / (self.config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = position_ids[..., None].to(torch.float64) * inv_freq.to(x.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


@contextlib.contextmanager
def esm_float64_exact(enabled=True):
    if not enabled:
        yield
        return
    saved = (modeling_esm.apply_rotary_pos_emb, modeling_esm.EsmRotaryEmbedding.forward)
    modeling_esm.apply_rotary_pos_emb = _apply_rotary_f64
    modeling_esm.EsmRotaryEmbedding.forward = _rotary_forward_f64
    try:
        yield
    finally:
        modeling_esm.apply_rotary_pos_emb, modeling_esm.EsmRotaryEmbedding.forward = saved


# --------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------


def esm_config(hidden, layers, heads, inter):
    return EsmConfig(
        vocab_size=33, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=inter, token_dropout=True, position_embedding_type="rotary",
        layer_norm_eps=1e-5, emb_layer_norm_before=False, pad_token_id=1, mask_token_id=32,
        cls_token_id=0, eos_token_id=2, max_position_embeddings=1026,
        attn_implementation="eager")


def bert_config():
    return BertConfig(
        vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=96, max_position_embeddings=64, type_vocab_size=2,
        layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0,
        attn_implementation="eager")


def randomize_(model, gen):
    """Re-initialise every parameter with O(1)-scale random values (HF's 0.02-std init gives near
    uniform attention and near-identity LayerNorms, which would hide bugs): Linear W ~ N(0, 1/fan_in),
    biases ~ N(0, 0.1^2), LayerNorm weight ~ 1 + N(0, 0.2^2), embeddings ~ N(0, 1)."""
    touched = set()

    def normal(p, std, mean=0.0):
        p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std + mean)
        touched.add(id(p))

    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                normal(mod.weight, 1.0 / math.sqrt(mod.in_features))
                if mod.bias is not None:
                    normal(mod.bias, 0.1)
            elif isinstance(mod, nn.LayerNorm):
                normal(mod.weight, 0.2, 1.0)
                normal(mod.bias, 0.1)
            elif isinstance(mod, nn.Embedding):
                normal(mod.weight, 1.0)
        for name, p in model.named_parameters():
            if id(p) not in touched:  # e.g. lm_head.bias (a bare nn.Parameter)
                normal(p, 0.1)


def make_model(kind, cfg, seed):
    torch.manual_seed(seed)
    model = EsmForMaskedLM(cfg) if kind == "esm" else BertModel(cfg)
    model = model.double().eval()
    randomize_(model, torch.Generator().manual_seed(seed))
    if kind == "esm":
        assert model.lm_head.decoder.weight is model.esm.embeddings.word_embeddings.weight
    return model


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

ESM_SEQS = [
    "MKTAY<mask>AKQR<mask>",  # 13 tokens: full row, 2 <mask>
    "GS<mask>LV",            # 7 real tokens, 1 <mask>, 6 pads
    "WC",                    # 4 real tokens, no <mask>, 9 pads (heavily padded)
    "DEX<mask><mask>HNJ",     # 10 real tokens, 2 <mask>, X and J (-> <unk>)
]


def esm_inputs(vocab_path):
    tok = EsmTokenizer(vocab_path)
    enc = tok(ESM_SEQS, padding=True, return_tensors="pt")
    ids, am = enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)
    assert ids.shape == (4, 13), ids.shape
    assert am.sum(-1).tolist() == [13, 7, 4, 10]
    assert (ids == 32).sum(-1).tolist() == [2, 1, 0, 2]
    assert (ids[am == 0] == 1).all() and (ids[:, 0] == 0).all()
    return {"input_ids": ids, "attention_mask": am}


def bert_inputs(gen):
    B, L, CLS, SEP = 3, 11, 2, 3
    lens = [11, 6, 3]
    seg_b = [5, 4, None]  # first position of segment B (token_type 1), None: single segment
    ids = torch.zeros(B, L, dtype=torch.int64)
    am = torch.zeros(B, L, dtype=torch.int64)
    tt = torch.zeros(B, L, dtype=torch.int64)
    for b, (n, s) in enumerate(zip(lens, seg_b)):
        ids[b, :n] = torch.randint(5, 120, (n,), generator=gen)
        ids[b, 0] = CLS
        ids[b, n - 1] = SEP
        if s is not None:
            ids[b, s - 1] = SEP
            tt[b, s:n] = 1
        am[b, :n] = 1
    return {"input_ids": ids, "attention_mask": am, "token_type_ids": tt}


def random_weights(shape, gen):
    """Random float64, |w| in [0.25, 1.25], random sign: never zero."""
    mag = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.25
    sign = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return (mag * sign).to(torch.float64)


# --------------------------------------------------------------------------------------------
# Forward / backward
# --------------------------------------------------------------------------------------------


def forward(kind, model, inputs, exact=True, hidden_states=True):
    kw = dict(input_ids=inputs["input_ids"], output_hidden_states=hidden_states)
    if kind == "esm":
        # float64 mask: HF's token-dropout ratio is then computed in float64 (see header comment);
        # the mask is converted to bool for attention either way.
        kw["attention_mask"] = inputs["attention_mask"].to(torch.float64) if exact else inputs["attention_mask"]
        with esm_float64_exact(exact):
            return model(**kw)
    kw["attention_mask"] = inputs["attention_mask"]
    if "token_type_ids" in inputs:
        kw["token_type_ids"] = inputs["token_type_ids"]
    return model(**kw)


def main_output(kind, out):
    return out.logits if kind == "esm" else out.last_hidden_state


def loss_and_grads(kind, model, inputs, weights):
    model.zero_grad(set_to_none=True)
    out = forward(kind, model, inputs)
    loss = (main_output(kind, out) * weights).sum()
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads[name] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    model.zero_grad(set_to_none=True)
    return out, loss.detach(), grads


def untied_esm_grads(model, inputs, weights):
    """Gradient of the tied word embedding split into its two uses."""
    m2 = copy.deepcopy(model)
    m2.lm_head.decoder.weight = nn.Parameter(m2.esm.embeddings.word_embeddings.weight.detach().clone())
    assert m2.lm_head.decoder.weight is not m2.esm.embeddings.word_embeddings.weight
    _, _, g = loss_and_grads("esm", m2, inputs, weights)
    return {"grad_untied.esm.embeddings.word_embeddings.weight": g["esm.embeddings.word_embeddings.weight"],
            "grad_untied.lm_head.decoder.weight": g["lm_head.decoder.weight"]}


def finite_difference_check(kind, model, inputs, weights, grads, gen, n=8, eps=1e-5):
    """Central differences on a few random entries of a few parameters; returns max rel error."""
    params = dict(model.named_parameters())
    names = [k for k in grads if grads[k].abs().max() > 0]
    worst = 0.0
    pad_row = model.config.pad_token_id
    checked = 0
    while checked < n:
        name = names[int(torch.randint(len(names), (1,), generator=gen))]
        p = params[name]
        idx = int(torch.randint(p.numel(), (1,), generator=gen))
        if name.endswith("word_embeddings.weight") and idx // p.shape[1] == pad_row:
            continue  # nn.Embedding(padding_idx=pad) gives this row no gradient by design (see README)
        checked += 1
        with torch.no_grad():
            flat = p.view(-1)
            old = flat[idx].item()
            vals = []
            for d in (+eps, -eps):
                flat[idx] = old + d
                vals.append((main_output(kind, forward(kind, model, inputs, hidden_states=False)) * weights).sum().item())
            flat[idx] = old
        fd = (vals[0] - vals[1]) / (2 * eps)
        an = grads[name].view(-1)[idx].item()
        worst = max(worst, abs(fd - an) / max(abs(an), 1e-2))
    return worst


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

FIXTURES = {
    "esm_tiny": ("esm", lambda: esm_config(48, 2, 2, 192)),
    "esm_hd32": ("esm", lambda: esm_config(64, 2, 2, 256)),
    "bert_tiny": ("bert", bert_config),
}


def st_metadata(extra):
    md = {"torch_version": torch.__version__, "transformers_version": transformers.__version__,
          "seed": str(SEED), "generator": "scripts/make_hf_fixtures.py"}
    md.update({k: str(v) for k, v in extra.items()})
    # One key holding sorted JSON: safetensors writes a multi-key metadata map in hash order,
    # which would make the files differ byte-wise between otherwise identical runs.
    return {"fixture_info": json.dumps(md, sort_keys=True)}


def check_saved_checkpoint(kind, folder, model):
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    assert dtypes == {"F64"}, dtypes
    cls = EsmForMaskedLM if kind == "esm" else BertModel
    loaded, info = cls.from_pretrained(folder, dtype=torch.float64, output_loading_info=True,
                                       attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"from_pretrained reported {bad}"
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    if kind == "esm":
        assert loaded.lm_head.decoder.weight is loaded.esm.embeddings.word_embeddings.weight
    return keys


def generate(name, out_root):
    kind, cfg_fn = FIXTURES[name]
    seed = SEED + sum(map(ord, name))
    gen = torch.Generator().manual_seed(seed)
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)

    model = make_model(kind, cfg_fn(), seed)
    # save_original_format=False: tensor names are exactly the model's state_dict names (see README:
    # the transformers 5.x default would rename ESM's `LayerNorm.weight/bias` to `LayerNorm.gamma/beta`).
    model.save_pretrained(folder, save_original_format=False)
    saved_keys = check_saved_checkpoint(kind, folder, model)

    if kind == "esm":
        vocab_path = os.path.join(folder, "vocab.txt")
        with open(vocab_path, "w") as f:
            f.write("\n".join(ESM_VOCAB) + "\n")
        assert EsmTokenizer(vocab_path).convert_tokens_to_ids(ESM_VOCAB) == list(range(33))
        inputs = esm_inputs(vocab_path)
    else:
        inputs = bert_inputs(gen)

    mask = inputs["attention_mask"]
    with torch.no_grad():
        shape = main_output(kind, forward(kind, model, inputs, hidden_states=False)).shape
    weights = random_weights(tuple(shape), gen)

    out, loss, grads = loss_and_grads(kind, model, inputs, weights)
    tensors = dict(inputs)
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h.detach()
    if kind == "esm":
        tensors["logits"] = out.logits.detach()
        with torch.no_grad():  # last_hidden_state of the base model == hidden_states[-1] in transformers 5.x
            with esm_float64_exact():
                base = model.esm(input_ids=inputs["input_ids"], attention_mask=mask.to(torch.float64))
        tensors["last_hidden_state"] = base.last_hidden_state
        assert torch.equal(base.last_hidden_state, out.hidden_states[-1])
        # Output of the last EsmLayer before emb_layer_norm_after (what transformers 4.x returned as
        # hidden_states[-1]).
        captured = {}
        hook = model.esm.encoder.layer[-1].register_forward_hook(lambda m, a, o: captured.setdefault("x", o))
        with torch.no_grad():
            forward(kind, model, inputs, hidden_states=False)
        hook.remove()
        tensors["last_layer_output"] = captured["x"].detach()
    else:
        tensors["last_hidden_state"] = out.last_hidden_state.detach()
        tensors["pooler_output"] = out.pooler_output.detach()
        assert torch.equal(out.last_hidden_state, out.hidden_states[-1])
    tensors["loss_weights"] = weights
    tensors["loss"] = loss.reshape(())
    for k, g in grads.items():
        tensors[f"grad.{k}"] = g
    if kind == "esm":
        split = untied_esm_grads(model, inputs, weights)
        total = grads["esm.embeddings.word_embeddings.weight"]
        s = split["grad_untied.esm.embeddings.word_embeddings.weight"] + split["grad_untied.lm_head.decoder.weight"]
        assert (s - total).abs().max() <= 1e-12 * max(1.0, total.abs().max().item())
        tensors.update(split)

    # Every parameter in model.safetensors has a grad.* entry (buffers such as inv_freq do not).
    param_names = set(grads)
    assert param_names <= set(saved_keys), param_names - set(saved_keys)
    assert set(saved_keys) - param_names <= {"esm.rotary_embeddings.inv_freq"}, set(saved_keys) - param_names

    # Stock HF (float32 rotary tables / token-dropout ratio) vs the float64-exact reference.
    with torch.no_grad():
        stock = main_output(kind, forward(kind, model, inputs, exact=False, hidden_states=False))
    ref = main_output(kind, out).detach()
    stock_abs = (stock - ref).abs().max().item()
    stock_rel = stock_abs / ref.abs().max().item()

    fd_err = finite_difference_check(kind, model, inputs, weights, grads, gen)
    assert fd_err < 1e-5, f"finite-difference check failed: {fd_err}"

    md = st_metadata({"fixture": name, "kind": kind, "loss": "sum(%s * loss_weights)" % (
        "logits" if kind == "esm" else "last_hidden_state"),
        "stock_hf_max_abs_diff": f"{stock_abs:.3e}", "stock_hf_max_rel_diff": f"{stock_rel:.3e}",
        "finite_difference_max_rel_err": f"{fd_err:.3e}"})
    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.float64, torch.int64), (k, v.dtype)
    save_file(tensors, os.path.join(folder, "fixture.safetensors"), metadata=md)

    # Real-token-only variant: the same loss with the weights zeroed at padding positions, so that
    # an engine that never computes padding rows (packed sequences) can compare gradients.
    w_real = weights * mask.to(torch.float64).unsqueeze(-1)
    _, loss_real, grads_real = loss_and_grads(kind, model, inputs, w_real)
    real = {"loss_weights_real": w_real, "loss_real": loss_real.reshape(())}
    for k, g in grads_real.items():
        real[f"grad_real.{k}"] = g
    if kind == "esm":
        sr = untied_esm_grads(model, inputs, w_real)
        real.update({k.replace("grad_untied.", "grad_real_untied."): v for k, v in sr.items()})
    save_file({k: v.contiguous() for k, v in real.items()}, os.path.join(folder, "fixture_real.safetensors"),
              metadata=st_metadata({"fixture": name, "kind": kind,
                                    "loss_real": "sum(output * loss_weights_real), loss_weights_real = "
                                                 "fixture.safetensors:loss_weights * attention_mask[..., None]"}))

    print(f"== {name}: loss={loss.item():.12g} loss_real={loss_real.item():.12g} "
          f"stock-HF diff abs={stock_abs:.2e} rel={stock_rel:.2e} fd-check rel={fd_err:.2e}")
    for fn in sorted(os.listdir(folder)):
        print(f"   {fn:28s} {os.path.getsize(os.path.join(folder, fn)):>9d} bytes")
    for k in tensors:
        if not k.startswith("grad"):
            print(f"   {k:28s} {str(tuple(tensors[k].shape)):16s} {tensors[k].dtype}")
    print(f"   grad.*: {len(grads)} tensors")


# --------------------------------------------------------------------------------------------
# Engine checkpoint check
# --------------------------------------------------------------------------------------------

# Keys whose absence from an engine checkpoint does not change any compared output.
IGNORABLE_MISSING = ("esm.contact_head.", "esm.rotary_embeddings.inv_freq")


def check_engine_checkpoint(args):
    kind = args.kind
    cls = EsmForMaskedLM if kind == "esm" else BertModel
    model, info = cls.from_pretrained(args.check_engine_checkpoint, dtype=torch.float64,
                                      output_loading_info=True, attn_implementation="eager")
    model.eval()
    ok = True
    for what in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        items = sorted(map(str, info.get(what) or []))
        if what == "missing_keys":
            ignorable = [k for k in items if k.startswith(IGNORABLE_MISSING)]
            if ignorable:
                print(f"note: missing (harmless for the compared outputs): {ignorable}")
            items = [k for k in items if not k.startswith(IGNORABLE_MISSING)]
        if items:
            print(f"FAIL: from_pretrained {what}: {items}")
            ok = False

    exp = load_file(args.expect)
    inputs = {"input_ids": exp["input_ids"].to(torch.int64), "attention_mask": exp["attention_mask"].to(torch.int64)}
    if kind == "bert" and "token_type_ids" in exp:
        inputs["token_type_ids"] = exp["token_type_ids"].to(torch.int64)
    with torch.no_grad():
        out = forward(kind, model, inputs, exact=not args.stock_hf, hidden_states=False)
    got = {"logits": out.logits} if kind == "esm" else {"last_hidden_state": out.last_hidden_state,
                                                        "pooler_output": out.pooler_output}
    primary = "logits" if kind == "esm" else "last_hidden_state"
    if primary not in exp:
        print(f"FAIL: {args.expect} has no '{primary}' tensor")
        return 1
    real = inputs["attention_mask"].bool()
    for key in [k for k in got if k in exp]:
        a, b = got[key], exp[key].to(torch.float64)
        if a.shape != b.shape:
            print(f"FAIL: {key}: shape HF {tuple(a.shape)} vs expected {tuple(b.shape)}")
            ok = False
            continue
        if args.real_only and a.dim() == 3:
            a, b = a[real], b[real]
        diff = (a - b).abs()
        max_abs = diff.max().item()
        rel = max_abs / max(b.abs().max().item(), 1e-30)
        elem = (diff / (b.abs() + 1e-6)).max().item()
        status = "ok" if rel <= args.tol and math.isfinite(rel) else "FAIL"
        ok &= status == "ok"
        print(f"{status}: {key} {tuple(exp[key].shape)} ({exp[key].dtype}): max abs err {max_abs:.3e}, "
              f"max rel err {rel:.3e} (max abs err / max |expected|; tol {args.tol:g}), "
              f"max elementwise rel err {elem:.3e}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output root (default tests/fixtures/hf)")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="generate only these fixtures")
    ap.add_argument("--check-engine-checkpoint", metavar="DIR",
                    help="HF-load an engine-written checkpoint folder and compare against --expect")
    ap.add_argument("--kind", choices=("esm", "bert"))
    ap.add_argument("--expect", metavar="FILE.safetensors")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative tolerance for the check mode")
    ap.add_argument("--real-only", action="store_true",
                    help="check mode: compare only positions where attention_mask == 1")
    ap.add_argument("--stock-hf", action="store_true",
                    help="check mode: run HF unpatched (float32 rotary tables / token-dropout ratio)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions

    if args.check_engine_checkpoint:
        if not args.kind or not args.expect:
            ap.error("--check-engine-checkpoint needs --kind and --expect")
        sys.exit(check_engine_checkpoint(args))

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for name in args.only or FIXTURES:
        generate(name, args.out)


if __name__ == "__main__":
    main()
