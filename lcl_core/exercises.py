"""Exercises for learners: change one parameter of a notebook, predict which way one number of its
results JSON moves, run, compare. ``lcl notebooks exercise NAME N`` runs both sides with papermill and says
whether the number moved as the notebook's argument predicts; each notebook's last cell lists its own.

An exercise compares the notebook run with ``baseline`` (default: its own parameters) against the run with
``change`` added, at the same profile, and reads ``key`` (a dotted path into ``NAME.results.json``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .notebooks import SEQUENCE, results_path, run_notebooks


@dataclass(frozen=True)
class Exercise:
    notebook: str
    change: dict[str, Any]  # the parameters to set
    question: str  # what to predict, asked before the run
    key: str  # dotted path into the notebook's results JSON
    expected: str  # "higher" or "lower": what the notebook's argument predicts
    why: str  # the argument, shown after the run
    baseline: dict[str, Any] = field(default_factory=dict)  # parameters of the side compared against

    def __post_init__(self) -> None:
        if self.expected not in ("higher", "lower"):
            raise ValueError(f"expected must be 'higher' or 'lower', not {self.expected!r}")
        if self.notebook not in SEQUENCE:
            raise ValueError(f"unknown notebook {self.notebook!r}")


EXERCISES: tuple[Exercise, ...] = (
    Exercise("00_quickstart", {"steps": 900},
              "Pre-train three times longer. Does the frozen probe's lead over random init grow?",
              "margin_over_random_init", "higher",
              "The encoder sees three times the images; at 300 steps its losses are still falling (notebook 04)."),
    Exercise("00_quickstart", {"head_epochs": 2},
              "Same encoder, a probe trained 2 epochs instead of 20. Does the checkpoint's top-1 drop?",
              "top1.checkpoint", "lower",
              "The head, not the encoder, is now under-trained: frozen transfer measures encoder and head together, "
              "which is why the kit trains every head to convergence and averages head seeds."),
    Exercise("01_interleaved_data", {"preset": "tiny"},
              "The `tiny` preset gives each image 36 tokens (tiny-fast: 16) in a 256-token context. Do the "
              "example row's image placeholders grow?",
              "layout.img", "higher",
              "Every image is `<soi> <img>×N <eoi>` with N the number of patches: 48 px / patch 8 = 36."),
    Exercise("01_interleaved_data", {"preset": "LCL_ViT-B-16_laion"},
              "The released B/16 gives each image 196 tokens in a 280-token context. Do fewer of the example "
              "document's images fit in its row?",
              "layout.images", "lower",
              "Truncation never cuts an image block: a row of 280 tokens holds one 198-token image block and its "
              "text, and the sequence ends at the next block's `<soi>`."),
    Exercise("02_model", {"preset": "tiny"},
              "Switch to the `tiny` preset. Does the vision tower gain parameters?",
              "parameters.vision", "higher",
              "tiny is wider and takes 48-px images: more patch-embedding, positional and attention weights."),
    Exercise("02_model", {"preset": "LCL_ViT-B-32_laion"},
              "The released B/32 at 224 px. Are there more image tokens per image than tiny-fast's 16?",
              "num_image_tokens", "higher",
              "224 / 32 = 7 patches a side: 49 tokens, each projected into the causal transformer."),
    Exercise("03_objective", {"collapse_lr": 0.0},
              "Learning rate 0: nothing trains. Is generation-only's final loss higher than when it trains?",
              "collapse.generation.final_loss", "higher",
              "Untrained, the loss stays near log(vocabulary); the collapse story needs training to happen at all."),
    Exercise("03_objective", {"collapse_steps": 450},
              "Three times the collapse experiment's steps. Does generation-only reach a lower final loss?",
              "collapse.generation.final_loss", "lower",
              "Generation alone keeps lowering its loss by predicting text from text — that it can is the collapse."),
    Exercise("04_pretrain", {"steps": 2400},
              "Pre-train three times longer. Does the in-batch contrastive accuracy at the end rise?",
              "last.contrastive_accuracy", "higher",
              "The contrastive term moves slowly (the ViT learns to see from scratch); 800 steps is early."),
    Exercise("04_pretrain", {"lr": 1e-5},
              "A learning rate 100 times smaller. Is the final generation loss higher?",
              "last.generation_loss", "higher",
              "At 1e-5 the 800 steps move the weights too little: the loss stays near its starting value."),
    Exercise("05_baselines", {"steps": 2400},
              "Three times longer for every baseline. Does CLIP's final in-batch accuracy rise?",
              "runs.CLIP.last.contrastive_accuracy", "higher",
              "CLIP is far from converged at 800 steps on two cores."),
    Exercise("05_baselines", {"batch_size": 8},
              "Batches of 8 instead of 32. Is CLIP's in-batch accuracy higher with fewer negatives?",
              "runs.CLIP.last.contrastive_accuracy", "higher",
              "Accuracy is measured within the batch: chance is 1/8 instead of 1/32. Compare the InfoNCE bound "
              "log N − L_con, which does not flatter small batches."),
    Exercise("06_ablations", {"rerun": "placement:p = 0", "rerun_profile": "cpu"},
              "Rerun images-always-after-their-sentence (p = 0) against the paper's p = 0.5. Is COCO TR@1 higher?",
              "rerun.summary.COCO TR@1.mean", "higher",
              "At p = 0 the context before every image describes it, so the contrastive term sees only informative "
              "pairs (the committed grid: 58.5 against 43.9).",
              baseline={"rerun": "placement:p = 0.5", "rerun_profile": "cpu"}),
    Exercise("06_ablations", {"rerun": "lambda:λ = 0", "rerun_profile": "cpu"},
              "Rerun generation only (λ = 0) against the paper's λ = 0.1. Does COCO TR@1 fall?",
              "rerun.summary.COCO TR@1.mean", "lower",
              "Without the contrastive term the latents collapse (committed: 8.9 against 43.9).",
              baseline={"rerun": "lambda:λ = 0.1", "rerun_profile": "cpu"}),
    Exercise("07_transfer", {"head_epochs": 5},
              "Heads trained 5 epochs instead of 40. Does LCL's IN-1k stand-in drop?",
              "encoders.LCL.IN-1k", "lower",
              "An under-trained head reads less of what the frozen encoder holds."),
    Exercise("07_transfer", {"steps": 2400},
              "Pre-train every objective three times longer. Does LCL's COCO TR@1 rise?",
              "encoders.LCL.COCO TR@1", "higher",
              "Retrieval follows the contrastive term, which is the slowest to train."),
    Exercise("08_scale_up", {"official_preset": "LCL_ViT-B-32_laion"},
              "The released B/32 instead of B/16. Is the exported checkpoint smaller?",
              "checkpoint_mib", "lower",
              "The B/32 release has 178 M parameters against B/16's 250 M (its causal transformer is smaller)."),
    Exercise("08_scale_up", {"official_preset": "LCL_ViT-B-32_mmc4"},
              "B/32 trained on MMC4 against B/32 trained on LAION. Is its checkpoint larger?",
              "checkpoint_mib", "higher",
              "The MMC4 model reads 2,048-token documents: 1,920 more positional embeddings than the 128 of pairs.",
              baseline={"official_preset": "LCL_ViT-B-32_laion"}),
    Exercise("09_reproduction", {"reproduce": "smoke"},
              "Run the smoke reproduction (30 steps, tiny world) instead of showing the committed cpu one. Is LCL's "
              "IN-1k lower?",
              "lcl_in1k.mean", "lower",
              "30 steps barely move the encoder off random init; the committed run trained 700.",
              baseline={"reproduce": False}),
    Exercise("09_reproduction", {"reproduce": "smoke", "seeds": [0, 1, 2]},
              "The smoke reproduction with three seeds instead of two. Is the interval around LCL's IN-1k narrower?",
              "lcl_in1k.half_width", "lower",
              "The 95 % t-interval's factor is 12.7 for two seeds and 4.3 for three.",
              baseline={"reproduce": "smoke"}),
    Exercise("10_dialogue", {"reproduce": "smoke"},
              "Run the smoke Table 4 instead of showing the committed cpu one. Are fewer held-out questions asked?",
              "questions", "lower",
              "The smoke profile asks about 6 held-out images, the cpu one about 240: its benchmark numbers are "
              "averages over a few dozen answers, which is why it checks the path and never the claims.",
              baseline={"reproduce": False}),
    Exercise("10_dialogue", {"reproduce": "smoke", "seeds": [0, 1, 2]},
              "The smoke Table 4 with three pre-training seeds instead of two. Does it run more chains?",
              "chains", "higher",
              "Every encoder and both controls run once per seed (5 chains per seed): an interval needs seeds, and "
              "each costs a whole pipeline.",
              baseline={"reproduce": "smoke"}),
)


def exercises_for(notebook: str) -> list[Exercise]:
    return [e for e in EXERCISES if e.notebook == notebook]


def lookup(results: dict, key: str) -> float:
    """``results`` at a dotted path (names may hold dots or spaces themselves: ``rerun.summary.COCO TR@1.mean``);
    a clear error when the path does not lead to a number."""
    value, rest = results, key
    while rest:
        name = next((k for k in sorted(value, key=len, reverse=True) if rest == k or rest.startswith(k + ".")),
                    None) if isinstance(value, dict) else None
        if name is None:
            raise KeyError(f"results have no {key!r} (nothing for {rest!r})")
        value, rest = value[name], rest[len(name) + 1:]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KeyError(f"results[{key!r}] is {value!r}, not a number")
    return float(value)


def judge(exercise: Exercise, before: dict, after: dict) -> dict:
    """Both values, which way the number moved, and whether that is the predicted way."""
    first, second = lookup(before, exercise.key), lookup(after, exercise.key)
    moved = "higher" if second > first else "lower" if second < first else "unchanged"
    return {"key": exercise.key, "before": first, "after": second, "moved": moved,
            "as_predicted": moved == exercise.expected}


def exercise_markdown(notebook: str) -> str:
    """The exercises of one notebook, as its last cell shows them (the answers stay with the command)."""
    lines = ["**Exercises.** Predict first, then run the command (it runs the notebook twice with papermill, "
             "at the profile you choose, and says which way the number moved and why):", ""]
    for number, exercise in enumerate(exercises_for(notebook), 1):
        change = ", ".join(f"`{name} = {value!r}`" for name, value in exercise.change.items())
        against = (" against " + ", ".join(f"`{n} = {v!r}`" for n, v in exercise.baseline.items())
                   if exercise.baseline else "")
        lines += [f"{number}. {exercise.question} ({change}{against}; the number: `{exercise.key}`)",
                  f"   `lcl notebooks exercise {notebook} {number} --profile full`"]
    return "\n".join(lines)


def run_exercise(exercise: Exercise, *, profile: str, out_dir: str | Path,
                 progress: Callable[[str], None] = print) -> dict:
    """Run the notebook with the baseline and with the change, both in ``out_dir`` (so they share its worlds
    and runs where they are identical), and judge the number."""
    out_dir = Path(out_dir)
    sides = {}
    for side, parameters in (("before", exercise.baseline), ("after", {**exercise.baseline, **exercise.change})):
        run_notebooks(profile=profile, out_dir=out_dir, only=[exercise.notebook], overrides=parameters,
                      progress=progress)
        kept = out_dir / f"{exercise.notebook}.{side}.results.json"
        shutil.copyfile(results_path(out_dir, exercise.notebook), kept)
        sides[side] = json.loads(kept.read_text())
    return judge(exercise, sides["before"], sides["after"])
