"""Image preprocessing shared by every reader and head: RGB, resize, centre crop, CLIP normalisation."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms as T

# open_clip's OPENAI_DATASET_MEAN / STD (the official configs' normalisation), written out so that the
# data readers do not import open_clip (and with it transformers) in every worker
OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)


def image_transform(image_size: int) -> T.Compose:
    """PIL image (any mode) -> float tensor ``[3, image_size, image_size]``."""
    return T.Compose([
        T.Lambda(lambda im: im.convert("RGB")),
        T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
    ])


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`image_transform`'s normalisation for display: ``[..., 3, H, W]`` in [0, 1]."""
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def patchify(images: torch.Tensor, *, patch_size: int) -> torch.Tensor:
    """images [B, 3, H, W] -> non-overlapping patches [B, N, 3·p·p], in the ViT's row-major patch order
    (raw-pixel transfer features; the masked-image targets of the BEiT-3-style objective)."""
    patches = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)  # B,3,h,w,p,p
    return patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)


def load_rgb(path) -> Image.Image:
    """Open and fully decode an image (so truncation errors surface here, not later)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")
