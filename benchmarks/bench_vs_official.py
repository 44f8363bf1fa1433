"""The kit's training step against the official OpenGVLab/LCL code, side by side in one process.

    git clone https://github.com/OpenGVLab/LCL /path/to/LCL      # the official code; nothing of it is committed
    python benchmarks/bench_vs_official.py --official /path/to/LCL [--rounds 6] [--steps 3] [--precision bf16]

Both sides get the same config, the same weights (the kit's random init exported to the official
layout with :func:`lcl_core.official.export_official` and loaded ``strict=True``), the same batch (the
kit's rows with the official pad id 0) and the same step: forward, the LCL loss (λ = 0.1), backward,
AdamW. The official package is imported from ``PATH/src/open_clip`` under another name, so it does
not shadow the installed open_clip the kit uses. Rounds alternate (official first in even rounds, kit
first in odd ones) so drifts in the machine's speed fall on both sides; each side's step time is the
median over all its timed steps, after one untimed warm-up step per side. Before timing, the two
sides' first losses are compared (they must agree to 1e-4 relative in fp32, or the comparison is
void and the script stops).

Default config (the issue's): ViT 32 px / patch 8, width 128 × 4 layers, 4 heads; causal LM 128 × 4
layers, context 128, the CLIP vocabulary (49,411 rows); 32 interleaved rows with 2 images each. One
JSON line per round, then a summary line with ``kit_speedup`` = official s/step ÷ kit s/step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import random
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from bench_model_step import batch
from lcl_core.config import get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.official import export_official
from lcl_core.tokenizer import ClipTokenizer

OFFICIAL_PACKAGE = "lcl_official_open_clip"


def import_official(path: Path) -> types.ModuleType:
    """The official ``lcl_model`` and ``loss`` modules, loaded from ``path/src/open_clip`` as the package
    ``lcl_official_open_clip`` (its ``__init__`` is skipped: it pulls in hub downloads and tokenizers)."""
    source = path / "src" / "open_clip"
    if not (source / "lcl_model.py").is_file():
        raise SystemExit(f"{path} is not a clone of OpenGVLab/LCL: {source / 'lcl_model.py'} is missing")
    package = types.ModuleType(OFFICIAL_PACKAGE)
    package.__path__ = [str(source)]
    sys.modules[OFFICIAL_PACKAGE] = package
    return types.SimpleNamespace(lcl_model=importlib.import_module(f"{OFFICIAL_PACKAGE}.lcl_model"),
                                 loss=importlib.import_module(f"{OFFICIAL_PACKAGE}.loss"))


def official_model(official, config, special_ids: dict[str, int]):
    v, b = config.vision, config.bridge
    names = {"sot": "<start_of_text>", "eot": "<end_of_text>", "img": "<img_placehold>",
             "soi": "<start_of_img>", "eoi": "<end_of_img>"}
    return official.lcl_model.LCL(
        embed_dim=config.embed_dim,
        vision_cfg={"image_size": v.image_size, "patch_size": v.patch_size, "width": v.width, "layers": v.layers,
                    "head_width": v.width // v.heads, "mlp_ratio": v.mlp_ratio},
        text_cfg={"context_length": b.context_length, "vocab_size": b.vocab_size, "width": b.width,
                  "heads": b.heads, "layers": b.layers, "mlp_ratio": b.mlp_ratio},
        pool_project_cfg={"pool_proj_type": "attn", "input_dim": v.width, "output_dim": config.embed_dim,
                          "attn_num_heads": v.pool_heads},
        special_token_ids={names[k]: special_ids[k] for k in names},
    )


class Side:
    """One implementation's model, optimiser, batch and loss, stepped on demand."""

    def __init__(self, name: str, model, loss_fn, images, ids, precision: str) -> None:
        self.name, self.model, self.loss_fn, self.images, self.ids = name, model, loss_fn, images, ids
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.precision = precision
        self.times: list[float] = []

    def step(self) -> float:
        start = time.perf_counter()
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            loss = self.loss_fn(self.model(self.images, self.ids))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        return elapsed if loss.isfinite() else float("nan")

    def first_loss(self) -> float:
        with torch.no_grad():
            return float(self.loss_fn(self.model(self.images, self.ids)))


def build_sides(official, *, batch_size: int, precision: str, seed: int) -> tuple[Side, Side]:
    tok = ClipTokenizer()
    config = get_preset("tiny-fast").with_tokenizer(tok)
    torch.manual_seed(seed)
    kit_model = LCLModel(config=config)
    reference = official_model(official, config, config.special_ids)
    reference.load_state_dict(export_official(kit_model), strict=True)
    images, ids = batch(tok, config, batch_size, random.Random(seed))
    official_ids = ids.masked_fill(ids == tok.pad_id, 0)  # the official pad id is 0
    if (ids == 0).any():
        raise SystemExit("the batch holds token 0, which the official code reads as padding")
    objective = PretrainingObjective.named("lcl")
    official_loss = official.loss.LCLLoss(generation_loss_weight=1.0, contrastive_loss_weight=0.1, local_loss=True)
    kit = Side("kit", kit_model, lambda out: objective(out)["loss"], images, ids, precision)
    ref = Side("official", reference, lambda out: sum(official_loss(
        out["image_features"], out["text_features"], out["logits"], out["labels"], out["logit_scale"])),
        images.clone(), official_ids, precision)
    return kit, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a clone of OpenGVLab/LCL")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    official = import_official(args.official.resolve())
    kit, ref = build_sides(official, batch_size=args.batch_size, precision=args.precision, seed=args.seed)
    losses = {side.name: side.first_loss() for side in (kit, ref)}
    agreement = abs(losses["kit"] - losses["official"]) / abs(losses["official"])
    print(json.dumps({"first_loss": losses, "relative_difference": agreement}), flush=True)
    if args.precision == "fp32" and agreement > 1e-4:
        raise SystemExit("the two sides disagree on the first loss: the comparison would be void")
    for side in (kit, ref):
        side.step()  # warm-up: allocator, kernels, AdamW state
    for r in range(args.rounds):
        for side in ((ref, kit) if r % 2 == 0 else (kit, ref)):
            times = [side.step() for _ in range(args.steps)]
            side.times += times
            print(json.dumps({"round": r, "side": side.name, "s_per_step": [round(t, 4) for t in times]}), flush=True)
    kit_s, ref_s = statistics.median(kit.times), statistics.median(ref.times)
    print(json.dumps({
        "summary": True, "precision": args.precision, "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "images": kit.images.shape[0],
        "tokens": int((kit.ids != kit.model.ids["pad"]).sum()), "torch": torch.__version__,
        "official_s_per_step": round(ref_s, 4), "kit_s_per_step": round(kit_s, 4),
        "kit_speedup": round(ref_s / kit_s, 3), "timed_steps_per_side": len(kit.times),
    }), flush=True)


if __name__ == "__main__":
    main()
