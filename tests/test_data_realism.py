"""``lcl data realism``: what the text before an image says about it, checked by hand and on real MMC4."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import zipfile

import pytest

from lcl_core.data.realism import (REAL_SAMPLE, REAL_SAMPLE_COUNTS, STATISTICS, TOLERANCES, mmc4_files, read_pages,
                                   realism)
from conftest import shared_path

SAMPLE = ("fixtures", "mmc4-sample", "docs_no_face_shard_151_v3.jsonl")


def _page(rows, matched, sims, sentences):
    return {"url": "u", "text_list": [f"s{i}" for i in range(sentences)], "similarity_matrix": rows,
            "image_info": [{"image_name": f"{k}.jpg", "matched_text_index": m, "matched_sim": s}
                           for k, (m, s) in enumerate(zip(matched, sims))]}


def hand_pages():
    """Image A matched to sentence 2 (0.30; 0.29 just before), B to sentence 0 (0.26: nothing before), C below
    the threshold (left out, but still an image of the page); a second page with 6 sentences and no image."""
    return [_page([[0.10, 0.29, 0.30, 0.05], [0.26, 0.20, 0.10, 0.12], [0.10, 0.10, 0.10, 0.20]],
                  matched=[2, 0, 3], sims=[0.30, 0.26, 0.20], sentences=4),
            _page([], matched=[], sims=[], sentences=6)]


def test_the_statistics_of_a_page_worked_by_hand():
    result = realism(hand_pages(), bootstrap=0)
    std_a, std_b = math.sqrt((0.085**2 + 0.105**2 + 0.115**2 + 0.135**2) / 4), math.sqrt(
        (0.09**2 + 0.03**2 + 0.07**2 + 0.05**2) / 4)  # row means 0.185 and 0.17
    page_mean = (0.74 + 0.68 + 0.50) / 12
    want = {
        "matched_minus_page_mean": ((0.30 - page_mean) + (0.26 - page_mean)) / 2,
        "z_matched": (0.115 / std_a + 0.09 / std_b) / 2,
        "z_best_before": 0.105 / std_a,  # A only: B's match is the first sentence
        "near_before_share": 1.0,  # 0.29 >= 0.30 - 0.02
        "z_previous": 0.105 / std_a,
        "before_share": 0.5,
        "better_before_share": 0.0,  # 0.29 < 0.30
        "matched_is_best_share": 1.0,
        "matched_position": (2 / 3 + 0) / 2,
        "median_sentences": 5.0,  # pages of 4 and 6 sentences
        "images_per_page": 1.5,  # 3 and 0: images below the threshold are still the page's
        # the first page's matrix (mean 0.16) = row effects (0.025, 0.01, -0.035) + sentence effects
        # (-0.02/3, 0.11/3, 0.02/3, -0.11/3) + residual, variances adding up (a balanced two-way layout)
        "sentence_effect_share": (2 * (0.02 / 3) ** 2 + 2 * (0.11 / 3) ** 2) / 4 / (0.0814 / 12),
        "residual_spread": math.sqrt(0.0814 / 12 - (0.025**2 + 0.01**2 + 0.035**2) / 3
                                     - (2 * (0.02 / 3) ** 2 + 2 * (0.11 / 3) ** 2) / 4),
    }
    assert set(want) == set(STATISTICS)
    for name, value in want.items():
        assert result.values[name] == pytest.approx(value, abs=1e-12), name
    assert (result.pages, result.images, result.images_with_text_before) == (2, 2, 1)


def test_a_one_sentence_page_and_a_malformed_matrix_count_without_crashing():
    one = _page([[0.3]], matched=[0], sims=[0.3], sentences=1)
    broken = _page([[0.3, 0.1]], matched=[0], sims=[0.3], sentences=3)  # the matrix has 2 columns for 3 sentences
    result = realism([one, broken], bootstrap=0)
    assert result.values["z_matched"] == 0.0 and result.values["matched_position"] == 0.0
    assert math.isnan(result.values["z_previous"])  # no image has text before
    assert result.images == 1 and result.values["median_sentences"] == 2.0


def test_the_real_sample_gives_its_hand_checked_values():
    """Checked against an independent numpy computation of the definitions (population z, the page mean over
    the whole matrix): 396 images at or above 0.24, 340 with a sentence before, 217 of them near."""
    result = realism(read_pages(shared_path(*SAMPLE)), bootstrap=200)
    assert (result.pages, result.images, result.images_with_text_before) == (107, 396, 340)
    assert REAL_SAMPLE_COUNTS == {"pages": 107, "images": 396, "images_with_text_before": 340}
    hand = {"matched_minus_page_mean": 0.0671197, "z_matched": 1.5746759, "z_best_before": 1.1834108,
            "near_before_share": 217 / 340, "z_previous": 0.1207667, "median_sentences": 17.0}
    for name, value in hand.items():
        assert result.values[name] == pytest.approx(value, abs=1e-6), name
        assert result.values[name] == pytest.approx(REAL_SAMPLE[name][0], abs=1e-3), name
        assert result.standard_errors[name] == pytest.approx(REAL_SAMPLE[name][1], rel=0.25), name
    assert all(distance == pytest.approx(0, abs=0.05) for distance in result.off_real().values())
    assert set(TOLERANCES) == set(REAL_SAMPLE)


def test_every_public_shard_naming_and_a_kit_world_are_read(tmp_path):
    sample = shared_path(*SAMPLE)
    lines = sample.read_text().splitlines()
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "docs_no_face_shard_151_v3.jsonl").write_text("\n".join(lines[:40]) + "\n")
    with zipfile.ZipFile(folder / "docs_shard_7_v2.jsonl.zip", "w") as archive:
        archive.writestr("docs_shard_7_v2.jsonl", "\n".join(lines[40:]) + "\n")
    (folder / "alignment.jsonl").write_text("not a shard\n")  # a sidecar is not read
    assert [f.name for f in mmc4_files(folder)] == ["docs_no_face_shard_151_v3.jsonl", "docs_shard_7_v2.jsonl.zip"]
    assert realism(read_pages(folder), bootstrap=0).values == realism(read_pages(sample), bootstrap=0).values
    assert len(read_pages(folder, limit=50)) == 50
    world = tmp_path / "world"
    (world / "mmc4").mkdir(parents=True)
    (world / "world.json").write_text("{}")
    shutil.copy(folder / "docs_shard_7_v2.jsonl.zip", world / "mmc4")
    assert [f.name for f in mmc4_files(world)] == ["docs_shard_7_v2.jsonl.zip"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no files matching"):
        mmc4_files(tmp_path / "empty")


def test_lcl_data_realism_prints_the_paths_side_by_side_and_refuses_a_missing_one(tmp_path):
    sample = shared_path(*SAMPLE)
    command = [sys.executable, "-m", "lcl_core.cli", "data", "realism"]
    shown = subprocess.run(command + [str(sample), str(sample), "--bootstrap", "20"], capture_output=True, text=True,
                           check=True).stdout
    assert "| z of the best sentence before * | 1.183 ± " in shown and shown.count("✓") == 2 * len(TOLERANCES)
    as_json = json.loads(subprocess.run(command + [str(sample), "--bootstrap", "0", "--json"], capture_output=True,
                                        text=True, check=True).stdout)
    assert as_json[0]["statistics"]["near_before_share"]["value"] == pytest.approx(217 / 340)
    missing = subprocess.run(command + [str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stdout
    no_corpus = subprocess.run(command + [str(sample), "--window", "128", "--tokenizer", "trained"],
                               capture_output=True, text=True)
    assert no_corpus.returncode == 2 and "needs a kit world" in no_corpus.stdout
