"""The encoder setting's forms (bot/nlu/encoders.py): a fused "a+b" setting, and the FusedEncoder's
vectors, on stand-in encoders (the real ones: tests/nlu/test_real_multilingual.py)."""

from __future__ import annotations

import numpy as np

from bot.nlu.encoders import FusedEncoder, fused_parts


class Fixed:
    """An encoder that maps each text to a fixed unnormalised vector."""

    def __init__(self, model_id: str, table: dict[str, list[float]]) -> None:
        self.model_id, self.table = model_id, table

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_a_plus_joins_encoders_and_a_folder_with_a_plus_is_a_folder(tmp_path) -> None:
    assert fused_parts("minilm") is None
    assert fused_parts("minilm+e5") == ["minilm", "e5"]
    assert fused_parts("minilm + e5 + use") == ["minilm", "e5", "use"]
    folder = tmp_path / "my+model"
    folder.mkdir()
    assert fused_parts(str(folder)) is None


def test_a_fused_cosine_is_the_mean_of_the_parts_cosines() -> None:
    a = Fixed("a", {"x": [3.0, 0.0], "y": [1.0, 1.0]})
    b = Fixed("b", {"x": [0.0, 2.0, 0.0], "y": [0.0, 0.0, 5.0]})
    fused = FusedEncoder([a, b])
    vectors = fused.encode(["x", "y"])
    assert vectors.shape == (2, 5) and fused.model_id == "a+b"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    cos_a, cos_b = 1 / np.sqrt(2), 0.0
    assert np.isclose(vectors[0] @ vectors[1], (cos_a + cos_b) / 2, atol=1e-6)


def test_a_fused_encoder_keeps_the_order_of_rows_and_parts() -> None:
    a = Fixed("a", {str(i): [float(i), 1.0] for i in range(50)})
    b = Fixed("b", {str(i): [1.0, float(i)] for i in range(50)})
    texts = [str(i) for i in range(50)]
    vectors = FusedEncoder([a, b]).encode(texts)
    expected = np.concatenate([a.encode(texts) / np.linalg.norm(a.encode(texts), axis=1, keepdims=True),
                               b.encode(texts) / np.linalg.norm(b.encode(texts), axis=1, keepdims=True)], axis=1)
    assert np.allclose(vectors, expected / np.sqrt(2), atol=1e-6)
