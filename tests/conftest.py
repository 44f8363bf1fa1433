"""Shared test fixtures: tiny models with deliberately odd sizes, tokenizers, the shared/ folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from lcl_core.config import BridgeConfig, ModelConfig, VisionConfig
from lcl_core.tokenizer import ClipTokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared"

warnings.filterwarnings("ignore", message=".*bos_token_id.*")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a skip with the reason when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read the shared fixtures beside the repository")
    return path


def odd_config(*, vocab_size: int = 49411, special_ids: dict | None = None, context_length: int = 48) -> ModelConfig:
    """30-px images, patch 10 (9 patches), vision width 44 / 4 heads, embed and bridge width 36 / 3 heads,
    3 layers each: no square number for a shape bug to hide behind."""
    extra = {"special_ids": special_ids} if special_ids else {}
    return ModelConfig(
        embed_dim=36,
        vision=VisionConfig(image_size=30, patch_size=10, width=44, layers=3, heads=4, pool_heads=3),
        bridge=BridgeConfig(vocab_size=vocab_size, context_length=context_length, width=36, heads=3, layers=3),
        name="odd-test", **extra,
    )


@pytest.fixture(scope="module")
def single_thread():
    """Heads this small run fastest single-threaded (and do not suffer when the cores are shared)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def clip_tok() -> ClipTokenizer:
    return ClipTokenizer()
