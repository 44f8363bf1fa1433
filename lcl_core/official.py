"""Import and export state dicts in the official open_clip layout (OpenGVLab/LCL).

The released LCL-ViT-B-16-Laion checkpoint is a ``.pt`` file with keys ``visual.*`` (open_clip ViT,
no ``visual.proj``), ``text.*`` (open_clip text tower: fused ``in_proj`` attention, ``c_fc``/``c_proj``
MLP, ``ln_final``, ``text_projection``), ``pool_project.*`` (attentive pooling), ``lm_head.{0,1}`` and
``logit_scale``. The kit's bridge is a GPT-2 whose ``Conv1D`` weights are the transposes of open_clip's
``Linear`` weights; everything else maps one to one. Transposes are exact, so a round trip is bit-exact.
The baselines' pre-training heads (``heads.*``: BLIP-2 matching, BEiT-3 masking) have no official name
and are neither exported nor expected on import.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from .config import CLIP_SPECIAL_IDS, ModelConfig, get_preset, list_presets
from .model import LCLModel

# (kit key pattern, official key template, transpose) — applied in order, first match wins
_RULES: list[tuple[str, str, bool]] = [
    (r"logit_scale", "logit_scale", False),
    (r"vision\.vit\.(.+)", "visual.{0}", False),
    (r"vision\.pool\.query", "pool_project.query_token", False),
    (r"vision\.pool\.norm_([qkv])\.(weight|bias)", "pool_project.pooler.norm1_{0}.{1}", False),
    (r"vision\.pool\.([qkv])_proj\.weight", "pool_project.pooler.cross_attn.{0}.weight", False),
    (r"vision\.pool\.([qkv])_proj\.bias", "pool_project.pooler.cross_attn.{0}_bias", False),
    (r"vision\.pool\.out_proj\.weight", "pool_project.pooler.cross_attn.proj.weight", False),
    (r"bridge\.transformer\.wte\.weight", "text.token_embedding.weight", False),
    (r"bridge\.transformer\.wpe\.weight", "text.positional_embedding", False),
    (r"bridge\.transformer\.h\.(\d+)\.(ln_[12])\.(weight|bias)", "text.transformer.resblocks.{0}.{1}.{2}", False),
    (r"bridge\.transformer\.h\.(\d+)\.attn\.c_attn\.weight", "text.transformer.resblocks.{0}.attn.in_proj_weight", True),
    (r"bridge\.transformer\.h\.(\d+)\.attn\.c_attn\.bias", "text.transformer.resblocks.{0}.attn.in_proj_bias", False),
    (r"bridge\.transformer\.h\.(\d+)\.attn\.c_proj\.weight", "text.transformer.resblocks.{0}.attn.out_proj.weight", True),
    (r"bridge\.transformer\.h\.(\d+)\.attn\.c_proj\.bias", "text.transformer.resblocks.{0}.attn.out_proj.bias", False),
    (r"bridge\.transformer\.h\.(\d+)\.mlp\.(c_fc|c_proj)\.weight", "text.transformer.resblocks.{0}.mlp.{1}.weight", True),
    (r"bridge\.transformer\.h\.(\d+)\.mlp\.(c_fc|c_proj)\.bias", "text.transformer.resblocks.{0}.mlp.{1}.bias", False),
    (r"bridge\.(ln_final\.(?:weight|bias)|text_projection)", "text.{0}", False),
    (r"bridge\.lm_head\.(\d)\.(weight|bias)", "lm_head.{0}.{1}", False),
]


def key_map(model: LCLModel) -> dict[str, tuple[str, bool]]:
    """kit key -> (official key, transpose) for every tensor of ``model`` but its pre-training heads."""
    mapping = {}
    for kit_key in model.state_dict():
        if kit_key.startswith("heads."):
            continue
        for pattern, template, transpose in _RULES:
            m = re.fullmatch(pattern, kit_key)
            if m:
                mapping[kit_key] = (template.format(*m.groups()), transpose)
                break
        else:
            raise KeyError(f"no official name for kit parameter {kit_key!r}")
    return mapping


def export_official(model: LCLModel) -> dict[str, torch.Tensor]:
    """The model's weights under official open_clip names and shapes."""
    state = model.state_dict()
    return {off: (state[k].t() if tr else state[k]).contiguous().clone() for k, (off, tr) in key_map(model).items()}


def load_official(model: LCLModel, state_dict: dict[str, torch.Tensor]) -> None:
    """Load an official-layout state dict; unknown, missing or mis-shaped keys are refused by name."""
    state_dict = _unwrap(state_dict)
    mapping = key_map(model)
    wanted = {off for off, _ in mapping.values()}
    missing, unexpected = sorted(wanted - set(state_dict)), sorted(set(state_dict) - wanted)
    if missing or unexpected:
        raise KeyError(
            "the state dict does not match this model's official layout: "
            f"{len(missing)} missing {missing[:8]}{' …' if len(missing) > 8 else ''}; "
            f"{len(unexpected)} unexpected {unexpected[:8]}{' …' if len(unexpected) > 8 else ''}"
        )
    own = model.state_dict()
    converted = {}
    for kit_key, (off, transpose) in mapping.items():
        tensor = state_dict[off].t() if transpose else state_dict[off]
        if tensor.shape != own[kit_key].shape:
            raise ValueError(f"{off}: shape {tuple(state_dict[off].shape)} does not fit this model "
                             f"(expects {tuple(own[kit_key].t().shape if transpose else own[kit_key].shape)})")
        converted[kit_key] = tensor
    missing = model.load_state_dict(converted, strict=False).missing_keys
    assert all(k.startswith("heads.") for k in missing), missing  # key_map covers every other tensor


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> ModelConfig:
    """The architecture of an official-layout state dict.

    Tensor shapes give every size but the head counts: a fused attention weight looks the same for any
    number of heads. The counts are therefore taken from the kit's preset (the three official configs
    and the CPU ones) whose sizes these shapes are; a state dict matching no preset is refused with a
    message naming its sizes, and must come with its config (``config=`` / ``--model-config``).
    """
    sd = _unwrap(state_dict)
    found = _shape_signature(sd)
    for name in list_presets():
        preset = get_preset(name)
        if _preset_signature(preset) == found:
            bridge = dataclasses.replace(preset.bridge, vocab_size=sd["text.token_embedding.weight"].shape[0])
            return dataclasses.replace(preset, bridge=bridge, special_ids=dict(CLIP_SPECIAL_IDS),
                                       tokenizer="clip", name=name)
    sizes = ", ".join(f"{k} {v}" for k, v in found.items())
    raise ValueError(f"the state dict's sizes ({sizes}) match none of the kit's presets ({', '.join(list_presets())}), "
                     "and head counts cannot be read from weights: pass its model config "
                     "(load_pretrained(path, config=...) or --model-config)")


def _shape_signature(sd: dict[str, torch.Tensor]) -> dict[str, int | float]:
    width, _, patch, _ = sd["visual.conv1.weight"].shape
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    count = lambda prefix: len({k.split(".")[3] for k in sd if k.startswith(prefix)})  # noqa: E731
    context, text_width = sd["text.positional_embedding"].shape
    return {"image_size": grid * patch, "patch_size": patch, "vision_width": width,
            "vision_layers": count("visual.transformer.resblocks."),
            "vision_mlp_ratio": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
            "embed_dim": sd["text.text_projection"].shape[1], "context_length": context, "bridge_width": text_width,
            "bridge_layers": count("text.transformer.resblocks."),
            "bridge_mlp_ratio": sd["text.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / text_width}


def _preset_signature(config: ModelConfig) -> dict[str, int | float]:
    v, b = config.vision, config.bridge
    return {"image_size": v.image_size, "patch_size": v.patch_size, "vision_width": v.width,
            "vision_layers": v.layers, "vision_mlp_ratio": v.mlp_ratio, "embed_dim": config.embed_dim,
            "context_length": b.context_length, "bridge_width": b.width, "bridge_layers": b.layers,
            "bridge_mlp_ratio": b.mlp_ratio}


def load_official_checkpoint(path: str | Path, *, config: ModelConfig | None = None) -> LCLModel:
    """Build a model from an official ``.pt`` file (read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    model = LCLModel(config=config or config_from_state_dict(state))
    load_official(model, state)
    return model


def _unwrap(state: dict) -> dict[str, torch.Tensor]:
    """Accept ``{"state_dict": …}`` training checkpoints and DDP ``module.`` prefixes."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
