"""The one run builder: one run folder format for every caller, identity from spec and data content,
reuse and exact resume of cached runs, mixed data sources."""

from __future__ import annotations

import json
import sys

import pytest

from lcl_core.cli import main as lcl
from lcl_core.data import EvalSizes, WorldKnobs, cached_world
from lcl_core.training import RunSpec, TrainConfig, open_run, train_run
from lcl_core.training.checkpointing import load_latest_checkpoint
from lcl_core.training.data import build_batches
from lcl_core.training.runs import read_run_file, run_folder, run_identity

from training_helpers import (kill_after_step, losses, pretrain_command, run_quietly, same_final_weights, small_world,
                              tiny_spec, world_tokenizer)

TINY_EVAL = EvalSizes(classification_train_per_class=1, classification_val_per_class=1, captions_train=2,
                      captions_val=1, captions_test=2, flickr30k_train=2, flickr30k_test=2, nocaps_per_domain=1)


def test_spec_round_trips_and_changes_one_parameter():
    spec = tiny_spec(steps=3)
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    coca = spec.changed(objective="coca", source="mmc4_pair", contrastive_weight=0.5)
    assert (coca.objective, coca.source, coca.train.contrastive_weight, coca.train.steps) == ("coca", "mmc4_pair", 0.5, 3)
    with pytest.raises(ValueError, match="unknown run settings"):
        spec.changed(lamda=0.5)
    with pytest.raises(ValueError, match="unknown data source"):
        spec.changed(source="mmc5")
    with pytest.raises(ValueError, match="mix .* one count per source"):
        spec.changed(source="mmc4", mix=[1, 1])


def test_identity_covers_what_changes_the_result_and_nothing_else():
    spec = tiny_spec(steps=3)
    same = [spec.changed(progress_bar=True), spec.changed(save_every=1), spec.changed(log_every=2),
            spec.changed(source="mmc4"), spec.changed(contrastive_weight=0.1)]  # lcl's own source and λ
    assert {run_identity(s) for s in same} == {run_identity(spec)}
    different = [spec.changed(steps=4), spec.changed(seed=1), spec.changed(objective="coca"),
                 spec.changed(source="mmc4+pairs"), spec.changed(img_first_prob=0.25)]
    assert len({run_identity(s) for s in [spec, *different]}) == 1 + len(different)


def test_an_image_folder_apart_from_the_shards_is_part_of_the_identity(tmp_path):
    spec = tiny_spec(steps=3)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"x")
    apart = spec.changed(images=images)
    one_image = run_identity(apart)
    assert apart.images == str(images) and one_image != run_identity(spec)
    (images / "b.png").write_bytes(b"y")
    assert run_identity(apart) != one_image  # another image in the folder: other data
    with pytest.raises(FileNotFoundError, match="image folder .* does not exist"):
        run_identity(spec.changed(images=tmp_path / "absent"))
    with pytest.raises(ValueError, match="carries its images in its tars"):
        spec.changed(source="pairs", images=images)
    assert spec.changed(source="mmc4+pairs", images=images).images == str(images)  # the documents' images


def test_a_mix_takes_each_source_at_its_own_batch_size():
    spec = tiny_spec(steps=3).changed(source="mmc4+pairs", mix=[2, 1], batch_sizes=[3, 5])
    tokenizer = world_tokenizer()
    batches = build_batches(data=spec.data, source=spec.source, config=spec.train, model_config=spec.model_config(
        tokenizer), tokenizer=tokenizer, rank=0, world_size=1, mix=spec.mix, batch_sizes=spec.batch_sizes)
    rows = [batch["input_ids"].shape[0] for _, batch in zip(range(6), batches)]
    assert rows == [3, 3, 5, 3, 3, 5]  # two document batches of 3 rows, then a pair batch of 5
    assert run_identity(spec) != run_identity(spec.changed(batch_sizes=None))
    with pytest.raises(ValueError, match="one positive batch size per source"):
        spec.changed(batch_sizes=[3])
    with pytest.raises(ValueError, match="one positive batch size per source"):
        spec.changed(batch_sizes=[3, 0])


def test_a_world_rebuilt_with_other_knobs_is_a_new_run_identity(tmp_path):
    world = cached_world(tmp_path, docs=12, seed=0, eval_sizes=TINY_EVAL, processes=1)
    spec = RunSpec(data=str(world), train=TrainConfig(steps=2))
    before = run_identity(spec)
    assert cached_world(tmp_path, docs=12, seed=0, eval_sizes=TINY_EVAL, processes=1) == world  # reused as is
    assert run_identity(spec) == before
    other = cached_world(tmp_path, docs=12, seed=0, eval_sizes=TINY_EVAL, knobs=WorldKnobs(leak_prob=0.9), processes=1)
    assert other != world and run_identity(RunSpec(data=str(other), train=TrainConfig(steps=2))) != before
    # the same folder rebuilt with another knob: same path, other content, other identity
    from lcl_core.data import ensure_world
    ensure_world(world, docs=12, seed=0, eval_sizes=TINY_EVAL, knobs=WorldKnobs(leak_prob=0.9), processes=1)
    assert run_identity(spec) != before


def test_a_cached_run_is_reused_and_opens_anywhere(tmp_path, capsys):
    spec = tiny_spec(steps=2)
    first = train_run(spec, root=tmp_path, label="LCL")
    assert not first.reused and first.folder == run_folder(tmp_path, spec) and first.history[-1]["step"] == 2
    again = train_run(spec.changed(progress_bar=True), root=tmp_path, label="another label")
    assert again.reused and again.folder == first.folder
    # lcl evaluate opens the run folder itself
    assert lcl(["evaluate", "--checkpoint", str(first.folder), "--data", str(small_world()), "--tasks", "cls",
                "--baselines", "", "--epochs", "1", "--no-cache"]) == 0
    assert "checkpoint" in capsys.readouterr().out


def test_a_run_made_by_lcl_pretrain_opens_in_the_notebooks_loader_and_vice_versa(tmp_path):
    made_by_cli = tmp_path / "cli-run"
    run_quietly(pretrain_command(made_by_cli, "--steps", "2", "--objective", "coca"))
    opened = open_run(made_by_cli)
    assert opened.spec.objective == "coca" and opened.history[-1]["step"] == 2
    assert opened.model.config.bridge.vocab_size == opened.tokenizer.vocab_size
    # a run made by the builder resumes and extends through lcl pretrain
    made_by_notebook = train_run(tiny_spec(steps=2), root=tmp_path)
    result = run_quietly(pretrain_command(made_by_notebook.folder, "--steps", "3", "--resume"))
    assert "resuming" in result.stderr and max(losses(made_by_notebook.folder)) == 3
    assert read_run_file(made_by_notebook.folder)["resumed_with_steps"] == [3]


def test_a_folder_holding_another_run_is_refused(tmp_path):
    train_run(tiny_spec(steps=2), folder=tmp_path / "run")
    with pytest.raises(ValueError, match="holds another finished run"):
        train_run(tiny_spec(steps=2, seed=1), folder=tmp_path / "run")


def test_a_run_being_trained_elsewhere_is_not_trained_twice(tmp_path):
    import fcntl

    spec = tiny_spec(steps=2)
    folder = run_folder(tmp_path, spec)
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as held:  # another process training this run
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="being trained by another process"):
            train_run(spec, root=tmp_path)
    assert not train_run(spec, root=tmp_path).reused  # once it is free


BUILDER_SCRIPT = """
import sys
from lcl_core.training import RunSpec, train_run
spec = RunSpec.from_json(sys.argv[1])
train_run(spec, root=sys.argv[2])
"""


def notebook_cell(spec_file, root) -> list[str]:
    """``train_run(spec, root=root)`` as a notebook cell runs it, in a process of its own."""
    return [sys.executable, "-c", BUILDER_SCRIPT, str(spec_file), str(root)]


@pytest.mark.slow
def test_a_notebook_run_killed_midway_resumes_to_the_uninterrupted_weights(tmp_path):
    spec = tiny_spec(steps=8, save_every=2)
    spec.to_json(tmp_path / "spec.json")
    spec_file = tmp_path / "spec.json"
    run_quietly(notebook_cell(spec_file, tmp_path / "straight"))  # one thread in every process: identical arithmetic
    straight, folder = run_folder(tmp_path / "straight", spec), run_folder(tmp_path / "killed", spec)
    kill_after_step(notebook_cell(spec_file, tmp_path / "killed"), folder, 5)
    assert not (folder / "final").exists()
    # the kill lands after step 5 is logged; step 6's checkpoint may or may not be written by then
    saved = load_latest_checkpoint(folder / "checkpoints").step
    assert saved in (4, 6)
    result = run_quietly(notebook_cell(spec_file, tmp_path / "killed"))  # the notebook cell run again
    assert f"resuming at step {saved} of 8" in result.stderr
    assert losses(folder) == losses(straight)
    assert same_final_weights(straight, folder)


@pytest.mark.slow
def test_mixed_documents_and_pairs_train_and_resume_exactly(tmp_path):
    settings = ("--steps", "6", "--save-every", "2", "--data-source", "mmc4+pairs", "--mix", "2:1")
    straight = tmp_path / "straight"
    run_quietly(pretrain_command(straight, *settings))
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    # two document batches, then one pair batch: pair rows hold one image each, document rows one or more
    images_per_row = [r["images"] / r["sequences"] for r in records]
    documents = [records[step] for step in (0, 1, 3, 4)]
    assert images_per_row[2] == images_per_row[5] == 1.0
    assert sum(r["images"] for r in documents) > sum(r["sequences"] for r in documents)
    killed = tmp_path / "killed"
    kill_after_step(pretrain_command(killed, *settings), killed, 3)
    run_quietly(pretrain_command(killed, *settings, "--resume"))
    assert losses(killed) == losses(straight)
    assert same_final_weights(straight, killed)
