"""Model configuration: dataclasses, JSON round-trip and named presets.

Presets live as JSON files in ``lcl_core/model_configs/`` (the open_clip convention). The official
open_clip-style JSON (``{"embed_dim", "vision_cfg", "text_cfg", "pool_project_cfg", ...}``) is read by
:meth:`ModelConfig.from_open_clip`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

OFFICIAL_HEAD_WIDTH = 64  # open_clip's ViT uses heads = width // 64
# Token ids the model needs, CLIP BPE values; pad is the kit's own (see lcl_core.tokenizer).
CLIP_SPECIAL_IDS = {"sot": 49406, "eot": 49407, "img": 49408, "soi": 49409, "eoi": 49410, "pad": 49411}
# Parameters only some baselines' pre-training reads (lcl_core.model.PretrainingHeads)
PRETRAINING_HEADS = ("matching", "masked")


class JsonConfig:
    """JSON round trip for the kit's dataclass configs; unknown keys are refused by name."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class VisionConfig:
    """ViT encoder plus the attentive pooling projection that sits on its patch tokens."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    pool_heads: int = 12  # heads of the attentive pooling projection (splits embed_dim)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens per image = LM positions per image (B/16@224: 196, B/32@224: 49)."""
        return self.grid_size**2


@dataclass
class BridgeConfig:
    """The causal transformer that reads text embeddings and image tokens (trained from scratch)."""

    vocab_size: int = 49411
    context_length: int = 280
    width: int = 768
    heads: int = 12
    layers: int = 12
    mlp_ratio: float = 4.0


@dataclass
class ModelConfig(JsonConfig):
    """The whole LCL model. ``embed_dim`` is the latent size: pooled latent, image tokens and
    contrastive feature; officially it must equal the bridge width."""

    embed_dim: int = 768
    vision: VisionConfig = field(default_factory=VisionConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    init_logit_scale: float = math.log(1 / 0.07)
    max_logit_scale: float = math.log(100)
    # "clip", "trained" (a BPE trained on the corpus, attached with ``with_tokenizer``) or a saved folder
    tokenizer: str = "clip"
    special_ids: dict[str, int] = field(default_factory=lambda: dict(CLIP_SPECIAL_IDS))
    name: str = "custom"
    pretraining_heads: list[str] = field(default_factory=list)  # of PRETRAINING_HEADS; set by the run builder

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = VisionConfig(**self.vision)
        if isinstance(self.bridge, dict):
            self.bridge = BridgeConfig(**self.bridge)
        self.validate()

    def validate(self) -> None:
        v, b = self.vision, self.bridge
        problems = []
        if min(v.heads, v.pool_heads, b.heads, v.patch_size) < 1:
            raise ValueError(f"invalid model config {self.name!r}: head counts and patch size must be positive")
        if v.image_size % v.patch_size:
            problems.append(f"image_size {v.image_size} is not a multiple of patch_size {v.patch_size}")
        if v.width % v.heads:
            problems.append(f"vision width {v.width} is not divisible by its {v.heads} heads")
        if self.embed_dim % v.pool_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by pool_heads {v.pool_heads}")
        if b.width % b.heads:
            problems.append(f"bridge width {b.width} is not divisible by its {b.heads} heads")
        if b.width != self.embed_dim:
            problems.append(
                f"bridge width {b.width} must equal embed_dim {self.embed_dim}: image tokens are fed to "
                "the bridge as input embeddings"
            )
        if v.num_patches + 2 > b.context_length:
            problems.append(
                f"one image needs {v.num_patches + 2} positions but the context is {b.context_length}"
            )
        unknown_heads = set(self.pretraining_heads) - set(PRETRAINING_HEADS)
        if unknown_heads:
            problems.append(f"pretraining_heads {sorted(unknown_heads)} are not among {list(PRETRAINING_HEADS)}")
        if set(self.special_ids) != set(CLIP_SPECIAL_IDS):
            problems.append(f"special_ids must name exactly {sorted(CLIP_SPECIAL_IDS)}")
        elif any(i >= b.vocab_size for k, i in self.special_ids.items() if k != "pad") or \
                self.special_ids["pad"] > b.vocab_size:
            problems.append(f"special_ids {self.special_ids} do not fit a vocabulary of {b.vocab_size} "
                            "(pad may be one past the table; use with_tokenizer to bind a tokenizer)")
        if problems:
            raise ValueError(f"invalid model config {self.name!r}: " + "; ".join(problems))

    def stream_sizes(self) -> dict[str, int]:
        """What a reader needs: image size, ``<img>`` placeholders per image and row length."""
        return {"image_size": self.vision.image_size, "num_image_tokens": self.vision.num_patches,
                "context_length": self.bridge.context_length}

    def with_tokenizer(self, tokenizer, *, spec: str | None = None) -> "ModelConfig":
        """A copy whose vocabulary and special ids are the tokenizer's (``spec`` records where it lives)."""
        bridge = dataclasses.replace(self.bridge, vocab_size=tokenizer.vocab_size)
        ids = {k: getattr(tokenizer, f"{k}_id") for k in CLIP_SPECIAL_IDS}
        return dataclasses.replace(self, bridge=bridge, special_ids=ids,
                                   tokenizer=spec if spec is not None else tokenizer.kind)

    # ---- JSON -------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        """A kit config, or an official open_clip-style ``LCL_*.json``."""
        data = json.loads(Path(path).read_text())
        if "vision_cfg" in data or "model_config" in data:
            return cls.from_open_clip(data, name=Path(path).stem)
        return cls.from_dict(data)

    @classmethod
    def from_open_clip(cls, data: dict[str, Any], *, name: str = "open_clip") -> "ModelConfig":
        """Read an official ``LCL_*.json`` (open_clip layout; may be wrapped in ``model_config``)."""
        data = data.get("model_config", data)
        vcfg, tcfg, pcfg = data["vision_cfg"], data["text_cfg"], data["pool_project_cfg"]
        if pcfg.get("pool_proj_type", "attn") != "attn":
            raise ValueError(f"only attentive pooling is part of LCL, got {pcfg['pool_proj_type']!r}")
        width = vcfg.get("width", 768)
        vision = VisionConfig(
            image_size=vcfg.get("image_size", 224),
            patch_size=vcfg.get("patch_size", 16),
            width=width,
            layers=vcfg.get("layers", 12),
            heads=width // vcfg.get("head_width", OFFICIAL_HEAD_WIDTH),
            mlp_ratio=vcfg.get("mlp_ratio", 4.0),
            pool_heads=pcfg.get("attn_num_heads", 8),
        )
        bridge = BridgeConfig(
            vocab_size=tcfg.get("vocab_size", 49411),
            context_length=tcfg.get("context_length", 77),
            width=tcfg.get("width", 512),
            heads=tcfg.get("heads", 8),
            layers=tcfg.get("layers", 12),
            mlp_ratio=tcfg.get("mlp_ratio", 4.0),
        )
        if pcfg.get("input_dim", width) != width or pcfg.get("output_dim", data["embed_dim"]) != data["embed_dim"]:
            raise ValueError("pool_project_cfg must map the vision width to embed_dim")
        official_ids = data.get("special_token_ids", {})
        names = {"sot": "<start_of_text>", "eot": "<end_of_text>", "img": "<img_placehold>",
                 "soi": "<start_of_img>", "eoi": "<end_of_img>"}
        special_ids = {k: official_ids.get(v, CLIP_SPECIAL_IDS[k]) for k, v in names.items()}
        special_ids["pad"] = bridge.vocab_size  # the official pad 0 is the real token "!"
        return cls(embed_dim=data["embed_dim"], vision=vision, bridge=bridge, special_ids=special_ids, name=name)


def list_presets() -> list[str]:
    folder = resources.files("lcl_core") / "model_configs"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def get_preset(name: str) -> ModelConfig:
    """A named preset: the three official configs or a CPU-sized one (see ``list_presets()``)."""
    path = resources.files("lcl_core") / "model_configs" / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(list_presets())}")
    data = json.loads(path.read_text())
    data.setdefault("name", name)
    return ModelConfig.from_dict(data)
