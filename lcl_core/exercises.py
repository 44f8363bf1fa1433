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
from typing import Any, Callable, Iterable

from .notebooks import EXECUTIONS, SEQUENCE, results_path, run_notebooks
from .provenance import current_commit, machine


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
    Exercise("01_interleaved_data", {"world_preset": "v1"},
              "Build the notebook's world with the v1 pages instead of the calibrated ones. Does the share of "
              "images with an earlier sentence about as similar as their matched one fall?",
              "own_world_realism.near_before_share", "lower",
              "A v1 page gives each image one sentence about it; a calibrated page, like a real MMC4 page, talks "
              "about the image's topic before it too (64 % of real images). LCL's contrastive term reads exactly "
              "that earlier text, which is why the kit's verdicts are judged on the calibrated world."),
    Exercise("01_interleaved_data", {"preset": "LCL_ViT-B-16_laion"},
              "The released B/16 gives each image 196 tokens in a 280-token context. Do fewer of the example "
              "document's images fit in its row?",
              "layout.images", "lower",
              "Truncation never cuts an image block: a row of 280 tokens holds one 198-token image block and its "
              "text, and the sequence ends at the next block's `<soi>`."),
    Exercise("02_model", {"pair_image_first": True},
              "Lay the coffee pair out image-first. Does the batch still give three contrastive pairs?",
              "num_pairs", "lower",
              "A contrastive pair needs context before the image: an image-first pair's `<soi>` sits at index 0, so "
              "it gives only a captioning signal. That is why pairs go text-first half the time."),
    Exercise("02_model", {"preset": "tiny"},
              "`tiny` cuts each image into 36 patches instead of 16. Does the untrained attentive pooler's "
              "attention entropy rise?",
              "attention_entropy", "higher",
              "At initialisation the pooler's one query attends almost uniformly, so its entropy sits near "
              "log(patches): log 36 = 3.58 against log 16 = 2.77. Which patches the latent keeps is learned."),
    Exercise("03_objective", {"collapse_lr": 0.0},
              "Learning rate 0: nothing trains. Is generation-only's final loss higher than when it trains?",
              "collapse.generation.final_loss", "higher",
              "Untrained, the loss stays near log(vocabulary); the collapse story needs training to happen at all."),
    Exercise("03_objective", {"collapse_steps": 450},
              "Three times the collapse experiment's steps. Does generation-only reach a lower final loss?",
              "collapse.generation.final_loss", "lower",
              "Predicted lower, measured not (0.376 → 0.379 at `full`): generation alone reaches a floor of about "
              "0.38 nats by step 160 and stays there. The floor is the text no objective can predict — each phrase "
              "names the *next* image's pattern, drawn at random — and everything else is predictable from text "
              "alone. That the loss stops falling while nothing asks the latents to differ is the collapse."),
    Exercise("03_objective", {"collapse_steps": 450},
              "Three times the collapse experiment's steps. Do the Emu-style latents collapse further: does their "
              "held-out variance fall?",
              "collapse.generation_regression.probe_latent_variance", "lower",
              "Regressing the context onto the next latent keeps rewarding a constant latent and nothing pushes "
              "back, so the longer it trains, the closer the latents get to one point."),
    Exercise("04_pretrain", {"steps": 400},
              "Pre-train half as long. Does the in-batch contrastive accuracy at the end fall?",
              "last.contrastive_accuracy", "lower",
              "The contrastive term moves slowly (the ViT learns to see from scratch): even 800 steps is early, "
              "and it is still rising when the run stops."),
    Exercise("04_pretrain", {"lr": 1e-5},
              "A learning rate 100 times smaller. Is the final generation loss higher?",
              "last.generation_loss", "higher",
              "At 1e-5 the 800 steps move the weights too little: the loss stays near its starting value."),
    Exercise("05_baselines", {"steps": 400},
              "Half as long for every baseline. Does CLIP's final in-batch accuracy fall?",
              "runs.CLIP.last.contrastive_accuracy", "lower",
              "CLIP is far from converged at 800 steps on two cores; at 400 it has seen half the pairs."),
    Exercise("05_baselines", {"batch_size": 8},
              "Batches of 8 instead of 32. Is CLIP's in-batch accuracy higher with fewer negatives?",
              "runs.CLIP.last.contrastive_accuracy", "higher",
              "Accuracy is measured within the batch: chance is 1/8 instead of 1/32. Compare the InfoNCE bound "
              "log N − L_con, which does not flatter small batches."),
    Exercise("06_ablations", {"rerun": "lambda:λ = 0 (generation only)"},
              "Rerun generation only (λ = 0) against the paper's λ = 0.1, one seed each. Does COCO TR@1 fall?",
              "rerun.summary.COCO TR@1.mean", "lower",
              "Without the contrastive term the latents collapse (committed, three seeds: 27.7 against 47.7 on the "
              "calibrated world, 8.9 against 43.9 on v1).",
              baseline={"rerun": "lambda:λ = 0.1 (LCL)", "rerun_profile": "cpu", "seeds": [0]}),
    Exercise("06_ablations", {"rerun": "lambda:contrastive only"},
              "Rerun contrastive only against the paper's λ = 0.1, one seed each. Does COCO TR@1 fall without "
              "the generation term?",
              "rerun.summary.COCO TR@1.mean", "lower",
              "The two terms together are the method: generation makes the causal model read the text, which "
              "gives the contrastive term better context features (committed, three seeds: 39.9 against 47.7 on "
              "the calibrated world, 27.3 against 43.9 on v1).",
              baseline={"rerun": "lambda:λ = 0.1 (LCL)", "rerun_profile": "cpu", "seeds": [0]}),
    Exercise("07_transfer", {"head_epochs": 5},
              "Heads trained 5 epochs instead of 40. Does LCL's IN-1k stand-in drop?",
              "encoders.LCL.IN-1k", "lower",
              "An under-trained head reads less of what the frozen encoder holds."),
    Exercise("07_transfer", {"steps": 400},
              "Pre-train every objective half as long. Does LCL's COCO TR@1 fall?",
              "encoders.LCL.COCO TR@1", "lower",
              "Retrieval follows the contrastive term, which is the slowest to train."),
    Exercise("08_scale_up", {"official_preset": "LCL_ViT-B-32_laion"},
              "The released B/32 instead of B/16. Does pre-training cost fewer FLOPs per image?",
              "cost.GFLOPs per image", "lower",
              "Compute follows tokens: patch 32 gives 49 image tokens against 196, and the causal model reads a "
              "128-token context against 280 (and is narrower)."),
    Exercise("08_scale_up", {"official_preset": "LCL_ViT-B-32_mmc4"},
              "B/32 on MMC4 documents against B/32 on LAION pairs. Does each image cost more to pre-train on?",
              "cost.GFLOPs per image", "higher",
              "A document row is 2,048 tokens against a pair's 128: the causal model reads the text around the "
              "image, which is the point of interleaved data and what it costs.",
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
              "Run the smoke Table 4 instead of showing the committed cpu one. Does LCL's lead over the blind "
              "language model survive?",
              "lcl_over_blind", "lower",
              "The blind LM answers from the question alone; an encoder adds only what pre-training taught it to "
              "see, and the language model must learn to read it. At smoke (30 steps, a few dozen conversations) "
              "every row, the blind LM's too, gets almost nothing right: the smoke profile checks that the "
              "pipeline runs, never the claims.",
              baseline={"reproduce": False}),
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


def run_exercise(exercise: Exercise, *, profile: str, out_dir: str | Path, tag: str | None = None,
                 before: tuple[dict, float] | None = None, progress: Callable[[str], None] = print) -> dict:
    """Run the notebook with the baseline and with the change, both in ``out_dir`` (so they share its worlds
    and runs where they are identical), and judge the number; each side's results are kept as
    ``{tag}.{side}.results.json`` (``tag`` default: the notebook's name) and its wall time returned.
    ``before``: the baseline's results and wall time from an identical run already made (not rerun)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sides, seconds = {}, {}
    for side, parameters in (("before", exercise.baseline), ("after", {**exercise.baseline, **exercise.change})):
        kept = out_dir / f"{tag or exercise.notebook}.{side}.results.json"
        if side == "before" and before is not None:
            sides[side], seconds[side] = before
            kept.write_text(json.dumps(sides[side], indent=2) + "\n")
            continue
        run, = run_notebooks(profile=profile, out_dir=out_dir, only=[exercise.notebook], overrides=parameters,
                             progress=progress)
        shutil.copyfile(results_path(out_dir, exercise.notebook), kept)
        sides[side], seconds[side] = json.loads(kept.read_text()), round(run.seconds, 1)
    return judge(exercise, sides["before"], sides["after"]) | {"seconds": seconds}


def exercise_id(exercise: Exercise) -> str:
    """``NAME-N``: the notebook and the exercise's number in its last cell."""
    return f"{exercise.notebook}-{exercises_for(exercise.notebook).index(exercise) + 1}"


def measure_exercises(*, profile: str, out_dir: str | Path, report_dir: str | Path,
                      only: Iterable[str] | None = None, plain_run: str | Path | None = None,
                      progress: Callable[[str], None] = print) -> Path:
    """Run every exercise (of the notebooks ``only``) that ``report_dir`` holds no outcome for, one after the
    other in ``out_dir``, writing each outcome as ``report_dir/NAME-N.json`` the moment it exists; then write
    the table of all outcomes found there (``exercises.md``) and return its path. Resumable: a killed run
    loses at most the exercise it was in.

    A notebook runs once per set of parameters: a baseline that an earlier exercise already ran, as its
    baseline or as its changed side, is taken from that run. ``plain_run``, the folder of an ``lcl notebooks
    run`` of this profile with no overrides, gives the before side of the exercises without a baseline: that
    run is their baseline exactly (same notebook, profile and parameters)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    made: dict[tuple[str, str], tuple[dict, float, str]] = {}  # (notebook, parameters) -> results, seconds, where
    for exercise in EXERCISES:
        name = exercise_id(exercise)
        outcome_path = report_dir / f"{name}.json"
        if (only and exercise.notebook not in set(only)) or outcome_path.is_file():
            continue
        progress(f"[{name}] {exercise.question}")
        commit = current_commit()
        baseline = (exercise.notebook, json.dumps(exercise.baseline, sort_keys=True))
        if baseline not in made and not exercise.baseline and plain_run is not None:
            made[baseline] = (*plain_results(plain_run, exercise.notebook, profile), str(plain_run))
        reused = made.get(baseline)
        outcome = run_exercise(exercise, profile=profile, out_dir=out_dir, tag=name,
                               before=reused[:2] if reused else None, progress=progress)
        for side, parameters in (("before", exercise.baseline), ("after", {**exercise.baseline, **exercise.change})):
            key = (exercise.notebook, json.dumps(parameters, sort_keys=True))
            if key not in made:
                kept = json.loads((Path(out_dir) / f"{name}.{side}.results.json").read_text())
                made[key] = (kept, outcome["seconds"][side], f"exercise {name}")
        outcome |= {"profile": profile, "commit": commit, "machine": machine(),
                    "before_from": reused[2] if reused else None}
        temporary = outcome_path.with_suffix(".partial")
        temporary.write_text(json.dumps(outcome, indent=1) + "\n")
        temporary.replace(outcome_path)
        write_exercise_table(report_dir)
    return write_exercise_table(report_dir)


def plain_results(run_dir: str | Path, notebook: str, profile: str) -> tuple[dict, float]:
    """The results and wall time of ``notebook`` in ``run_dir``, refused unless that run was this profile's
    with no parameter changed (:func:`~lcl_core.notebooks.record_execution` keeps what each run injected)."""
    run_dir = Path(run_dir)
    executed = json.loads((run_dir / EXECUTIONS).read_text()).get(notebook) if (run_dir / EXECUTIONS).is_file() else None
    if executed is None or not results_path(run_dir, notebook).is_file():
        raise FileNotFoundError(f"{run_dir} holds no executed {notebook}: run `lcl notebooks run --profile {profile}`")
    changed = {k: v for k, v in executed["parameters"].items() if k != "out_dir"}
    if changed != {"profile": profile}:
        raise ValueError(f"{notebook} in {run_dir} ran with {changed}, not the plain {profile!r} profile")
    return json.loads(results_path(run_dir, notebook).read_text()), executed["seconds"]


def write_exercise_table(report_dir: str | Path) -> Path:
    """``report_dir/exercises.md``: one row per exercise with its prediction and measured outcome, or "not
    measured" where ``report_dir`` holds none."""
    report_dir = Path(report_dir)
    rows = ["| exercise | change | the number | predicted | measured before → after | as predicted | "
            "wall time before + after |", "|---|---|---|---|---|---|---|"]
    outcomes = {exercise_id(e): json.loads(path.read_text()) for e in EXERCISES
                if (path := report_dir / f"{exercise_id(e)}.json").is_file()}
    machines = {f"{o['machine']['cpu_model']} ({o['machine']['cores']} cores, AMX "
                f"{'yes' if o['machine']['amx'] else 'no'}, torch threads {o['machine']['cpus']})" for o in outcomes.values()}
    commits = {o["commit"][:12] for o in outcomes.values()}
    for exercise in EXERCISES:
        name = exercise_id(exercise)
        change = ", ".join(f"`{k} = {v!r}`" for k, v in exercise.change.items())
        outcome = outcomes.get(name)
        if outcome is None:
            rows.append(f"| {name} | {change} | `{exercise.key}` | {exercise.expected} | not measured | | |")
            continue
        seconds = outcome["seconds"]
        rows.append(f"| {name} | {change} | `{exercise.key}` | {exercise.expected} | {outcome['before']:.4g} → "
                    f"{outcome['after']:.4g} ({outcome['moved']}) | {'yes' if outcome['as_predicted'] else '**no**'} "
                    f"| {_minutes(seconds['before'])}{' (reused)' if outcome['before_from'] else ''} + "
                    f"{_minutes(seconds['after'])} |")
    held = sum(outcome["as_predicted"] for outcome in outcomes.values())
    text = "\n".join([
        "# The exercises, measured", "",
        f"{len(outcomes)} of {len(EXERCISES)} exercises measured; {held} moved as predicted. Written by "
        "`lcl notebooks exercises`, which runs each notebook without and with the change (`lcl notebooks exercise "
        "NAME N` runs one); the questions and the arguments are in `lcl_core/exercises.py`. A before side marked "
        "*reused* is an identical run already made (the plain profile run, or the same baseline of an earlier "
        "exercise); its wall time is that run's.", "",
        f"Machine: {'; '.join(sorted(machines)) or '—'}. Code: {', '.join(sorted(commits)) or '—'}.", "",
        *rows, ""])
    path = report_dir / "exercises.md"
    path.write_text(text)
    return path


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
