"""Classification evaluator and compute_accuracy on hand-computed examples."""

import numpy as np
import pytest
import torch

from engine.config import get_cfg_default
from engine.evaluation import EVALUATOR_REGISTRY, Classification, build_evaluator, compute_accuracy, macro_f1_score


def _logits(preds, num_classes=4):
    out = torch.zeros(len(preds), num_classes)
    out[torch.arange(len(preds)), torch.tensor(preds)] = 1.0
    return out


def test_accuracy_macro_f1_per_class_and_log_lines(tmp_path, caplog):
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    cfg.TEST.COMPUTE_CMAT = True
    cfg.OUTPUT_DIR = str(tmp_path)
    ev = build_evaluator(cfg, lab2cname={0: "cat", 1: "dog", 2: "owl", 3: "yak"})
    assert isinstance(ev, Classification)
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    ev.process(_logits(y_pred[:4]), torch.tensor(y_true[:4]))  # two batches
    ev.process(_logits(y_pred[4:]), torch.tensor(y_true[4:]))
    with caplog.at_level("INFO"):
        res = ev.evaluate()
    assert list(res) == ["accuracy", "error_rate", "macro_f1", "perclass_accuracy"]
    assert res["accuracy"] == pytest.approx(400 / 6)
    assert res["error_rate"] == pytest.approx(100 - 400 / 6)
    # F1 per class: c0 2*1/(2+1+1)=0.5, c1 2*2/(4+1+0)=0.8, c2 2*1/(2+0+1)=2/3
    assert res["macro_f1"] == pytest.approx(100 * (0.5 + 0.8 + 2 / 3) / 3)
    assert res["perclass_accuracy"] == pytest.approx((50 + 100 + 50) / 3)
    for line in [
        "=> result",
        "* total: 6",
        "* correct: 4",
        "* accuracy: 66.7%",
        "* error: 33.3%",
        "* macro_f1: 65.6%",
        "* class: 1 (dog)\ttotal: 2\tcorrect: 2\tacc: 100.0%",
        "* average: 66.7%",
    ]:
        assert line in "\n".join(caplog.messages).splitlines(), line
    cmat = torch.load(tmp_path / "cmat.pt", weights_only=False)
    assert np.allclose(cmat, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])

    ev.reset()
    ev.process(_logits([3, 3]), torch.tensor([3, 3]))
    assert ev.evaluate()["accuracy"] == 100.0


def test_macro_f1_only_over_labels_present_in_y_true():
    # label 3 is predicted but never true: it does not enter the average (sklearn labels=unique(y_true))
    assert macro_f1_score([0, 0, 1], [0, 3, 1]) == pytest.approx((2 / 3 + 1.0) / 2)
    assert macro_f1_score([2, 2], [2, 2]) == 1.0


def test_compute_accuracy_topk():
    out = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.2, 0.5, 0.3]])
    target = torch.tensor([2, 0, 1, 0])
    top1, top2 = compute_accuracy(out, target, topk=(1, 2))
    assert top1.item() == pytest.approx(25.0) and top2.item() == pytest.approx(75.0)
    assert compute_accuracy((out, None), target)[0].item() == pytest.approx(25.0)


def test_evaluator_errors():
    cfg = get_cfg_default()
    ev = build_evaluator(cfg, lab2cname={0: "a"})
    with pytest.raises(ValueError, match="no samples"):
        ev.evaluate()
    with pytest.raises(ValueError, match=r"logits \[B, C\]"):
        ev.process(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    cfg.TEST.PER_CLASS_RESULT = True
    with pytest.raises(ValueError, match="lab2cname"):
        build_evaluator(cfg)
    cfg.TEST.EVALUATOR = "Detection"
    with pytest.raises(KeyError, match="Classification"):
        build_evaluator(cfg)
    assert "Classification" in EVALUATOR_REGISTRY
