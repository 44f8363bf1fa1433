"""The kit's central claim at CPU scale: a `tiny-fast` encoder pre-trained with LCL on the offline world
transfers better than a random-init encoder of the same architecture on classification, retrieval and
captioning (frozen transfer, held-out instances, 2 head seeds).

Recipe: LCL (generation + 0.1 × contrastive) on the world's 20,000 LAION-style pairs, each pair
image-first (captioning term) or text-first (contrastive term) with p = 0.5 — the paper's paired-data
setting — 700 steps of 128 pairs at lr 1e-3 (0.36 s/step on 2 cores). Measured on 2026-12-06 (2-core Xeon,
AVX-512): classification 33.7 ± 1.1 vs 20.0 ± 1.4 top-1 (31 classes), retrieval TR@1 81.5 vs 20.5 and IR@1
78.4 vs 19.6, captioning CIDEr 324.8 vs 102.9 and NoCaps CIDEr 256.4 vs 104.0 (world 11 s, training 322 s
beside another job, heads 98 s). The thresholds below are about half of those margins or less. At 1,000
steps the margins were 18.5, 65, 60, 258 and 180; at 400, classification was 6.3 points: the steps were
cut from 1,000 to 700 to keep CI's suite in its time, and not below, because classification learns last.

Why pairs: the classification target (which digit, letter or shape) is the slowest thing to learn from
text. 600 steps of 32 interleaved sequences (~60 images per batch) win retrieval and captioning but
leave classification level with random init; 128 pairs per step show the encoder more than twice as
many captioned images for the same compute (docs/evaluation.md has the measurements).
"""

from __future__ import annotations

import pytest

from lcl_core.checkpoint import load_pretrained
from lcl_core.cli import main as lcl
from lcl_core.data import EvalSizes, build_world
from lcl_core.transfer import evaluate
from lcl_core.transfer.results import format_report

pytestmark = pytest.mark.slow

STEPS = 700


def mean(results, encoder, key, metric):
    return results["encoders"][encoder]["tasks"][key]["metrics"][metric]["mean"]


def margin(results, key, metric):
    return mean(results, "checkpoint", key, metric) - mean(results, "random-init", key, metric)


def test_lcl_pretrained_encoder_beats_random_init(tmp_path, capsys):
    world, run = tmp_path / "world", tmp_path / "run"
    build_world(world, docs=1500, pairs=20_000, seed=0,
                eval_sizes=EvalSizes(classification_train_per_class=40, classification_val_per_class=10))
    assert lcl(["pretrain", "--preset", "tiny-fast", "--objective", "lcl", "--data", str(world),
                "--data-source", "pairs", "--steps", str(STEPS), "--batch-size", "128", "--lr", "1e-3",
                "--out", str(run), "--no-progress", "--log-every", "50", "--save-every", str(STEPS)]) == 0
    model, tokenizer = load_pretrained(run / "final")
    results = evaluate(model, tokenizer, world / "eval", tasks=("cls", "ret", "cap"), baselines=("random-init",),
                       seed=0, num_seeds=2)
    with capsys.disabled():
        print("\n" + format_report(results))

    assert results["encoders"]["checkpoint"]["tasks"]["cls/classification"]["splits"]["classes"] == 31
    assert margin(results, "cls/classification", "top1") >= 7
    for metric in ("tr@1", "ir@1"):
        assert margin(results, "ret/coco", metric) >= 28
    for key in ("cap/coco", "cap/nocaps"):
        assert margin(results, key, "cider") >= 80
