"""The tiny LLaVA-1.5's stages as runs of the one run builder (the paper's Table 4 pipeline).

* ``text`` — the language model alone, on text: the world's pages and the conversations' wording, no image. The
  stand-in for Vicuna, trained once per world and tokenizer and shared by every row.
* ``projector`` — LLaVA-1.5's stage 1: the projector alone on image → brief caption; encoder and LM frozen.
* ``instruct`` — stage 2: projector and LM on the instruction conversations, the encoder frozen (the paper's
  *frozen* setting) or trained with them (``train_encoder``: its *full* setting). The blind control
  (``blind``) is this stage with no image at all, straight from the text stage.

A stage is a :class:`~lcl_core.training.RunSpec` whose ``dialogue`` is a :class:`DialogueSpec` and whose data is
a dialogue folder (``lcl data dialogue``); it trains next-token generation on the labelled tokens (the answers,
LLaVA's mask; every token of the text stage) in the one loop, with its checkpoints, exact resume and progress
lines. The encoder comes from a finished pre-training run, or is the random initialisation of the spec's preset
at the run's seed — exactly the weights the Table 1 random-init row evaluates. The previous stage's weights
(``previous``, a finished run) start the next; both runs' identities join this run's, so a retrained encoder
or language model never reuses a stale stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..checkpoint import CONFIG_FILE, RUN_FINAL_DIR, WEIGHTS_FILE
from ..config import CLIP_SPECIAL_IDS, JsonConfig, ModelConfig, get_preset
from ..llava import DialogueModel, DialogueModelConfig
from ..model import VisionEncoder
from ..tokenizer import Tokenizer

STAGES = ("text", "projector", "instruct")
# a Llama of about 0.9 M parameters besides its embeddings: a few layers, as the "tiny" asks
DEFAULT_LM = {"hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 2, "num_attention_heads": 4}


@dataclass
class DialogueSpec(JsonConfig):
    """What makes a run a tiny LLaVA-1.5 stage (see the module docstring)."""

    stage: str
    encoder: str | None = None  # a finished pre-training run; None: the preset's random-init encoder (or none)
    previous: str | None = None  # the finished run of the stage before
    train_encoder: bool = False  # instruct: the paper's full setting
    blind: bool = False  # instruct without images: the blind control
    lm: dict = field(default_factory=lambda: dict(DEFAULT_LM))
    context_length: int = 384

    def __post_init__(self) -> None:
        problems = []
        if self.stage not in STAGES:
            problems.append(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if (self.stage == "text") != (self.previous is None):
            problems.append("the text stage starts from nothing; every later stage needs the previous stage's run")
        if self.stage == "text" and (self.encoder or self.blind or self.train_encoder):
            problems.append("the text stage has no encoder")
        if self.blind and (self.stage != "instruct" or self.encoder or self.train_encoder):
            problems.append("the blind control is the instruct stage with no encoder")
        if self.train_encoder and self.stage != "instruct":
            problems.append("only the instruct stage trains the encoder (the full setting)")
        if problems:
            raise ValueError("invalid dialogue stage: " + "; ".join(problems))

    def upstream(self) -> dict[str, str]:
        """The finished runs this stage starts from, ``{"encoder" | "previous": folder}`` (checked here, when the
        stage is about to train, not when a finished stage is opened)."""
        runs = {name: path for name, path in (("encoder", self.encoder), ("previous", self.previous)) if path}
        for path in runs.values():
            if not (_final(path) / WEIGHTS_FILE).is_file():
                raise FileNotFoundError(f"{path} is not a finished run (no {RUN_FINAL_DIR}/{WEIGHTS_FILE})")
        return runs

    @property
    def source(self) -> str:
        """The data source of the stage (lcl_core.training.data.SOURCES)."""
        if self.stage == "instruct":
            return "dialogue_blind" if self.blind else "dialogue"
        return {"text": "dialogue_text", "projector": "dialogue_captions"}[self.stage]

    @property
    def parts(self) -> tuple[str, ...]:
        """What trains (lcl_core.llava.PARTS)."""
        if self.stage == "text" or self.blind:
            return ("lm",)
        if self.stage == "projector":
            return ("projector",)
        return ("vision", "projector", "lm") if self.train_encoder else ("projector", "lm")

    @property
    def has_encoder(self) -> bool:
        return self.stage != "text" and not self.blind


def _final(run: str) -> Path:
    return Path(run) / RUN_FINAL_DIR


def dialogue_model_config(spec: DialogueSpec, *, data: str | Path, preset: str | None, model: dict | None,
                          tokenizer: Tokenizer, tokenizer_spec: str) -> DialogueModelConfig:
    """The stage's architecture: the encoder's config (the pre-trained run's, else the preset's), the LM's and the
    tokenizer's ids."""
    manifest = Path(data) / "dialogue.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{data} is not a dialogue folder (no dialogue.json): build one with "
                                "`lcl data dialogue --world WORLD --out DIR`")
    image_size = json.loads(manifest.read_text())["image_size"]  # resized to the encoder's size when there is one
    encoder = None
    if spec.has_encoder:
        encoder = (ModelConfig.from_json(_final(spec.encoder) / CONFIG_FILE) if spec.encoder else
                   (get_preset(preset) if preset else ModelConfig.from_dict(model)).with_tokenizer(
                       tokenizer, spec=tokenizer_spec))
        image_size = encoder.vision.image_size
    return DialogueModelConfig(lm=dict(spec.lm), vocab_size=tokenizer.vocab_size,
                               special_ids={k: getattr(tokenizer, f"{k}_id") for k in CLIP_SPECIAL_IDS},
                               context_length=spec.context_length, image_size=image_size,
                               encoder=encoder.to_dict() if encoder is not None else None)


def _part(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def build_dialogue_model(spec: DialogueSpec, config: DialogueModelConfig, *, seed: int) -> DialogueModel:
    """The stage's model: initialised at ``seed``, the encoder and the previous stage's weights loaded, and only
    the stage's parts left to train."""
    torch.manual_seed(seed)
    model = DialogueModel(config=config)
    if model.vision is not None:
        if spec.encoder:
            vision = _part(load_file(str(_final(spec.encoder) / WEIGHTS_FILE)), "vision.")
        else:  # the random-init control: LCLModel builds its vision tower first, so these are its weights at seed
            torch.manual_seed(seed)
            vision = VisionEncoder(config=config.encoder_config).state_dict()
        model.vision.load_state_dict(vision)
    if spec.previous:
        previous = load_file(str(_final(spec.previous) / WEIGHTS_FILE))
        model.llava.lm.load_state_dict(_part(previous, "llava.lm."))
        projector = _part(previous, "llava.projector.")
        if spec.stage == "instruct" and model.llava.projector is not None:
            if not projector:
                raise ValueError(f"{spec.previous} has no projector: the instruct stage follows the projector stage")
            model.llava.projector.load_state_dict(projector)
    model.set_trainable(spec.parts)
    return model
