#!/usr/bin/env python3
"""Makes the tokenizer parity fixtures under tests/fixtures/tokenizer/.

1. uniprot_texts.txt: real UniProtKB/Swiss-Prot text (descriptions, CC blocks, keywords, GO term
   names, reference titles) taken verbatim from SWISS100.dat (first argument; by default
   data/samples/SWISS100.dat or the Debian libswiss-perl example). Kept as is when neither exists.
2. bert_expected.json: every UniProt line plus the hand-written hard cases below, each with the ids
   of Hugging Face's slow Python BertTokenizer (do_lower_case=True) on bert_uncased_vocab.txt, and a
   few truncated encodings. Lines where the fast (Rust) BertTokenizer disagrees are printed.
3. esm2_vocab.txt and esm_expected.json: protein strings with the ids our SPEC prescribes and the
   ids of HF's EsmTokenizer; the cases where they differ are printed (SPEC wins).

Requires: pip install transformers (no torch needed).
"""
import json
import os
import random
import sys

from transformers import BertTokenizer, EsmTokenizer
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
VOCAB = os.path.join(FIX, "bert_uncased_vocab.txt")
UNIPROT = os.path.join(FIX, "uniprot_texts.txt")


def extract_uniprot(dat_path):
    """Per entry: the DE block, the CC FUNCTION block, the KW block, the GO term names and the first
    reference title, each as one line (continuation lines joined by spaces), duplicates dropped."""
    lines = []
    entry = {}
    block = None  # (key, list of parts) being collected

    def close_block():
        nonlocal block
        if block and block[0] not in entry:
            entry[block[0]] = " ".join(block[1])
        block = None

    with open(dat_path, encoding="utf-8") as f:
        for raw in f:
            tag, body = raw[:2], raw[5:].rstrip("\n").strip()
            if tag == "CC" and block and block[0] == "CC" and not body.startswith("-!-") and not body.startswith("---"):
                block[1].append(body)
                continue
            if tag == "RT" and block and block[0] == "RT":
                block[1].append(body)
                continue
            if block and block[0] in ("CC", "RT"):
                close_block()
            if tag == "DE":
                entry.setdefault("DE", []).append(body)
            elif tag == "KW":
                entry.setdefault("KW", []).append(body)
            elif tag == "DR" and body.startswith("GO;"):
                if len(entry.setdefault("GO", [])) < 20:  # enough for variety, keeps the fixture small
                    entry["GO"].append(body.split(";")[2].strip()[2:])  # "C:cytoplasm" -> "cytoplasm"
            elif tag == "CC" and body.startswith("-!- FUNCTION:"):
                block = ("CC", [body[len("-!- FUNCTION:"):].strip()])
            elif tag == "RT":
                block = ("RT", [body])
            elif tag == "//":
                for key, sep in (("DE", " "), ("CC", None), ("KW", " "), ("GO", "; "), ("RT", None)):
                    v = entry.get(key)
                    if v:
                        text = v if sep is None else sep.join(v)
                        if text not in lines:
                            lines.append(text)
                entry = {}
    return lines


HARD_CASES = [
    "",
    "   \t\n  ",
    "Hello, World!",
    "The Ångström unit; naïve café résumé coöperate façade",
    "α-helix and β-sheet; γ-secretase, δ-aminolevulinate, Ω-loop, µM and μM",
    "ΟΔΟΣ ΣΑΣ Σ ΑΣ. ὈΔΥΣΣΕΎΣ ΜΆΡΚΟΣ's (ΣΑΣ) Σ1",
    "İstanbul STRAẞE Straße ǅemal Ǆ ﬁnal ﬀ",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ，ｗｉｔｈ　ideographic　space",
    "中文字符测试 mixed with English 和数字123",
    "日本語のテキスト、カタカナ、ひらがな",
    "한국어 텍스트 테스트",
    "emoji 🧬🦠 👩‍🔬 👍🏽 🇺🇳 ☕️ end",
    "ctrl\x00chars\x01here\x7f and \x0bvertical\x0cfeed \x1c\x1d\x1e\x1f sep \x85nel",
    "tabs\tand\nnewlines\r\nand\rcarriage",
    "zero\u200bwidth soft\u00adhyphen bom\ufeffmark rtl\u200fmark",
    "replacement \ufffd char and private \ue000 use and unassigned \u0378 here",
    "line\u2028separator and paragraph\u2029separator",
    "no\u00a0break\u2009thin\u202fnarrow\u3000ideographic",
    "combining: e\u0301 a\u0300 o\u0308 n\u0303 \u0301alone",
    "Kelvin \u212a Ohm \u2126 Angstrom \u212b",
    "a" * 99,
    "b" * 100,
    "c" * 101,
    "d" * 150 + ". next",
    "antidisestablishmentarianism " * 3,
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "é" * 100,
    "한" * 34,
    "!!!???... --->  <<<>>> ((()))[[]]{{}} ~~~```^^^___ |||\\\\\\ @@@###$$$%%%&&&***+++===",
    "p53-dependent apoptosis; Fe(2+) and Ca(2+)-binding; Na(+)/K(+)-ATPase",
    "[4Fe-4S] cluster; 5'-3' exonuclease; (S)-2-aminopropanoate; 1,2-diacyl-sn-glycerol",
    "Ca²⁺-binding, 5′-UTR, 37 °C, Km = 5 μM ± 0.2, ≥ 10 kDa, 3×FLAG, A→B, 2–3 days — done…",
    "numbers: 3.14159 1,000,000 1.5e-3 10^-6 50% 0.0001 42nd 1990s",
    "https://www.uniprot.org/uniprotkb/P12345/entry?format=txt#section e-mail@domain.org",
    "don't won't Oxford’s “quoted” ‘single’ «guillemets» „low“",
    "HeLa mRNA DNA-PKcs tRNA(Ala) NAD(P)H CoA ATP-dependent",
    "Hello [MASK] world [CLS] and [SEP], [PAD] [UNK]; [mask] [Mask] [MASK]x x[SEP]y [MA\x01SK]",
    "ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 Ⓐⓑ Ⅻ ① ² ½",
    "مرحبا بالعالم، السَّلَامُ عَلَيْكُمْ",
    "नमस्ते दुनिया; ไทย ภาษา",
    "Ꭰ ꭰ Ა ა Ǳ ǳ",
]

def fuzz_cases(n, seed=1234):
    """Random strings mixing ASCII, controls, Latin/Greek/Cyrillic, combining marks, Indic, Thai,
    Hangul, CJK, compatibility forms, math letters and emoji. Code points unassigned in this Python's
    Unicode database are left out, since a C++ library on another Unicode version would see them
    differently."""
    import unicodedata
    rng = random.Random(seed)
    pools = [(0x20, 0x7F), (0x00, 0x20), (0x80, 0x250), (0x300, 0x370), (0x370, 0x400), (0x400, 0x530),
             (0x590, 0x700), (0x900, 0xA00), (0xE00, 0xE80), (0x1100, 0x1200), (0x13A0, 0x1400),
             (0x1C90, 0x1CC0), (0x1E00, 0x2000), (0x2000, 0x2070), (0x2100, 0x2200), (0x3000, 0x3100),
             (0x4E00, 0x4E80), (0xAB70, 0xABC0), (0xAC00, 0xAC80), (0xF900, 0xF980), (0xFB00, 0xFB50),
             (0xFE00, 0xFE70), (0xFF00, 0xFFF0), (0x10400, 0x10450), (0x1D400, 0x1D500), (0x1F300, 0x1F700)]
    out = []
    while len(out) < n:
        chars = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.2:
                chars.append(" ")
            elif r < 0.5:
                chars.append(chr(rng.randint(0x61, 0x7A)))
            else:
                lo, hi = rng.choice(pools)
                c = chr(rng.randrange(lo, hi))
                if unicodedata.category(c) != "Cn":
                    chars.append(c)
        out.append("".join(chars))
    return out


ESM_CASES = [
    "MKTAYIAKQRQISFVKSHFSRQ",
    "mktayiakqr",
    "MkTaYiAkQr",
    "MKJT",
    "MK TA\tY\nI\r\nAK",
    "MKX*",
    "M1K2",
    "ACDEFGHIKLMNPQRSTVWY",
    "XBUZO.-",
    "MK<mask>T<mask>",
    "<cls>M<eos>",
    "M<K>L<",
    "",
    "   ",
    "Mαβ",
    "M-K.L",
    "MKjjJ**",
]


# Odd strings for the casing/accents/CJK parity fixture (bert_hf_cases.json), encoded by HF's default
# (Rust-backed) BertTokenizer with do_lower_case true and false, and by EsmTokenizer.
ODD_CASES = [
    "", " ", "Σ", "ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ", "ΣΑΣ Σ ΑΣ.", "ΜΆΡΚΟΣ's", "(ΣΑΣ)", "Σ1 aΣ ΣΣ", "σς ΌΣΟΣ",
    "Ἀθῆναι Ελλάδα ΑΘΗΝΑ", "Café naïve RÉSUMÉ Ångström", "e\u0301 E\u0301 \u0301", "Łódź Ærø Øre ß ẞ",
    "İstanbul ı I", "Dž ǅ Ǆ ǆ", "ﬁ ﬀ ﬃ", "中文 a中b 漢字テスト", "ｶﾀｶﾅ ＡＢＣ １２３", "한국어 한",
    "🧬 🦠👩‍🔬 👍🏽 🇺🇳 ☕️ x🙂y", "5 mM 37°C 10µl 3.5kDa 1e-6 M 2×10³ ½", "pH7.4 0.1% v/v 100nm 12kb",
    "a" * 99, "B" * 100, "Ö" * 100, "x" * 101, "Supercalifragilisticexpialidocious" * 3,
    "MixedCASE WoRdS ALLCAPS lower", "[MASK] [mask] [CLS]x", "Ǳ ǲ ǳ Ꭰ ꭰ Ა ა",
]


def odd_cases(n=300, seed=4321):
    """ODD_CASES, then seeded random mixes of the kinds of text above (letters, Greek capitals with
    sigma, accented capitals, CJK, emoji, digits with units)."""
    rng = random.Random(seed)
    parts = ["Σ", "ΟΣ", "ΑΣ ", "σ", "É", "é", "Ü", "ñ", "Ç", "Å", "ø", "中", "文", "字", "日本", "한", "🧬", "👍🏽",
             "🇺🇳", "°C", "µM", "μm", "kDa", " ", " ", "-", ".", ",", "'", "(", ")", "1", "42", "3.5", "ABC",
             "abc", "Protein", "KINASE", "e\u0301", "ẞ", "ﬁ", "ǅ", "İ", "Ω", "Δ"]
    out = list(ODD_CASES)
    while len(out) < n:
        out.append("".join(rng.choice(parts) for _ in range(rng.randint(1, 12))))
    return out


def spec_esm_ids(seq, vocab):
    """Our SPEC: upper-case ASCII letters, skip whitespace, spelled-out <...> tokens whole, else <unk>,
    one per run of unknown characters (as HF's EsmTokenizer)."""
    ids = [vocab.index("<cls>")]
    unk = vocab.index("<unk>")
    run = False
    i = 0
    while i < len(seq):
        c = seq[i]
        if c in " \t\n\r\v\f":
            run = False
            i += 1
            continue
        if c == "<":
            j = seq.find(">", i)
            if j >= 0 and seq[i:j + 1] in vocab and len(seq[i:j + 1]) > 1:
                ids.append(vocab.index(seq[i:j + 1]))
                run = False
                i = j + 1
                continue
        up = c.upper() if c.isascii() else c
        if len(up) == 1 and up in vocab:
            ids.append(vocab.index(up))
            run = False
        elif not run:
            ids.append(unk)
            run = True
        i += 1
    ids.append(vocab.index("<eos>"))
    return ids


def main():
    dat = sys.argv[1] if len(sys.argv) > 1 else None
    for cand in [dat, os.path.join(ROOT, "data", "samples", "SWISS100.dat"),
                 "/usr/share/doc/libswiss-perl/examples/SWISS100.dat"]:
        if cand and os.path.exists(cand):
            with open(UNIPROT, "w", encoding="utf-8") as f:
                f.write("".join(x + "\n" for x in extract_uniprot(cand)))
            print("extracted", UNIPROT, "from", cand)
            break
    with open(UNIPROT, encoding="utf-8") as f:
        uniprot = f.read().splitlines()

    slow = BertTokenizerLegacy(VOCAB, do_lower_case=True)
    fast = BertTokenizer(VOCAB, do_lower_case=True)
    texts = uniprot + HARD_CASES + fuzz_cases(300)
    cases = []
    for t in texts:
        ids = slow.encode(t)
        case = {"text": t, "ids": ids}
        cases.append(case)
        fast_ids = fast.encode(t)
        if fast_ids != ids:
            case["fast_ids"] = fast_ids  # we follow the fast one on casing (capital sigma)
            print("fast tokenizer differs on", repr(t[:80]), "\n  slow", slow.convert_ids_to_tokens(ids),
                  "\n  fast", fast.convert_ids_to_tokens(fast_ids))
    truncated = []
    for t in uniprot[:40:4] + HARD_CASES[3:6]:
        for n in (2, 3, 8, 16):
            case = {"text": t, "max_len": n, "ids": slow.encode(t, truncation=True, max_length=n)}
            fast_ids = fast.encode(t, truncation=True, max_length=n)
            if fast_ids != case["ids"]:
                case["fast_ids"] = fast_ids
            truncated.append(case)
    import transformers
    with open(os.path.join(FIX, "bert_expected.json"), "w", encoding="utf-8") as f:
        # One case per line keeps the file small and diffs readable.
        head = {"generator": "scripts/make_tokenizer_fixtures.py",
                "reference": "transformers %s BertTokenizerLegacy (slow), do_lower_case=True" % transformers.__version__,
                "vocab": "bert_uncased_vocab.txt", "uniprot_lines": len(uniprot)}
        f.write(json.dumps(head, ensure_ascii=False)[:-1])
        for key, items in (("cases", cases), ("truncated", truncated)):
            f.write(',\n"%s": [\n' % key)
            f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in items))
            f.write("\n]")
        f.write("}\n")
    print("bert cases:", len(cases), "truncated:", len(truncated))

    esm_vocab = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
                 "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
    esm_vocab_path = os.path.join(FIX, "esm2_vocab.txt")
    with open(esm_vocab_path, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in esm_vocab))
    esm = EsmTokenizer(esm_vocab_path)
    esm_cases = []
    for s in ESM_CASES:
        hf = esm.encode(s)
        spec = spec_esm_ids(s, esm_vocab)
        esm_cases.append({"seq": s, "ids": spec, "hf_ids": hf})
        if hf != spec:
            print("EsmTokenizer differs from SPEC on", repr(s), "\n  spec", spec, "\n  hf  ", hf)
    odd = odd_cases()
    fast_lc = BertTokenizer(VOCAB, do_lower_case=True)
    fast_cased = BertTokenizer(VOCAB, do_lower_case=False)
    slow_lc = BertTokenizerLegacy(VOCAB, do_lower_case=True)
    odd_esm = ESM_CASES + ["J J", "JJ K J", "M KJ J*", "MJ<unk>J", "M<mas", "mK", "\u00e9\u00e9M\u00e9", "MK**JJ12"]
    with open(os.path.join(FIX, "bert_hf_cases.json"), "w", encoding="utf-8") as f:
        f.write('{"generator": "scripts/make_tokenizer_fixtures.py",\n'
                '"reference": "transformers %s BertTokenizer (Rust-backed, the default) on bert_uncased_vocab.txt: '
                'ids_lower with do_lower_case=True, ids_cased with do_lower_case=False; EsmTokenizer on esm2_vocab.txt",\n'
                '"bert": [\n' % transformers.__version__)
        rows = []
        for t in odd:
            row = {"text": t, "ids_lower": fast_lc.encode(t), "ids_cased": fast_cased.encode(t)}
            slow_ids = slow_lc.encode(t)
            if slow_ids != row["ids_lower"]:
                row["slow_ids_lower"] = slow_ids  # for the record (final sigma)
            rows.append(row)
        f.write(",\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
        f.write('\n],\n"esm": [\n')
        f.write(",\n".join(json.dumps({"seq": s, "hf_ids": esm.encode(s)}, ensure_ascii=False) for s in odd_esm))
        f.write("\n]}\n")
    print("odd bert cases:", len(odd))
    with open(os.path.join(FIX, "esm_expected.json"), "w", encoding="utf-8") as f:
        f.write('{"generator": "scripts/make_tokenizer_fixtures.py",\n'
                '"note": "ids follow SPEC section 1; hf_ids are HF EsmTokenizer\'s, for the record",\n"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in esm_cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
