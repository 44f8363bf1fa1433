"""The tiny LLaVA-1.5's stages through the one run builder (lcl_core/training/dialogue.py): what each stage trains,
where its weights come from, its answer-only loss against an independent computation, the data it reads (no test
image in training), its identity, bad stages refused, and a stage killed midway resumed to the uninterrupted
weights."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from lcl_core.config import ModelConfig
from lcl_core.data import ConversationDataset, make_loader
from lcl_core.data.dialogue_world import build_dialogue, read_questions
from lcl_core.model import LCLModel
from lcl_core.objectives import PretrainingObjective
from lcl_core.sequences import IGNORE_INDEX
from lcl_core.training import RunSpec, TrainConfig, train_run
from lcl_core.training.dialogue import DialogueSpec
from lcl_core.training.runs import run_folder, run_identity
from lcl_core.transfer.dialogue_eval import asks, evaluate_dialogue

from training_helpers import kill_after_step, losses, run_quietly, same_final_weights, small_world, tiny_spec

LM = {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The small world's dialogue folder, a pre-trained encoder and the language model, in one root."""
    root = tmp_path_factory.mktemp("dialogue")
    data = root / "dialogue"
    build_dialogue(small_world(), data, train_images=24, test_images=6)
    encoder = train_run(tiny_spec(steps=2), root=root, progress=lambda message: None)
    language_model = train_run(stage_spec(data, stage="text"), root=root, progress=lambda message: None)
    return root, data, encoder, language_model


def stage_spec(data, *, steps: int = 3, seed: int = 0, **dialogue) -> RunSpec:
    base = tiny_spec()
    return RunSpec(data=str(data), preset=None, model=base.model, tokenizer=base.tokenizer,
                   dialogue={"lm": LM, "context_length": 320, **dialogue},
                   train=TrainConfig(objective="generation", steps=steps, batch_size=4, lr=2e-3, warmup_steps=1,
                                     seed=seed, save_every=2, progress_bar=False))


def weights(run, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in load_file(str(run.folder / "final" / "model.safetensors")).items()
            if k.startswith(prefix)}


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def train(spec, root):
    return train_run(spec, root=root, progress=lambda message: None)


def test_each_stage_trains_its_parts_and_starts_from_the_one_before(setup):
    root, data, encoder, language_model = setup
    projector = train(stage_spec(data, stage="projector", encoder=str(encoder.folder),
                                 previous=str(language_model.folder)), root)
    assert same(weights(projector, "vision."), weights(encoder, "vision."))
    assert same(weights(projector, "llava.lm."), weights(language_model, "llava.lm."))
    assert weights(projector, "llava.projector.") and not weights(language_model, "llava.projector.")
    frozen, full = (train(stage_spec(data, stage="instruct", encoder=str(encoder.folder), previous=str(projector.folder),
                                     train_encoder=trains), root) for trains in (False, True))
    assert same(weights(frozen, "vision."), weights(encoder, "vision."))
    assert not same(weights(full, "vision."), weights(encoder, "vision."))
    past = ("vision.pool.", "vision.vit.ln_post.", "vision.vit.transformer.resblocks.2.")  # after the penultimate block
    assert all(same(weights(full, prefix), weights(encoder, prefix)) for prefix in past)
    for run in (frozen, full):
        assert not same(weights(run, "llava.lm."), weights(projector, "llava.lm."))
        assert not same(weights(run, "llava.projector."), weights(projector, "llava.projector."))
    assert run_identity(frozen.spec) != run_identity(full.spec)


def test_the_random_init_encoder_is_the_table1_random_row_and_the_blind_lm_sees_nothing(setup):
    root, data, _, language_model = setup
    projector = train(stage_spec(data, stage="projector", previous=str(language_model.folder), seed=3), root)
    config = ModelConfig.from_dict(tiny_spec().model)
    torch.manual_seed(3)
    initial = LCLModel(config=config).vision.state_dict()  # the weights Table 1's random-init row evaluates at seed 3
    assert same(weights(projector, "vision."), initial)
    blind = train(stage_spec(data, stage="instruct", blind=True, previous=str(language_model.folder)), root)
    assert blind.model.vision is None and blind.model.llava.projector is None
    assert not weights(blind, "vision.") and not weights(blind, "llava.projector.")


def test_the_loss_is_the_next_token_cross_entropy_of_the_answers_alone(setup):
    _, data, encoder, language_model = setup
    spec = stage_spec(data, stage="projector", encoder=str(encoder.folder), previous=str(language_model.folder),
                      context_length=1024)  # every conversation whole
    from lcl_core.tokenizer import load_tokenizer
    from lcl_core.training.dialogue import build_dialogue_model

    tokenizer = load_tokenizer(spec.tokenizer)
    model = build_dialogue_model(spec.dialogue_spec, spec.model_config(tokenizer), seed=0)
    reader = ConversationDataset(data / "instruct", tokenizer, **model.config.stream_sizes(), shuffle=False)
    batch = next(iter(make_loader(reader, 3)))
    outputs = model(batch["images"], batch["input_ids"], labels=batch["labels"])
    loss = PretrainingObjective.named("generation")(outputs)["loss"]
    # independently: the Llama's own logits on the spliced embeddings, shifted, at the labelled positions
    ids, labels = batch["input_ids"], batch["labels"]
    pad = tokenizer.pad_id
    embeds = model.llava.embed(ids.masked_fill(ids == pad, 0), model.image_tokens(batch["images"]))
    logits = model.llava.lm(inputs_embeds=embeds, attention_mask=(ids != pad).long()).logits[:, :-1]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    torch.testing.assert_close(loss, F.cross_entropy(logits[keep], targets[keep]), rtol=1e-5, atol=1e-6)
    answers = [tokenizer.decode(row[row != IGNORE_INDEX].tolist()) for row in labels]
    first = json.loads((data / "instruct" / "instruct-00000.jsonl").read_text().splitlines()[0])
    assert answers[0] == " ".join(turn["value"] for turn in first["conversations"] if turn["from"] == "gpt").lower()


def test_no_test_image_is_trained_on_and_the_questions_read_back(setup):
    _, data, _, _ = setup
    train_images = {p.read_bytes() for p in (data / "images" / "train").iterdir()}
    test_images = sorted((data / "images" / "test").iterdir())
    assert len(test_images) == 6 and not train_images & {p.read_bytes() for p in test_images}
    used = {json.loads(line)["image"] for folder in ("captions", "instruct")
            for line in (data / folder / f"{folder}-00000.jsonl").read_text().splitlines()}
    assert used and all(path.startswith("images/train/") for path in used)
    questions = read_questions(data)
    manifest = json.loads((data / "dialogue.json").read_text())
    assert len(questions) == manifest["counts"]["questions"]
    assert {q.image for q in questions if q.benchmark != "blind"} <= set(range(6))
    assert (data / "corpus.txt").read_bytes() == (small_world() / "corpus.txt").read_bytes()


def test_the_reader_counts_bad_lines_and_the_blind_reader_drops_every_image(setup, tmp_path):
    _, data, _, _ = setup
    from lcl_core.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tiny_spec().tokenizer)
    good = (data / "instruct" / "instruct-00000.jsonl").read_text().splitlines()[0]
    shard = tmp_path / "instruct" / "bad-00000.jsonl"
    shard.parent.mkdir()
    missing = json.dumps({**json.loads(good), "image": "images/train/nowhere.png"})
    shard.write_text("\n".join([good, "{not json", json.dumps({"id": 1}), missing, good]) + "\n")
    reader = ConversationDataset(shard, tokenizer, image_size=30, num_image_tokens=9, context_length=320,
                                 image_root=data, shuffle=False)
    samples = list(reader)
    assert len(samples) == 2 and all(s["images"].shape == (1, 3, 30, 30) for s in samples)
    assert dict(reader.skips) == {"broken_json_line": 1, "not_a_conversation": 1, "missing_image": 1}
    blind = ConversationDataset(shard, tokenizer, image_size=30, num_image_tokens=9, context_length=320,
                                image_root=data, shuffle=False, blind=True)
    sample = next(iter(blind))
    assert sample["images"].shape[0] == 0 and tokenizer.img_id not in sample["ids"]


def test_bad_stages_are_refused_with_a_reason(setup):
    _, data, encoder, language_model = setup
    with pytest.raises(ValueError, match="needs the previous stage's run"):
        DialogueSpec(stage="projector")
    with pytest.raises(ValueError, match="blind control is the instruct stage with no encoder"):
        DialogueSpec(stage="instruct", previous="x", blind=True, encoder="y")
    with pytest.raises(ValueError, match="only the instruct stage trains the encoder"):
        DialogueSpec(stage="projector", previous="x", train_encoder=True)
    with pytest.raises(ValueError, match="objective generation"):
        stage_spec(data, stage="text").changed(objective="lcl")
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        run_identity(stage_spec(data, stage="projector", previous=str(data)))
    other = train(tiny_spec(steps=2, seed=1), setup[0])
    first, second = (run_identity(stage_spec(data, stage="projector", encoder=str(run.folder),
                                             previous=str(language_model.folder))) for run in (encoder, other))
    assert first != second  # the encoder's run is part of the stage's identity


def test_every_held_out_question_is_asked_and_scored_and_the_blind_lm_is_asked_without_images(setup):
    root, data, encoder, language_model = setup
    blind = train(stage_spec(data, stage="instruct", blind=True, previous=str(language_model.folder)), root)
    asked_with, answer = [], blind.model.answer
    blind.model.answer = lambda prompts, images, **options: asked_with.append((prompts, images)) or answer(
        prompts, images, **options)
    scores = evaluate_dialogue(blind.model, blind.tokenizer, data, max_new_tokens=2, examples=1)
    assert set(scores) >= {"vqav2", "gqa", "pope", "mme", "mmbench", "blind", "average", "examples"}
    questions = read_questions(data)
    assert sum(len(prompts) for prompts, _ in asked_with) == len(asks(questions))
    assert scores["mmbench"]["n"] == sum(q.benchmark == "mmbench" for q in questions)
    assert all(images is None and all(blind.tokenizer.img_id not in p for p in prompts) for prompts, images in asked_with)


def test_lcl_chat_answers_and_gives_one_line_for_bad_input(setup, tmp_path, capsys):
    from lcl_core.cli import main

    root, data, encoder, language_model = setup
    projector = train(stage_spec(data, stage="projector", encoder=str(encoder.folder),
                                 previous=str(language_model.folder)), root)
    run = train(stage_spec(data, stage="instruct", encoder=str(encoder.folder), previous=str(projector.folder)), root)
    image = data / "images" / "test" / "00000.png"
    assert main(["chat", str(run.folder), "--image", str(image), "What colour is the star?"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    (tmp_path / "notes.txt").write_text("not an image")
    refused = {"missing image": [str(run.folder), "--image", str(tmp_path / "none.png"), "What is it?"],
               "not an image": [str(run.folder), "--image", str(tmp_path / "notes.txt"), "What is it?"],
               "empty question": [str(run.folder), "--image", str(image), "  "],
               "pre-training run": [str(encoder.folder), "What is it?"],
               "not a run": [str(tmp_path), "What is it?"]}
    for case, argv in refused.items():
        assert main(["chat", *argv]) == 2, case
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lcl chat: error:") and "Traceback" not in err[0], case


STAGE_SCRIPT = """
import sys
from lcl_core.training import RunSpec, train_run
train_run(RunSpec.from_json(sys.argv[1]), root=sys.argv[2])
"""


@pytest.mark.slow
def test_a_stage_killed_midway_resumes_to_the_uninterrupted_weights(setup, tmp_path):
    root, data, encoder, language_model = setup
    projector = train(stage_spec(data, stage="projector", encoder=str(encoder.folder),
                                 previous=str(language_model.folder)), root)
    spec = stage_spec(data, stage="instruct", encoder=str(encoder.folder), previous=str(projector.folder),
                      train_encoder=True, steps=8)
    spec.to_json(tmp_path / "spec.json")

    def command(root):
        return [sys.executable, "-c", STAGE_SCRIPT, str(tmp_path / "spec.json"), str(root)]

    run_quietly(command(tmp_path / "straight"))
    straight, killed = run_folder(tmp_path / "straight", spec), run_folder(tmp_path / "killed", spec)
    kill_after_step(command(tmp_path / "killed"), killed, 5)
    assert not (killed / "final").exists()
    run_quietly(command(tmp_path / "killed"))
    assert losses(killed) == losses(straight)
    assert same_final_weights(straight, killed)
