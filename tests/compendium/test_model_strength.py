"""The committed ``cpu`` reference results come from models strong enough that a negative result means
something (issue #15): every CIFAR-10 model at >= 55 % test accuracy on the subset's 1,000 test images at
32x32, and chapter 6's Fashion-MNIST classifier with >= 500 test errors (room for the meta-classifier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CPU = Path(__file__).resolve().parents[2] / "results" / "cpu"
FLOOR = 0.55


def _metrics(chapter: str) -> dict:
    return json.loads((CPU / f"{chapter}.json").read_text())["metrics"]


def cifar_accuracies() -> dict[str, float]:
    """Every CIFAR-10 model's test accuracy that a ``cpu`` results file records."""
    out = {"02 MC dropout": _metrics("02_ua_backprop")["cifar10_accuracy"]}
    out["04 EDL"] = _metrics("04_uam")["cifar10"]["accuracy"]
    for name, acc in _metrics("05_explanation_uncertainty")["accuracy"].items():
        out[f"05 {name}"] = acc
    out["07 MC dropout"] = _metrics("07_justification")["cifar10"]["accuracy"]["classifier.3"]["network"]
    return out


@pytest.mark.parametrize("model", sorted(cifar_accuracies()))
def test_every_cpu_cifar_model_learns(model):
    acc = cifar_accuracies()[model]
    assert acc is not None and acc >= FLOOR, f"{model}: test accuracy {acc} < {FLOOR}"


def test_chapter_6_fashion_classifier_leaves_room():
    fm = _metrics("06_gradient_meta_classification")["fashion_mnist"]
    assert fm["n_wrong"] >= 500, fm["n_wrong"]
