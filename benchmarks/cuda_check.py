"""CUDA correctness of the core (run on a GPU machine; prints one JSON line per check).

    python benchmarks/cuda_check.py

1. fp32 on CUDA equals fp32 on CPU (losses and ViT gradients) for a small odd-sized model;
2. bf16 autocast on CUDA stays close to fp32 (the recipe's mixed precision);
3. the LCL_ViT-B-16_laion preset trains one bf16 step with gradient checkpointing (peak memory).
"""

from __future__ import annotations

import json
import time

import torch

from lcl_core.config import BridgeConfig, ModelConfig, VisionConfig, get_preset
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.sequences import interleaved_sequence, pad_rows, paired_sequence
from lcl_core.tokenizer import ClipTokenizer

ODD = ModelConfig(embed_dim=36, vision=VisionConfig(image_size=30, patch_size=10, width=44, layers=3, heads=4,
                                                    pool_heads=3),
                  bridge=BridgeConfig(context_length=48, width=36, heads=3, layers=3), name="odd")


def batch(tok, cfg, rows_per_kind: int):
    n, ctx = cfg.vision.num_patches, cfg.bridge.context_length
    rows = []
    for _ in range(rows_per_kind):
        rows.append(paired_sequence(tok, "a red square", num_image_tokens=n, context_length=ctx, image_first=True))
        rows.append(interleaved_sequence(tok, ["hello world.", 0, "two cats.", 1, "the end"], num_image_tokens=n,
                                         context_length=ctx).ids)
        rows.append(paired_sequence(tok, "two cats.", num_image_tokens=n, context_length=ctx, image_first=False))
    ids = pad_rows(rows, pad_id=tok.pad_id)
    g = torch.Generator().manual_seed(0)
    return torch.randn(int((ids == tok.soi_id).sum()), 3, cfg.vision.image_size, cfg.vision.image_size, generator=g), ids


def step(model, images, ids, objective, *, bf16: bool):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        losses = objective(model(images, ids))
    losses["loss"].backward()
    return losses, model.vision.vit.conv1.weight.grad.detach().float().cpu()


def main() -> None:
    tok, objective = ClipTokenizer(), PretrainingObjective.named("lcl")
    torch.manual_seed(0)
    cpu_model = LCLModel(config=ODD)
    images, ids = batch(tok, ODD, 2)
    cpu_losses, cpu_grad = step(cpu_model, images, ids, objective, bf16=False)
    gpu_model = LCLModel(config=ODD).cuda()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_losses, gpu_grad = step(gpu_model, images.cuda(), ids.cuda(), objective, bf16=False)
    print(json.dumps({
        "check": "fp32 cuda vs cpu", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "generation_diff": abs(cpu_losses["generation_loss"].item() - gpu_losses["generation_loss"].item()),
        "contrastive_diff": abs(cpu_losses["contrastive_loss"].item() - gpu_losses["contrastive_loss"].item()),
        "vit_grad_max_rel_diff": ((cpu_grad - gpu_grad).abs().max() / cpu_grad.abs().max()).item(),
    }), flush=True)
    bf16_losses, _ = step(gpu_model, images.cuda(), ids.cuda(), objective, bf16=True)
    print(json.dumps({
        "check": "bf16 autocast vs fp32 (cuda)",
        "generation_rel_diff": abs(bf16_losses["generation_loss"].item() / gpu_losses["generation_loss"].item() - 1),
        "contrastive_rel_diff": abs(bf16_losses["contrastive_loss"].item() / gpu_losses["contrastive_loss"].item() - 1),
    }), flush=True)

    cfg = get_preset("LCL_ViT-B-16_laion")
    model = LCLModel(config=cfg).cuda()
    model.set_grad_checkpointing(True)
    images, ids = batch(tok, cfg, 4)
    images, ids = images.cuda(), ids.cuda()
    step(model, images, ids, objective, bf16=True)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    losses, grad = step(model, images, ids, objective, bf16=True)
    torch.cuda.synchronize()
    print(json.dumps({
        "check": "LCL_ViT-B-16_laion bf16 step, grad checkpointing", "rows": ids.shape[0], "images": images.shape[0],
        "seq_len": ids.shape[1], "loss": losses["loss"].item(), "finite_grad": bool(torch.isfinite(grad).all()),
        "step_s": round(time.perf_counter() - start, 4),
        "peak_mem_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }), flush=True)


if __name__ == "__main__":
    main()
