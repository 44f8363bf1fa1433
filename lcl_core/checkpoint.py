"""Pretrained model folders: ``config.json`` + ``model.safetensors`` + ``tokenizer/``.

:func:`load_pretrained` also accepts a run folder (it reads the run's ``final/``) and an official
open_clip-layout ``.pt`` file (the released LCL-ViT-B-16-Laion checkpoint), which comes with the CLIP
tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .llava import DialogueModel, DialogueModelConfig
from .model import LCLModel
from .official import load_official_checkpoint
from .tokenizer import ClipTokenizer, Tokenizer, load_tokenizer

CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_DIR = "config.json", "model.safetensors", "tokenizer"
RUN_FINAL_DIR = "final"  # where a run folder keeps its exported model (lcl_core.training.runs)


def save_pretrained(folder: str | Path, model: LCLModel | DialogueModel, tokenizer: Tokenizer, *,
                    weights: dict[str, torch.Tensor] | None = None) -> Path:
    """``weights``: the full state when the model's own is sharded (FSDP); default ``model.state_dict()``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json(folder / CONFIG_FILE)
    weights = model.state_dict() if weights is None else weights
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
    tokenizer.save(folder / TOKENIZER_DIR)
    return folder


def load_pretrained(path: str | Path, *, config: ModelConfig | None = None) -> tuple[LCLModel | DialogueModel,
                                                                                   Tokenizer]:
    """A kit folder written by :func:`save_pretrained` (an LCL model, or a tiny LLaVA-1.5 stage's
    :class:`~lcl_core.llava.DialogueModel`), a run folder (its ``final/``), or an official
    ``.pt`` state dict (whose architecture is inferred from its shapes unless ``config`` is given)."""
    path = Path(path)
    if path.is_file() and path.suffix in {".pt", ".pth", ".bin"}:
        return load_official_checkpoint(path, config=config), ClipTokenizer()
    if not (path / CONFIG_FILE).is_file() and (path / RUN_FINAL_DIR / CONFIG_FILE).is_file():
        path = path / RUN_FINAL_DIR
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path} is neither a kit model folder ({CONFIG_FILE} + {WEIGHTS_FILE}), a finished "
                                "run folder, nor an official .pt file")
    config_data = json.loads((path / CONFIG_FILE).read_text())
    model = (DialogueModel(config=DialogueModelConfig.from_dict(config_data)) if config_data.get("kind") == "dialogue"
             else LCLModel(config=ModelConfig.from_dict(config_data)))
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
    return model, load_tokenizer(path / TOKENIZER_DIR)
