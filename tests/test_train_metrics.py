"""samba.train.metrics against scikit-learn on hand-made cases, and the --subjects parser."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from samba.train.finetuning import parse_subjects
from samba.train.metrics import auroc, classification_metrics


def test_binary_hand_case():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    proba1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.2])
    proba = np.stack([1 - proba1, proba1], 1)
    m = classification_metrics(y, proba, from_logits=False)
    pred = (proba1 > 0.5).astype(int)  # [0,1,0,1,0,1,1,0]
    # by hand: class 0 recall 2/3, class 1 recall 3/5
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, proba1))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


def test_logits_equal_softmax_proba():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 2))
    y = rng.integers(0, 2, 50)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert classification_metrics(y, logits) == pytest.approx(classification_metrics(y, p, from_logits=False))


def test_multiclass_macro_ovr():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 10)
    logits = rng.standard_normal((30, 3)) + 1.5 * np.eye(3)[y]
    m = classification_metrics(y, logits)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    pred = logits.argmax(1)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))


def test_perfect_and_single_class():
    y = np.array([0, 1, 0, 1])
    p = np.eye(2)[y].astype(float)
    m = classification_metrics(y, p, from_logits=False)
    assert m == {"balanced_accuracy": 1.0, "auroc": 1.0, "kappa": 1.0, "f1": 1.0}
    assert math.isnan(auroc(np.zeros(4, int), p))  # undefined, not an exception


@pytest.mark.parametrize("text,expected", [("20-23", [20, 21, 22, 23]), ("1,3", [1, 3]), ("1-3,7", [1, 2, 3, 7]),
                                           (" 5 ", [5]), (None, None), ("", None)])
def test_parse_subjects(text, expected):
    assert parse_subjects(text) == expected


def test_parse_subjects_rejects_reversed_range():
    with pytest.raises(ValueError):
        parse_subjects("5-3")
