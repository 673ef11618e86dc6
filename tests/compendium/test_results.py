"""Results files: the shared shape, honest pass/fail, atomic writes."""

from __future__ import annotations

import json
import math

import pytest

from compendium.results import check_claim, read_results, write_results


def test_check_claim_judges_the_number():
    assert check_claim("a", "s", 0.95, ">", 0.9, paper="p").passed
    assert not check_claim("a", "s", 0.85, ">", 0.9, paper="p").passed
    assert not check_claim("a", "s", 0.9, ">", 0.9, paper="p").passed
    assert check_claim("a", "s", 0.9, ">=", 0.9, paper="p").passed
    assert check_claim("a", "s", 1e-7, "<", 1e-5, paper="p").passed
    assert not check_claim("a", "s", math.nan, "<", 1.0, paper="p").passed  # NaN never passes
    with pytest.raises(ValueError, match="op must be"):
        check_claim("a", "s", 1, "==", 1, paper="p")


def test_write_results_shape(tmp_path):
    claims = [check_claim("c1", "statement", 0.97, ">", 0.9, paper="Someone 2020", reconstruction=True)]
    path = write_results(
        "99_x",
        "tiny",
        {"acc": 0.97, "nan": math.nan, "nested": {"a": [1, 2]}},
        claims,
        device="cpu",
        wall_time_s=1.23,
        root=tmp_path,
    )
    assert path == tmp_path / "tiny" / "99_x.json"
    doc = json.loads(path.read_text())
    assert set(doc) == {"chapter", "profile", "metadata", "metrics", "checks", "claims"}
    assert doc["checks"] == []
    assert set(doc["metadata"]) == {"commit", "date", "device", "versions", "wall_time_s", "training"}
    (c,) = doc["claims"]
    assert {"id", "paper", "statement", "measured", "threshold", "passed", "reconstruction"} <= set(c)
    assert c["passed"] is True and c["measured"] == 0.97 and c["reconstruction"] is True
    assert doc["metrics"]["nan"] is None
    assert read_results("99_x", "tiny", root=tmp_path) == doc
    assert not list((tmp_path / "tiny").glob(".tmp-*"))
    with pytest.raises(ValueError, match="at least one claim"):
        write_results("99_x", "tiny", {}, [], device="cpu", wall_time_s=0, root=tmp_path)


def test_device_line_names_the_threads_of_the_networks(tmp_path):
    """A chapter that trains its networks on 2 threads and then runs the rest on 1 says both; a run on one count
    says that count once (and "1 thread", not "1 threads")."""
    import torch

    from compendium.results import environment_metadata

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert environment_metadata("cpu", 0.0)["device"].endswith(" cores, 1 thread)")
        assert environment_metadata("cpu", 0.0, {1})["device"].endswith(" cores, 1 thread)")
        assert environment_metadata("cpu", 0.0, {2})["device"].endswith(
            " cores, networks on 2 threads, the rest on 1 thread)"
        )
        assert "networks on 1 thread and 2 threads" in environment_metadata("cpu", 0.0, {2, 1})["device"]
        torch.set_num_threads(2)
        assert environment_metadata("cpu", 0.0, {2})["device"].endswith(" cores, 2 threads)")
    finally:
        torch.set_num_threads(before)
