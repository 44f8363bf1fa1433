"""The calibrated world (pages as real MMC4 pages are) beside the v1 world, which must not move."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from lcl_core.data.realism import REAL_SAMPLE, TOLERANCES, read_pages, realism, window_coverage
from lcl_core.data.world import (CALIBRATED, TRUTH_DETAILS, V1, EvalSizes, WorldKnobs, build_world,
                                 earlier_text_truth, make_document)
from lcl_core.reproduce.table1 import PROFILES, default_out, recipe_on
from lcl_core.tokenizer import Tokenizer

TINY_EVAL = EvalSizes(classification_train_per_class=1, classification_val_per_class=1, captions_train=2,
                      captions_val=1, captions_test=2, flickr30k_train=2, flickr30k_test=2, nocaps_per_domain=1)


def test_v1_pages_are_the_pages_every_committed_result_trained_on():
    """Records, alignment and OBELICS rows of the first 40 v1 pages, hashed before the calibrated world was
    added (commit ae119aa): the v1 world keeps its bytes, so old results stay reproducible."""
    digest = hashlib.sha256()
    for doc_id in range(40):
        document = make_document(doc_id, 0, V1, "basic", 32)
        digest.update(json.dumps([document["record"], document["alignment"], document["obelics"]],
                                 sort_keys=True).encode())
    assert digest.hexdigest() == "2ef2322ffd31a4e8920d001cc877d08e1ab089a1b30e639bfa96be27c3a78a20"
    assert V1 == WorldKnobs()


@pytest.fixture(scope="module")
def calibrated_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrated") / "world"
    build_world(folder, docs=400, pairs=10, seed=0, knobs=CALIBRATED, eval_sizes=TINY_EVAL, processes=2)
    return folder


def test_a_small_calibrated_world_lands_every_statistic_within_the_real_samples_tolerance(calibrated_world):
    result = realism(read_pages(calibrated_world), bootstrap=0)
    for name, distance in result.off_real().items():
        assert distance <= 1, (name, result.values[name], REAL_SAMPLE[name][0], TOLERANCES[name])
    # and the v1 world of the same size is far from real on what the text before an image says
    v1 = realism([make_document(i, 0, V1, "basic", 32)["record"] for i in range(150)], bootstrap=0)
    assert v1.values["near_before_share"] < 0.25


def test_the_calibrated_pages_say_more_about_each_image_before_it_by_their_own_ground_truth():
    calibrated = earlier_text_truth(docs=150, seed=0, knobs=CALIBRATED)
    v1 = earlier_text_truth(docs=150, seed=0, knobs=replace(V1, sentences_median=8.0))
    assert calibrated["kind"]["share"] > 0.9 > 0.4 > v1["kind"]["share"]
    for truth in (calibrated, v1):
        assert truth["everything"]["share"] <= min(truth[key]["share"] for key in TRUTH_DETAILS)
        assert truth["kind"]["images"] == truth["everything"]["images"] >= truth["size"]["images"] > 0
    # the calibrated page's images mostly show its subject again: a causal model can look back at them
    assert calibrated["same_image_before"]["share"] > 0.5 > 0.05 > v1["same_image_before"]["share"]


class WordTokenizer(Tokenizer):
    """One token per word; the layout tokens as words no text uses."""

    sot_id, eot_id, img_id, soi_id, eoi_id = "<sot>", "<eot>", "<img>", "<soi>", "<eoi>"

    def encode(self, text: str) -> list[str]:
        return text.split()


def test_window_coverage_counts_what_fits_whole_worked_by_hand():
    page = {"text_list": ["one two three", "four five", "six seven eight nine"],
            "image_info": [{"image_name": "a.jpg", "matched_text_index": 1, "matched_sim": 0.3}]}
    # image-first: <sot> s0 (3) [<soi> 2 tokens <eoi>] (4) s1 (2) s2 (4) <eot>
    wide = window_coverage([page], WordTokenizer(), context_length=12, num_image_tokens=2, img_first_prob=1.0)
    assert (wide["images_kept"], wide["sentences_kept"]) == (1.0, pytest.approx(2 / 3))  # 1+3+4+2 = 10 <= 11
    narrow = window_coverage([page], WordTokenizer(), context_length=8, num_image_tokens=2, img_first_prob=1.0)
    assert (narrow["images_kept"], narrow["sentences_kept"]) == (0.0, pytest.approx(1 / 3))  # the block ends at 8
    after = window_coverage([page], WordTokenizer(), context_length=8, num_image_tokens=2, img_first_prob=0.0)
    assert (after["images_kept"], after["sentences_kept"]) == (0.0, pytest.approx(2 / 3))  # s0 s1 fit, then the block
    below = dict(page, image_info=[dict(page["image_info"][0], matched_sim=0.2)])
    assert window_coverage([below], WordTokenizer(), context_length=12, num_image_tokens=2)["pages"] == 0


def test_lcl_data_world_starts_from_a_preset_and_single_knob_flags_change_it(tmp_path):
    out = tmp_path / "world"
    subprocess.run([sys.executable, "-m", "lcl_core.cli", "data", "world", "--out", str(out), "--docs", "6",
                    "--pairs", "4", "--preset", "calibrated", "--restate-intro", "3.0",
                    "--classification-train-per-class", "1", "--classification-val-per-class", "1",
                    "--captions-train", "2", "--captions-val", "1", "--captions-test", "2", "--flickr30k-train", "2",
                    "--flickr30k-test", "2", "--nocaps-per-domain", "1", "--processes", "1"],
                   check=True, capture_output=True)
    knobs = json.loads((out / "world.json").read_text())["knobs"]
    assert knobs == asdict(replace(CALIBRATED, restate_intro=3.0))


def test_a_profile_on_the_calibrated_world_changes_its_world_knobs_and_its_name_only():
    for name, recipe in PROFILES.items():
        assert recipe_on(name, "v1") is recipe
        calibrated = recipe_on(name)  # the calibrated world is every profile's default
        assert calibrated == recipe_on(name, "calibrated")
        assert calibrated.name == f"{name}-calibrated" and calibrated.world["knobs"] == CALIBRATED
        assert {k: v for k, v in calibrated.world.items() if k != "knobs"} == {
            k: v for k, v in recipe.world.items() if k != "knobs"}
        assert replace(calibrated, name=recipe.name, world=recipe.world) == recipe
    assert str(default_out(recipe_on("cpu", "calibrated"))) == "runs/reproduce/table1-cpu-calibrated"
    with pytest.raises(KeyError, match="unknown world 'v2'"):
        recipe_on("cpu", "v2")


def test_a_v1_worlds_settings_are_written_as_before_the_restating_knobs_existed():
    """So a v1 world built before them keeps its folder name and is reused, not rebuilt (nor its runs retrained)."""
    from lcl_core.data.world import world_settings

    assert sorted(world_settings(knobs=V1)["knobs"]) == sorted([
        "images_per_doc", "max_images_per_doc", "sentences_median", "sentences_spread", "distractor_prob",
        "misalign_prob", "leak_prob", "caption_after_prob", "detail_prob", "knowledge_prob", "topic_focus", "sim_base",
        "sim_gain", "sim_noise"])
    assert world_settings(knobs=CALIBRATED)["knobs"] == asdict(CALIBRATED)
    with pytest.raises(ValueError, match="subject_focus act on page_style 'restating' pages only"):
        WorldKnobs(subject_focus=0.5)
    with pytest.raises(ValueError, match="unknown page_style 'blog'"):
        WorldKnobs(page_style="blog")
