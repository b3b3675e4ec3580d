"""The generator model: a causal LM that writes a refinement after a prompt.

Training pairs are written as ``"<seed> =>"`` followed by ``" <target><eos>"``;
the loss is on the target's tokens only. A real base (SmolLM2-135M-Instruct by
default) is fine-tuned with LoRA (:mod:`peft`): only the adapter is saved with
a version, the base folder is named in ``generator.json``. The tiny test base
(:func:`build_tiny_base`, a 2-layer GPT-2 with a byte-level BPE tokenizer
trained in-process) is trained whole and saved inside the version.

Generation is batched beam search under :class:`~.decoding.WordTrie`, on CUDA
when present, else CPU. Worker-only: never imported by the request path.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .decoding import WordTrie
from .pairs import Pair

META = "generator.json"
PROMPT = "{seed} =>"


@dataclass
class TrainParams:
    """Hyper-parameters of one training run (defaults fit a CPU: ~5 minutes for SmolLM2)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-4
    lora: bool = True
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    max_length: int = 40
    seed: int = 13

    def as_dict(self) -> dict:
        return asdict(self)


def pick_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def build_tiny_base(texts: Iterable[str], folder: str | Path, *, seed: int = 0, vocab_size: int = 600) -> str:
    """A tiny GPT-2 (2 layers, width 64) with a byte-level BPE tokenizer trained
    on ``texts``, saved to ``folder`` (about 100 KB; for tests and quick benchmarks)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([t for t in texts] + [PROMPT.format(seed="x")], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(fast), n_positions=64, n_embd=64, n_layer=2, n_head=2,
                        eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return str(folder)


def _load_base(path: str, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.to(device), tokenizer


def _lora_targets(model) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, _m in model.named_modules()}
    if {"q_proj", "v_proj"} <= names:
        return ["q_proj", "v_proj"]
    if "c_attn" in names:
        return ["c_attn"]
    raise ValueError("cannot tell which layers of this base model take LoRA adapters")


def _batch(tokenizer, pairs: Sequence[Pair], max_length: int, device: str):
    eos = tokenizer.eos_token_id
    rows, labels = [], []
    for pair in pairs:
        prompt = tokenizer.encode(PROMPT.format(seed=pair.seed), add_special_tokens=False)
        target = tokenizer.encode(" " + pair.target, add_special_tokens=False) + [eos]
        ids = (prompt + target)[:max_length]
        rows.append(ids)
        labels.append(([-100] * len(prompt) + target)[:max_length])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels], device=device)
    return input_ids, mask, label_ids


class GeneratorModel:
    """A loaded generator: model, tokenizer and its ``generator.json`` metadata."""

    def __init__(self, model, tokenizer, meta: dict, device: str):
        self.model, self.tokenizer, self.meta, self.device = model, tokenizer, meta, device
        self._tries: dict[int, WordTrie] = {}

    # -- training ------------------------------------------------------------------------

    @classmethod
    def fit(cls, base: str, pairs: Sequence[Pair], folder: str | Path, params: TrainParams | None = None, *,
            device: str | None = None, log: Callable[[str], None] = lambda line: None) -> GeneratorModel:
        """Fine-tune ``base`` on ``pairs`` (sampled by weight) and save to ``folder``."""
        params = params or TrainParams()
        if not pairs:
            raise ValueError("no training pairs")
        device = pick_device(device)
        random.seed(params.seed)
        torch.manual_seed(params.seed)
        model, tokenizer = _load_base(base, device)
        if params.lora:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                                target_modules=_lora_targets(model), task_type="CAUSAL_LM",
                                fan_in_fan_out="c_attn" in _lora_targets(model))
            model = get_peft_model(model, config)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=params.lr)
        weights = [max(p.weight, 1e-6) for p in pairs]
        model.train()
        started, losses = time.perf_counter(), []
        for step in range(params.steps):
            batch = random.choices(pairs, weights=weights, k=params.batch_size)
            input_ids, mask, labels = _batch(tokenizer, batch, params.max_length, device)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if (step + 1) % max(1, params.steps // 5) == 0:
                log(f"step {step + 1}/{params.steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
        model.eval()
        meta = {"base": str(base), "lora": params.lora, "params": params.as_dict(), "pairs": len(pairs),
                "train_seconds": round(time.perf_counter() - started, 1),
                "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)}
        out = cls(model, tokenizer, meta, device)
        out.save(folder)
        return out

    def save(self, folder: str | Path) -> str:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta)
        if meta.get("lora"):
            self.model.save_pretrained(folder / "adapter")
        else:
            self.model.save_pretrained(folder / "model")
            meta["base"] = "model"
        self.tokenizer.save_pretrained(folder / "tokenizer")
        (folder / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return str(folder)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None) -> GeneratorModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        meta = json.loads((folder / META).read_text())
        device = pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if meta.get("lora"):
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(meta["base"], dtype=torch.float32)
            model = PeftModel.from_pretrained(base, str(folder / "adapter")).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(folder / meta["base"]), dtype=torch.float32)
        return cls(model.to(device).eval(), tokenizer, meta, device)

    # -- generation ----------------------------------------------------------------------

    def trie(self, words: Iterable[str]) -> WordTrie:
        words = sorted(set(words))
        key = hash(tuple(words))
        if key not in self._tries:
            self._tries = {key: WordTrie(self.tokenizer, words, self.tokenizer.eos_token_id)}
        return self._tries[key]

    @torch.no_grad()
    def generate(self, seeds: Sequence[str], words: Iterable[str], *, k: int = 10, batch_size: int = 16,
                 max_new_tokens: int = 8, keep_seed: bool = True) -> list[list[tuple[str, float]]]:
        """Up to ``k`` distinct refinements of each seed, best first, with a score
        in (0, 1] (the beam's length-normalised probability). Only ``words`` are
        written; with ``keep_seed``, every word of the seed that ``words`` holds
        too, and ``max_new_tokens`` tokens more than the seed at most."""
        trie = self.trie(words)
        tok = self.tokenizer
        tok.padding_side = "left"
        out: list[list[tuple[str, float]]] = []
        for first in range(0, len(seeds), batch_size):
            chunk = list(seeds[first:first + batch_size])
            enc = tok([PROMPT.format(seed=s) for s in chunk], return_tensors="pt", padding=True,
                      add_special_tokens=False).to(self.device)
            length = enc["input_ids"].shape[1]
            # The seed itself is not a refinement of it.
            banned = [frozenset({tuple(tok.encode(" " + s, add_special_tokens=False))}) for s in chunk]
            # A refinement keeps the seed's words (those the shop's vocabulary holds).
            required = [frozenset(ids for ids in (tuple(tok.encode(" " + w, add_special_tokens=False))
                                                  for w in s.split()) if trie.known(ids)) if keep_seed else frozenset()
                        for s in chunk]
            longest = max(len(b) for ban in banned for b in ban)
            beams = 2 * k
            result = self.model.generate(
                **enc, num_beams=beams, num_return_sequences=beams, max_new_tokens=longest + max_new_tokens,
                do_sample=False, prefix_allowed_tokens_fn=trie.prefix_fn(length, banned, required),
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, return_dict_in_generate=True, output_scores=True)
            written = result.sequences[:, length:]
            texts = tok.batch_decode(written, skip_special_tokens=True)
            # A beam cut off by max_new_tokens did not finish a text the constraint allows.
            finished = (written == tok.eos_token_id).any(dim=1).tolist()
            texts = [t if done else "" for t, done in zip(texts, finished, strict=True)]
            scores = result.sequences_scores.tolist() if getattr(result, "sequences_scores", None) is not None \
                else [0.0] * len(texts)
            for i, seed in enumerate(chunk):
                # What the constraint promises, checked on the text (a beam that
                # hit a dead end of the trie was ended there).
                keep = {w for w in seed.split() if w in trie.words} if keep_seed else set()
                seen: dict[str, float] = {}
                for text, score in zip(texts[i * beams:(i + 1) * beams], scores[i * beams:(i + 1) * beams],
                                       strict=True):
                    text = " ".join(text.split())
                    words = text.split()
                    if (text and text != seed and text not in seen and len(set(words)) == len(words)
                            and set(words) <= trie.words and keep <= set(words)):
                        seen[text] = round(math.exp(score), 6)
                out.append(sorted(seen.items(), key=lambda kv: -kv[1])[:k])
        return out
