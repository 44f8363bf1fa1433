"""Images in, encoder features out — computed once per (encoder, image set) and cached.

The cache key is the encoder's weight fingerprint (a SHA-256 over its state dict), the kind of
feature and a fingerprint of the image set (paths, sizes, modification times), so a retrained
checkpoint or an edited dataset never reads stale features. Features are kept in memory for the run
and, when a cache folder is given, as fp16 tensors on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..images import image_transform, load_rgb


class ImageSet:
    """A list of image files decoded on demand at one resolution (no image tensor is kept)."""

    def __init__(self, *, paths: Sequence[Path], image_size: int) -> None:
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size
        self._transform = image_transform(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """-> images [len(indices), 3, image_size, image_size], CLIP-normalised."""
        return torch.stack([self._transform(load_rgb(self.paths[int(i)])) for i in indices])

    def fingerprint(self) -> str:
        digest = hashlib.sha256(str(self.image_size).encode())
        for p in self.paths:
            stat = p.stat()
            digest.update(f"{p.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def weights_fingerprint(module: nn.Module) -> str:
    """``sha256:<hex>`` over parameter/buffer names, shapes, dtypes and bytes: the checkpoint identity."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(data.shape)}|{data.dtype}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


@torch.no_grad()
def extract(encode: Callable[[torch.Tensor], torch.Tensor], images: ImageSet, *, batch_size: int) -> torch.Tensor:
    """``encode`` over the whole set in batches -> [len(images), ...] float32."""
    chunks = [encode(images.load(range(start, min(start + batch_size, len(images))))).float()
              for start in range(0, len(images), batch_size)]
    return torch.cat(chunks)


class FeatureCache:
    """Memoises :func:`extract` per (encoder fingerprint, feature kind, image set)."""

    def __init__(self, *, folder: str | Path | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self._memory: dict[tuple[str, str, str], torch.Tensor] = {}

    def get(self, *, encoder_id: str, kind: str, images: ImageSet,
            encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> torch.Tensor:
        key = (encoder_id, kind, images.fingerprint())
        if key in self._memory:
            return self._memory[key]
        path = None
        if self.folder is not None:
            path = self.folder / encoder_id.removeprefix("sha256:")[:24] / f"{kind}-{key[2][:24]}.pt"
        if path is not None and path.is_file():
            features = torch.load(path, weights_only=True).float()
        else:
            # rounded to fp16 always, so numbers do not depend on whether the disk cache was warm
            features = extract(encode, images, batch_size=batch_size).half()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(features, path)
            features = features.float()
        self._memory[key] = features
        return features
