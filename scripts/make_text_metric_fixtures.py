#!/usr/bin/env python3
"""Makes tests/fixtures/text_metrics/cases.json: reference values for decoders/text_metrics.*.

Every number comes from the reference packages themselves (nothing is re-implemented here):
  - sacrebleu: corpus BLEU (sacrebleu.corpus_bleu, all defaults: 13a tokenizer, smoothing 'exp',
    effective order off) over named subsets of the cases, mixed case and lowercase; sentence BLEU
    (sacrebleu.sentence_bleu, effective order on by default) and BLEU().sentence_score (effective
    order off) per case; 13a tokenisation (BLEU()._preprocess_segment) of odd strings.
  - rouge-score: rouge_scorer.RougeScorer(['rougeL'], use_stemmer=False/True).score(ref, hyp) per
    case (precision, recall, fmeasure) and the default tokenizer's tokens of the odd strings.
  - nltk (through rouge-score): PorterStemmer().stem of a word list.

The cases: hand-written ones (identical, empty, punctuation, units, hyphens, apostrophes, Greek,
entities, newlines, repetition, GO-like term lists, short hypotheses, no matches) and perturbed
UniProt function texts from tests/fixtures/tokenizer/uniprot_texts.txt (seeded, so reruns give the
same file as long as the package versions are the same; the versions are recorded in the file).

Run (PyPI only):
  python3 -m venv /tmp/venv-metrics
  /tmp/venv-metrics/bin/pip install sacrebleu==2.6.0 rouge-score==0.1.2 nltk==3.10.4
  /tmp/venv-metrics/bin/python scripts/make_text_metric_fixtures.py
then run test_data (tests/data/test_text_metrics.cpp).
"""
import json
import os
import platform
import random
import re
import unicodedata
from importlib import metadata

import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize
from sacrebleu.metrics import BLEU

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "text_metrics")
UNIPROT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "uniprot_texts.txt")

LONG_REF = (
    "Serine/threonine-protein kinase which is a key regulator of cell growth, proliferation and survival. "
    "It acts downstream of growth factor receptors and phosphorylates many substrates, including "
    "glycogen synthase kinase-3 beta (GSK3B), FOXO transcription factors and the tuberous sclerosis "
    "complex protein TSC2, thereby promoting protein synthesis, glucose uptake and glycogen synthesis. "
    "Has a molecular mass of 55.7 kDa; its activity is optimal at pH 7.5-8.0 and requires Mg(2+). "
) * 2
LONG_HYP = (
    "Serine/threonine protein kinase that is a key regulator of cell growth and survival. "
    "It acts downstream of growth factor receptors and phosphorylates several substrates, including "
    "glycogen synthase kinase 3 beta and FOXO transcription factors, thereby promoting protein "
    "synthesis and glucose uptake. Has a molecular mass of 55 kDa; activity is optimal at pH 7.5 and "
    "requires Mg(2+) or Mn(2+). "
) * 2

# (name, hypothesis, reference)
HAND = [
    ("identical_go", "ATP binding; protein kinase activity", "ATP binding; protein kinase activity"),
    ("identical_sentence", "Catalyzes the hydrolysis of ATP to ADP and phosphate.",
     "Catalyzes the hydrolysis of ATP to ADP and phosphate."),
    ("empty_hyp", "", "Catalyzes the hydrolysis of ATP."),
    ("empty_ref", "Binds DNA.", ""),
    ("both_empty", "", ""),
    ("whitespace_hyp", "  \t  ", "Binds zinc."),
    ("punctuation", "Kinase, which (probably) phosphorylates serine/threonine residues!",
     "Kinase that phosphorylates serine and threonine residues."),
    ("units_kda", "Has a molecular mass of 5.2 kDa.", "Molecular mass is 5.2 kDa"),
    ("thousands_comma", "A protein of 1,000 residues, 110.5 kDa.", "A protein of 1000 residues; 110,5 kDa"),
    ("hyphen_words", "ATP-binding cassette transporter", "ATP binding cassette (ABC) transporter"),
    ("ph_range", "Optimum pH is 7.5-8.0.", "Optimum pH is 7.5 to 8.0."),
    ("number_ranges", "Active between 10-20 degrees and at -5 Celsius.", "Active between 10 and 20 degrees, not at -5."),
    ("apostrophe_primes", "5'-3' exonuclease activity", "5' to 3' exonuclease activity"),
    ("apostrophe_possessive", "Required for the cell's response to stress", "Required for cellular response to stress."),
    ("curly_quotes", "The ‘core’ domain’s fold", "The 'core' domain's fold"),
    ("greek_ions", "Binds Ca²⁺ via its EF-hand; α-helical.", "Binds Ca(2+) via EF-hand domains; alpha-helical."),
    ("greek_beta", "β-lactamase class A", "beta-lactamase class A"),
    ("greek_capitals", "ΟΔΟΣ ΣΑΣ Σ-factor σ-factor", "οδος σας σ-factor Σ-factor"),
    ("dotted_i_kelvin", "İSTANBUL at 300 K", "istanbul at 300 k"),
    ("accents", "Protéine kinase de la paroi", "Proteine kinase de la paroi"),
    ("case_only", "atp binding protein kinase activity", "ATP Binding Protein Kinase Activity"),
    ("entities", "Na&amp;K ATPase &lt;alpha&gt; &quot;subunit&quot;", "Na&K ATPase <alpha> \"subunit\""),
    ("skipped_marker", "Binds <skipped> heme", "Binds heme"),
    ("newline_hyphen", "Transmembrane pro-\ntein of the\nplasma membrane", "Transmembrane protein of the plasma membrane"),
    ("trailing_ws", "Binds ATP .  \n", "Binds ATP."),
    ("tokenized_period", "Binds ATP .", "Binds ATP."),
    ("ec_number", "Kinase (EC 2.7.11.1).", "EC 2.7.11.1 kinase"),
    ("ions_chem", "Mg(2+)-dependent; 1,2-diacylglycerol and 3',5'-cyclic AMP binding",
     "Mg(2+) dependent 1,2-diacylglycerol binding; 3',5'-cyclic AMP binding"),
    ("nbsp_units", "Mass 5.2\u00a0kDa\u2003(approx.)", "Mass 5.2 kDa (approx.)"),
    ("ellipsis", "Binds ... something, etc.", "Binds something etc..."),
    ("symbols", "Ratio ~ 2:1 @ 37C; [Ca] > 10 uM | 50% / 100% #1 $ ^ _ `x` {y} +z=w?",
     "Ratio 2:1 at 37 C; [Ca] above 10 uM"),
    ("repeated_the", "the the the the the the the", "the cat is on the mat"),
    ("repeated_kinase", "kinase kinase kinase kinase", "kinase activity"),
    ("repeated_both", "binding binding protein binding", "protein binding binding"),
    ("go_partial", "ATP binding; protein kinase activity",
     "protein serine/threonine kinase activity; ATP binding; metal ion binding"),
    ("go_reordered", "metal ion binding; ATP binding",
     "ATP binding; metal ion binding; magnesium ion binding"),
    ("go_long", "DNA-binding transcription factor activity, RNA polymerase II-specific; nucleus",
     "DNA-binding transcription factor activity, RNA polymerase II-specific; regulation of transcription by RNA polymerase II; nucleus"),
    ("brevity_1tok", "Kinase.", "Serine/threonine-protein kinase involved in the regulation of the cell cycle."),
    ("brevity_2tok", "Protein kinase", "Protein kinase that regulates the cell cycle."),
    ("brevity_3tok", "ATP binding protein", "ATP binding protein of the ABC transporter family"),
    ("brevity_half", "Catalyzes the transfer of", "Catalyzes the transfer of a phosphate group from ATP to a serine."),
    ("zero_match", "Lorem ipsum dolor sit amet", "Catalyzes the transfer of phosphate"),
    ("zero_match_case", "KINASE ACTIVITY", "kinase activity"),
    ("unigram_only", "kinase the of activity", "the activity of kinase"),
    ("bigram_max", "protein kinase the regulator of growth", "the protein kinase regulator of cell growth"),
    ("longer_hyp", "Transcription factor that binds DNA and activates the transcription of many genes in the nucleus.",
     "Transcription factor."),
    ("long_sentence", LONG_HYP, LONG_REF),
    ("long_vs_short", LONG_REF, "Serine/threonine-protein kinase."),
    ("digits_only", "1 2 3 4 5 6", "1 2 3 4 5 7"),
    ("mixed_scripts", "Белок binds 亜鉛 zinc", "Protein binds zinc"),
    ("tabs_and_crlf", "Binds\tATP\r\nand GTP", "Binds ATP and GTP"),
    ("stemming", "Phosphorylates the proteins; binding activities regulated", "Phosphorylation of protein; binds activity regulation"),
]

ODD_STRINGS = [s for _, h, r in HAND for s in (h, r) if len(s) < 60] + [
    "a.b,c", "x..y,,z", "3.,4", ".5", "5.", ",5", "a-", "-a", "9-9-9", "&amp;quot;", "&&amp;",
    "<skipped><skipped>", "a-\n-\nb", "\n\n", "   ", "ΑΣ. ΣΑ ΑΣ'Σ Α\u0301Σ", "ΑΣ\u0301 ς", "Kelvin \u212a",
    "İi", "a\u00a0b\u2028c\u3000d\u0085e", "don't won’t", "C-terminal (by similarity)",
    "(2S)-2-hydroxy-acid", "x/y/z", "\u200bzero\u200bwidth", "tab\tsep\x0bvt\x1cfs",
]

STEM_WORDS = (
    "sky skies dying lying tying news innings inning outings outing cannings canning howe proceed "
    "exceed succeed caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated "
    "troubled sized hopping tanned falling hissing fizzed failing filing happy sky enjoy spy flies tried "
    "relational conditional rational valenci hesitanci digitizer conformabli radicalli differentli vileli "
    "analogousli vietnamization predication operator feudalism decisiveness hopefulness callousness "
    "formaliti sensitiviti sensibiliti fully generously analogi archaeology triplicate formative formalize "
    "electriciti electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable "
    "defensible irritant replacement adjustment dependent adoption homologou communism activate "
    "angulariti homologous effective bowdlerize probate rate cease controll roll phosphorylation "
    "phosphorylates dephosphorylated ubiquitination oxidoreductase hydrolase kinases binding bindings "
    "transmembrane mitochondrial membranes regulation regulates regulatory transcriptional proteins "
    "activities activity catalyzes catalytic hydrolysis synthesis synthesizes biosynthetic dependent "
    "glycosylated acetylation methylated oxidation reduction transporter transporting translocation "
    "signaling signalling apoptotic apoptosis proliferation differentiation development developmental "
    "yyyy yys ays oyes played yelled by ay aly eed ied sees 2mers 1000s cyclin"
).split()


def bleu_dict(s, full=True):
    d = {"score": s.score, "precisions": list(s.precisions), "bp": s.bp}
    if full:
        d.update({"counts": list(s.counts), "totals": list(s.totals), "sys_len": s.sys_len, "ref_len": s.ref_len})
    return d


def rouge_dict(s):
    return {"p": s.precision, "r": s.recall, "f": s.fmeasure}


def uniprot_cases(rng):
    lines = [l.rstrip("\n") for l in open(UNIPROT, encoding="utf-8")]
    desc = [l for l in lines if 80 <= len(l) <= 400 and not l.startswith(("RecName", '"')) and l.count(";") < 3]
    go = [l for l in lines if l.count(";") >= 5 and not l.startswith("RecName") and len(l) < 300]
    cases = []
    for k, ref in enumerate(desc[:16]):
        words = ref.split()
        kind = k % 6
        if kind == 0:    # drop about a fifth of the words
            hyp = " ".join(w for w in words if rng.random() > 0.2)
        elif kind == 1:  # swap a few adjacent words
            w = words[:]
            for _ in range(3):
                i = rng.randrange(len(w) - 1)
                w[i], w[i + 1] = w[i + 1], w[i]
            hyp = " ".join(w)
        elif kind == 2:  # first half only (brevity penalty)
            hyp = " ".join(words[: max(1, len(words) // 2)])
        elif kind == 3:  # another protein's description
            hyp = desc[(k + 7) % len(desc)]
        elif kind == 4:  # lower-cased, punctuation removed
            hyp = re.sub(r"[^\w\s]", "", ref.lower())
        else:            # words repeated and a sentence added
            hyp = " ".join(w + " " + w if rng.random() < 0.1 else w for w in words) + " Belongs to the protein kinase family."
        cases.append((f"uniprot_{k:02d}", hyp, ref))
    for k, ref in enumerate(go[:6]):
        terms = [t.strip() for t in ref.split(";")]
        hyp = "; ".join(rng.sample(terms, max(1, len(terms) // 2)))
        cases.append((f"uniprot_go_{k}", hyp, ref))
    return cases


def main():
    rng = random.Random(12)
    cases = HAND + uniprot_cases(rng)
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names)
    hyps = [c[1] for c in cases]
    refs = [c[2] for c in cases]

    bleu_eff0 = BLEU(effective_order=False)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scorer_stem = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    out_cases = []
    for name, h, r in cases:
        out_cases.append({
            "name": name, "hyp": h, "ref": r,
            "sentence_bleu": bleu_dict(sacrebleu.sentence_bleu(h, [r])),
            "sentence_bleu_lc": bleu_dict(sacrebleu.sentence_bleu(h, [r], lowercase=True), full=False),
            "sentence_bleu_no_eff": bleu_dict(bleu_eff0.sentence_score(h, [r]), full=False),
            "rougeL": rouge_dict(scorer.score(r, h)["rougeL"]),
            "rougeL_stem": rouge_dict(scorer_stem.score(r, h)["rougeL"]),
        })

    def idx(pred):
        return [i for i, n in enumerate(names) if pred(n)]

    subsets = {
        "all": list(range(len(cases))),
        "hand": idx(lambda n: not n.startswith("uniprot")),
        "uniprot": idx(lambda n: n.startswith("uniprot")),
        "go_like": idx(lambda n: n.startswith(("go_", "identical_go", "uniprot_go"))),
        "brevity": idx(lambda n: n.startswith("brevity")),
        "zero_match": idx(lambda n: n.startswith("zero_match")),
        "short_hyps_only": idx(lambda n: n in ("brevity_1tok", "brevity_2tok", "brevity_3tok")),
        "empty_hyp_only": idx(lambda n: n == "empty_hyp"),
        "both_empty_only": idx(lambda n: n == "both_empty"),
        "identical": idx(lambda n: n.startswith("identical")),
        "long": idx(lambda n: n.startswith("long")),
        "first_10": list(range(10)),
    }
    corpus = []
    for sname, ids in subsets.items():
        sh = [hyps[i] for i in ids]
        sr = [refs[i] for i in ids]
        for lc in (False, True):
            corpus.append({"name": sname, "indices": ids, "lowercase": lc,
                           "bleu": bleu_dict(sacrebleu.corpus_bleu(sh, [sr], lowercase=lc))})
    sig_metric = BLEU()
    sig_metric.corpus_score(hyps, [refs])
    signature = str(sig_metric.get_signature())
    mean_f = sum(c["rougeL"]["f"] for c in out_cases) / len(out_cases)
    mean_f_stem = sum(c["rougeL_stem"]["f"] for c in out_cases) / len(out_cases)

    pre_mixed, pre_lc = BLEU(), BLEU(lowercase=True)
    stemmer = porter.PorterStemmer()
    tokenize = [{"text": s,
                 "tok_13a": pre_mixed._preprocess_segment(s).split(),
                 "tok_13a_lc": pre_lc._preprocess_segment(s).split(),
                 "tok_rouge": rouge_tokenize.tokenize(s, None),
                 "tok_rouge_stem": rouge_tokenize.tokenize(s, stemmer)} for s in dict.fromkeys(ODD_STRINGS)]
    for t in tokenize:  # only what adds a check: the test falls back to the mixed-case/unstemmed lists
        if t["tok_13a_lc"] == t["tok_13a"]:
            del t["tok_13a_lc"]
        if t["tok_rouge_stem"] == t["tok_rouge"]:
            del t["tok_rouge_stem"]
        if not t["text"].isascii():  # str.lower() where more than ASCII is involved
            t["py_lower"] = t["text"].lower()
    stems = [[w, stemmer.stem(w)] for w in dict.fromkeys(STEM_WORDS)]

    doc = {
        "about": "Made by scripts/make_text_metric_fixtures.py; values from the packages named in versions.",
        "versions": {"python": platform.python_version(), "unicodedata": unicodedata.unidata_version,
                     "sacrebleu": metadata.version("sacrebleu"), "rouge-score": metadata.version("rouge-score"),
                     "nltk": metadata.version("nltk"),
                     "bleu_signature": signature},
        "cases": out_cases,
        "corpus_bleu": corpus,
        "mean_rougeL_f": mean_f,
        "mean_rougeL_stem_f": mean_f_stem,
        "tokenize": tokenize,
        "stems": stems,
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        # One list element per line: diffs of a rerun stay readable.
        f.write("{\n")
        keys = list(doc)
        for ki, k in enumerate(keys):
            v = doc[k]
            f.write(json.dumps(k) + ": ")
            if isinstance(v, list) and k != "stems":
                f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in v) + "\n]")
            else:
                f.write(json.dumps(v, ensure_ascii=False))
            f.write(",\n" if ki + 1 < len(keys) else "\n")
        f.write("}\n")
    print(f"{path}: {len(out_cases)} cases, {len(corpus)} corpus scores, {len(tokenize)} tokenisations, "
          f"{len(stems)} stems, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
