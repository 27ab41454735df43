#!/usr/bin/env python3
"""Fixtures for probe/function_metrics (issue #13): micro AUPR and macro-F1 from scikit-learn, and
CAFA protein-centric Fmax from an independent numpy implementation of the definition (CAFA-evaluator's
thresholds 0.01..1.00), on seeded random cases with ties, empty terms and unannotated proteins.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy scikit-learn
    /tmp/v/bin/python scripts/make_probe_metric_fixtures.py > tests/fixtures/probe_metrics/cases.json
"""
import json

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, f1_score


def fmax(scores, labels):
    annotated = labels.sum(1) > 0
    s, y = scores[annotated], labels[annotated]
    best = (0.0, 0.0)
    for step in range(1, 101):
        t = step / 100.0
        pred = s >= t
        hit = (pred & (y > 0)).sum(1)
        npred = pred.sum(1)
        has = npred > 0
        p = (hit[has] / npred[has]).mean() if has.any() else 0.0
        r = (hit / y.sum(1)).mean()
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        if f > best[0] + 0.0:
            best = (f, t)
    return best


def main():
    rng = np.random.default_rng(2026)
    cases = []
    for k in range(24):
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 25))
        labels = (rng.random((n, m)) < rng.uniform(0.05, 0.4)).astype(np.uint8)
        if k % 4 == 1:
            labels[:, 0] = 0  # a term without positives
        if k % 4 == 2 and n > 1:
            labels[0, :] = 0  # an unannotated protein
        noise = rng.random((n, m))
        scores = np.clip(0.6 * labels + 0.7 * noise - 0.1, 0, 1)
        if k % 3 == 0:
            scores = np.round(scores, 1)  # many ties
        else:
            scores = np.round(scores, 3)
        case = {"proteins": n, "terms": m, "scores": scores.ravel().tolist(), "labels": labels.ravel().tolist()}
        if labels.sum() > 0:
            case["micro_aupr"] = float(average_precision_score(labels.ravel(), scores.ravel()))
        if (labels.sum(1) > 0).any():
            f, t = fmax(scores, labels)
            case["fmax"], case["fmax_threshold"] = float(f), float(t)
        cases.append(case)
    single = []
    for k in range(8):
        n, c = int(rng.integers(1, 60)), int(rng.integers(2, 9))
        truth = rng.integers(0, c, n)
        pred = np.where(rng.random(n) < 0.5, truth, rng.integers(0, c, n))
        labels_present = sorted(set(truth.tolist()) | set(pred.tolist()))
        single.append({"classes": c, "truth": truth.tolist(), "predicted": pred.tolist(),
                       "accuracy": float((truth == pred).mean()),
                       "macro_f1": float(f1_score(truth, pred, average="macro", labels=labels_present))})
    print(json.dumps({"sklearn": sklearn.__version__, "numpy": np.__version__, "multilabel": cases,
                      "single_label": single}))


if __name__ == "__main__":
    main()
