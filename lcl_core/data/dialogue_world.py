"""The dialogue folder: the tiny LLaVA-1.5's training data and benchmark stand-ins, written from a world.

``lcl data dialogue --world W --out D`` (:func:`build_dialogue`; :func:`ensure_dialogue` reuses a folder built
from the same world with the same settings)::

    D/dialogue.json                   format, settings, the world's content digest, counts
    D/corpus.txt                      the world's corpus: the trained tokenizer reads it, so a dialogue run's BPE
                                      is the one its world's pre-training runs used
    D/text/text-00000.jsonl           language-model pre-training (the stand-in for Vicuna's): the world's pages
                                      and the instruction conversations' wording, with no image
    D/captions/captions-00000.jsonl   stage 1, image → brief caption, in the form of LLaVA's LCS-558K
    D/instruct/instruct-00000.jsonl   stage 2, every image benchmark's questions on training scenes, answered
                                      with the scene's truth (LLaVA-1.5's mix of VQAv2, GQA and multiple choice)
    D/images/{train,test}/NNNNN.png   the dialogue images, drawn at the world's size and tier
    D/benchmarks/questions.jsonl      the held-out questions (:class:`~.dialogue.Question` fields; ``image`` is
                                      the number of ``images/test/NNNNN.png``, null for the blind set)

Training scenes and test scenes come from separate streams and the test scenes from held-out object
instances (:func:`~.dialogue.dialogue_scene`), so no test image and no test (image, question) is trained on.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

from .assets import load_assets, stable_int
from .dialogue import (BENCHMARKS, Question, blind_questions, dialogue_scene, instruction_data, popular_names,
                       questions)
from .language import reference_captions
from .scenes import render
from .world import png_bytes

DIALOGUE_FORMAT = "lcl-dialogue/1"
MANIFEST = "dialogue.json"
SOURCES = {"dialogue_text": "text", "dialogue_captions": "captions", "dialogue": "instruct"}  # source -> folder
# a few of LLaVA's brief-description prompts (llava/train: the LCS-558K pre-training instructions)
BRIEF_PROMPTS = ("Describe the image concisely.", "Provide a brief description of the given image.",
                 "Give a short and clear explanation of the subsequent image.", "Summarize the visual content of "
                 "the image.", "Share a concise interpretation of the image provided.")


def dialogue_settings(*, train_images: int = 2000, test_images: int = 300, seed: int = 0) -> dict:
    """Every argument of :func:`build_dialogue` that changes what it writes (its manifest records them)."""
    if min(train_images, test_images) < 1:
        raise ValueError(f"a dialogue folder needs training and test images, got {train_images} and {test_images}")
    return {"format": DIALOGUE_FORMAT, "train_images": train_images, "test_images": test_images, "seed": seed}


def _write_jsonl(path: Path, records) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, sort_keys=True) for record in records]
    path.write_text("".join(line + "\n" for line in lines))
    return len(lines)


def _draw(out: Path, split: str, count: int, seed: int, lib, image_size: int) -> list[dict]:
    scenes = []
    for index in range(count):
        scene = dialogue_scene(seed, split, index, lib)
        rng = random.Random(stable_int("dialogue-render", seed, split, index))
        path = out / "images" / split / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(render(scene, image_size, lib, rng)))
        scenes.append(scene)
    return scenes


def _as_text(record: dict) -> str:
    """A conversation's wording without its image: what the language model reads before it ever sees one."""
    return " ".join(f"USER: {turn['value'].replace('<image>', '').strip()}" if turn["from"] == "human"
                    else f"ASSISTANT: {turn['value']}" for turn in record["conversations"])


def build_dialogue(world: str | Path, out: str | Path, *, train_images: int = 2000, test_images: int = 300,
                   seed: int = 0) -> dict:
    """Write the dialogue folder of ``world`` to ``out`` (layout in the module docstring); returns its manifest."""
    world, out = Path(world), Path(out)
    manifest = json.loads((world / "world.json").read_text())
    settings = dialogue_settings(train_images=train_images, test_images=test_images, seed=seed)
    lib = load_assets(manifest["tier"])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(world / "corpus.txt", out / "corpus.txt")
    train = _draw(out, "train", train_images, seed, lib, manifest["image_size"])
    test = _draw(out, "test", test_images, seed, lib, manifest["image_size"])

    instruct = instruction_data(train, seed=seed)
    for record in instruct:
        record["image"] = f"images/train/{record['image']:05d}.png"
    captions = []
    for index, scene in enumerate(train):
        rng = random.Random(stable_int("dialogue-caption", seed, index))
        turns = [{"from": "human", "value": f"{rng.choice(BRIEF_PROMPTS)}\n<image>"},
                 {"from": "gpt", "value": rng.choice(reference_captions(scene))}]
        captions.append({"id": f"caption-{index}", "image": f"images/train/{index:05d}.png", "conversations": turns})
    pages = (world / "corpus.txt").read_text(encoding="utf-8").splitlines()
    text = ([{"id": f"page-{i}", "text": page} for i, page in enumerate(pages) if page.strip()]
            + [{"id": f"conversation-{r['id']}", "text": _as_text(r)} for r in instruct])

    popular = popular_names(train)
    held_out = [q for index, scene in enumerate(test) for benchmark in BENCHMARKS[:-1]
                for q in questions(scene, index, benchmark, seed=seed, popular=popular)] + blind_questions(seed)
    counts = {"text": _write_jsonl(out / "text" / "text-00000.jsonl", text),
              "captions": _write_jsonl(out / "captions" / "captions-00000.jsonl", captions),
              "instruct": _write_jsonl(out / "instruct" / "instruct-00000.jsonl", instruct),
              "questions": _write_jsonl(out / "benchmarks" / "questions.jsonl",
                                        (dataclasses.asdict(q) for q in held_out)),
              "train_images": train_images, "test_images": test_images}
    counts.update({f"questions_{b}": sum(q.benchmark == b for q in held_out) for b in BENCHMARKS})
    record = {"format": DIALOGUE_FORMAT, "settings": settings, "world": manifest["content_sha256"],
              "world_settings": manifest["settings"], "image_size": manifest["image_size"], "counts": counts}
    (out / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def ensure_dialogue(world: str | Path, out: str | Path, **settings) -> Path:
    """The dialogue folder of ``world`` with ``settings`` in ``out``, built unless one from the same world with the
    same settings is there (one from another world or with other settings is replaced)."""
    out = Path(out)
    wanted = dialogue_settings(**settings)
    digest = json.loads((Path(world) / "world.json").read_text())["content_sha256"]
    if (out / MANIFEST).is_file():
        held = json.loads((out / MANIFEST).read_text())
        if held.get("settings") == wanted and held.get("world") == digest:
            return out
        shutil.rmtree(out)
    build_dialogue(world, out, **settings)
    return out


def read_questions(folder: str | Path):
    """The held-out questions of a dialogue folder, as :class:`~.dialogue.Question` (tuples restored)."""
    rows = [json.loads(line) for line in (Path(folder) / "benchmarks" / "questions.jsonl").read_text().splitlines()]
    return [Question(**{**row, "answers": tuple(row["answers"]), "options": tuple(row["options"])}) for row in rows]

