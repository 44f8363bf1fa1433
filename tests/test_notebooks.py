"""The notebook sequence: committed clean, executed headless at the smoke profile, judged by its JSON.

The module-scoped fixture runs every notebook once with papermill into one folder, in sequence order,
so later notebooks reuse the world and the runs of earlier ones exactly as a reader's session would.
Set ``LCL_NOTEBOOK_OUT=DIR`` to keep the executed notebooks (CI artifacts); otherwise a temporary
folder is used. Cells tagged ``nbval-check-output`` are re-executed and compared with nbval.

The kernels run with one intra-op thread unless ``OMP_NUM_THREADS`` is set: on two shared cores the
tiny models' steps were about ten times slower with two spinning OpenMP threads than with one.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lcl_core.data.realism import REAL_SAMPLE
from lcl_core.config import get_preset
from lcl_core.exercises import EXERCISES, lookup
from lcl_core.notebook_copies import COPY_BUDGET, HEADER_ID, drift, render
from lcl_core.notebooks import PROFILES, SEQUENCE, declared_parameters, notebook_dir, notebook_path, run_notebooks
from lcl_core.paths import repo_root
from lcl_core.reproduce import PROFILES as REPRODUCTION_PROFILES
from lcl_core.reproduce.report import verdict_agreement
from lcl_core.tokenizer import ClipTokenizer
from lcl_core.training.flops import parameter_counts, training_flops

CHECK_TAG = "nbval-check-output"
MAX_CELL_LINES = 15  # longer cells hold library logic ...
HAND_COMPUTATION = "hand-computation"  # ... unless they compute by hand what the library does, to teach it


# ---- the committed notebooks (cheap, always run) ----------------------------------------------------
def test_the_folder_holds_exactly_the_sequence():
    assert sorted(p.stem for p in notebook_dir().glob("*.ipynb")) == sorted(SEQUENCE)


@pytest.mark.parametrize("name", SEQUENCE)
def test_committed_notebook_is_clean_and_parameterised(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    with_outputs = [i for i, c in enumerate(code_cells) if c.outputs or c.execution_count is not None]
    assert not with_outputs, f"{name}: code cells {with_outputs} carry outputs; strip them before committing"
    tags = code_cells[0].metadata.get("tags", [])
    assert "parameters" in tags, f"{name}: the first code cell must be tagged parameters"
    first = code_cells[0].source
    for parameter in ("seed", "out_dir", "profile"):
        assert f"{parameter} =" in first, f"{name}: the parameters cell does not declare {parameter}"
    assert nb.metadata.kernelspec.name == "python3"
    assert f'apply_profile(globals(), "{name}")' in code_cells[1].source, f"{name}: sizes must follow its profile"
    assigned = {target.id for node in ast.parse(first).body if isinstance(node, ast.Assign) for target in node.targets}
    assert set(declared_parameters(name)) == assigned, f"{name}: papermill cannot read every parameter (no '=' in comments)"


@pytest.mark.parametrize("name", SEQUENCE)
def test_notebook_cells_narrate_and_call_rather_than_hold_library_logic(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and HAND_COMPUTATION not in cell.metadata.get("tags", []):
            code = [line for line in cell.source.splitlines() if line.strip() and not line.strip().startswith("#")]
            assert len(code) <= MAX_CELL_LINES, f"{name} cell {index}: {len(code)} lines of code; move logic to lcl_core"


# ---- the smoke run ------------------------------------------------------------------------------------
CELL_TIMEOUT = 900  # seconds: a smoke cell takes under a minute; past this the kernel is hung, and its notebook fails
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run the whole sequence once; a failing notebook is recorded, and only its own tests fail."""
    out_dir = Path(os.environ.get("LCL_NOTEBOOK_OUT") or tmp_path_factory.mktemp("notebooks"))
    threads_were_set = "OMP_NUM_THREADS" in os.environ
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the papermill kernels
    failures, seconds = {}, {}
    for name in SEQUENCE:
        try:
            (run,) = run_notebooks(profile="smoke", out_dir=out_dir, only=[name], progress=lambda _: None,
                                   cell_timeout=CELL_TIMEOUT)
            seconds[name] = round(run.seconds, 1)
        except Exception as error:  # noqa: BLE001 - reported by the tests of that notebook
            failures[name] = f"{type(error).__name__}: {error}"
    if not threads_were_set:
        del os.environ["OMP_NUM_THREADS"]
    (out_dir / "timings.json").write_text(json.dumps({"seconds": seconds, "total": round(sum(seconds.values()), 1),
                                                      "failures": sorted(failures)}, indent=2) + "\n")
    return out_dir, failures


def results(smoke, name: str) -> dict:
    out_dir, failures = smoke
    if name in failures:
        pytest.fail(f"{name} did not execute: {failures[name][-3000:]}")
    return json.loads((out_dir / f"{name}.results.json").read_text())


@pytest.mark.notebooks
def test_every_notebook_executes_and_writes_its_results(smoke):
    out_dir, failures = smoke
    assert not failures, "\n\n".join(f"{n}: {e[-1500:]}" for n, e in failures.items())
    for name in SEQUENCE:
        assert (out_dir / f"{name}.ipynb").is_file() and (out_dir / f"{name}.results.json").is_file()
        assert results(smoke, name)["profile"] == "smoke"


@pytest.mark.notebooks
def test_the_run_renders_into_copies_to_read(smoke, tmp_path):
    out_dir, failures = smoke
    ran = [name for name in SEQUENCE if name not in failures]
    written = render(out_dir, tmp_path, allow_dirty=True)  # the suite runs from any checkout, committed or not
    assert [p.stem for p in written] == ran
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.cells[0].id == HEADER_ID and "profile `smoke`" in notebook.cells[0].source
        assert drift(json.loads(notebook_path(path.stem).read_text()), json.loads(path.read_text())) == []
        assert any(c.outputs for c in notebook.cells if c.cell_type == "code") and path.stat().st_size <= COPY_BUDGET
    assert f"**{len(ran)} of {len(SEQUENCE)}**" in (tmp_path / "README.md").read_text()


@pytest.mark.notebooks
def test_00_quickstart_runs_the_whole_path(smoke):
    r = results(smoke, "00_quickstart")
    assert not r["reused"] and r["steps_trained"] == r["recipe"]["train"]["steps"]
    assert r["generation_loss"]["last"] < r["generation_loss"]["first"] - 1.0, "LCL pre-training did not learn"
    assert r["classes"] > 10 and all(0.0 <= v <= 100.0 for v in r["top1"].values())
    assert r["margin_over_random_init"] == pytest.approx(r["top1"]["checkpoint"] - r["top1"]["random-init"])


@pytest.mark.notebooks
def test_01_data_statistics_and_token_layout(smoke):
    r = results(smoke, "01_interleaved_data")
    real = r["real_sample"]
    if real is not None:  # the shared MMC4 sample: published statistics (its README)
        assert (real["documents"], real["images"]) == (107, 417)
        assert real["images_per_document"] == pytest.approx(3.9, abs=0.05) and real["median_sentences"] == 17
        assert real["matched_sentence_share"] == pytest.approx(0.19, abs=0.01)
        assert real["share_below_threshold"] == pytest.approx(0.05, abs=0.01)
    world = r["world_stats"]
    assert world["images_per_document"] == pytest.approx(3.9, abs=0.6) and 12 <= world["median_sentences"] <= 22
    assert 0.18 <= world["matched_sim_median"] <= 0.39
    knobs = {(k["knob"], k["value"]): k for k in r["knob_effects"]}
    density = {v: knobs[("images_per_doc", v)]["images_per_document"] for v in (1.5, 6.0)}
    dropped = {v: knobs[("misalign_prob", v)]["share_below_threshold"] for v in (0.0, 0.5)}
    assert density[6.0] > 2 * density[1.5] and dropped[0.5] > dropped[0.0] + 0.1
    realism = r["realism"]  # what the text before an image says: the calibrated world moves toward real pages
    assert realism["calibrated world"]["near_before_share"] > realism["v1 world"]["near_before_share"] + 0.25
    assert realism["calibrated world"]["z_matched"] < realism["v1 world"]["z_matched"]
    if real is not None:
        assert realism["real MMC4"] == pytest.approx({k: v for k, (v, _) in REAL_SAMPLE.items()}, abs=1e-3)
    # the knob widget's pages (30, seed 0): a page about one subject puts a sentence about as close before
    # its images; with each image described on its own the share falls (the narration quotes 56 % and 36 %)
    near = r["knob_page_near_before_share"]
    assert near["calibrated"] == pytest.approx(0.56, abs=0.01) and near["one_sentence_each"] == pytest.approx(0.36, abs=0.01)
    n, layout = r["num_image_tokens"], r["layout"]
    assert layout["length"] <= r["context_length"]
    assert (layout["first"], layout["last"]) == ("<start_of_text>", "<end_of_text>")
    assert layout["soi"] == layout["eoi"] == layout["images"] >= 1 and layout["img"] == n * layout["images"]
    assert layout["contrastive_reads"] == layout["images"], "with <sot> first, every image has a context"
    # targets: every next token except <img>, <eoi> (and padding, none here)
    assert layout["generation_targets"] == layout["length"] - 1 - layout["img"] - layout["eoi"]
    cut = r["truncation"]
    assert cut["length"] <= cut["context"] and cut["last"] == "<end_of_text>" and cut["blocks_intact"]
    assert cut["images"] == (1 if layout["images"] > 1 else 0), "the cut image must be dropped"
    batch = r["reader_batch"]
    assert batch["images"][0] == sum(batch["num_images"]) and batch["num_images"] == batch["soi_per_row"]


@pytest.mark.notebooks
def test_02_model_shapes_and_identities(smoke):
    r = results(smoke, "02_model")
    config = get_preset(r["preset"])
    n, d, wv, s = config.vision.num_patches, config.embed_dim, config.vision.width, config.vision.image_size
    shapes = r["shapes"]
    assert r["num_image_tokens"] == n
    grid = config.vision.grid_size
    assert shapes["images"] == [3, 3, s, s] and shapes["grid"] == [3, wv, grid, grid]
    assert shapes["patches"] == [3, n, wv], "the CLS token must be dropped"
    assert shapes["pooled"] == [3, d] and shapes["projected"] == [3, n, d]
    assert shapes["attention"] == [3, config.vision.pool_heads, n]
    batch, length = shapes["input_ids"]
    assert batch == 2 and shapes["embeds"] == shapes["hidden"] == [2, length, d]
    assert shapes["pair_latents"] == shapes["pair_context"] == [3, d] and shapes["pair_mask"] == [3]
    assert r["num_pairs"] == 3  # no image opens its row
    positions, width = batch * (length - 1), config.bridge.width
    assert shapes["gen_features"] == [positions, width] and shapes["gen_labels"] == shapes["gen_mask"] == [positions]
    assert 0 < r["num_generation_targets"] < positions
    assert shapes["lm_head_weight"] == [49411, width]  # the notebook uses the CLIP vocabulary
    assert r["pooled_reconstruction_error"] < 1e-5 and r["projected_reconstruction_error"] < 1e-5
    assert max(r["context_change_when_second_image_changes"]) < 1e-6, "a context feature saw its own image"
    assert r["hidden_change_up_to_its_soi"] < 1e-5 < 1e-3 < r["hidden_change_after_its_soi"]
    presets = {row["preset"]: row for row in r["presets"]}
    assert presets["LCL_ViT-B-16_laion"]["tokens/image"] == 196 and presets["LCL_ViT-B-32_laion"]["tokens/image"] == 49
    assert presets["LCL_ViT-B-16_laion"]["max images/seq"] == 1 and presets["LCL_ViT-B-32_mmc4"]["max images/seq"] == 40
    assert 80e6 < presets["LCL_ViT-B-16_laion"]["vision params"] < 95e6  # ViT-B/16 (~86M) + pooler


@pytest.mark.notebooks
def test_03_objective_hand_losses_and_collapse(smoke):
    r = results(smoke, "03_objective")
    assert r["num_pairs"] == r["library_num_pairs"] == 3, "the image-first row must not give a pair"
    assert abs(r["generation_by_hand"] - r["generation_library"]) < 1e-5
    assert abs(r["contrastive_by_hand"] - r["contrastive_library"]) < 1e-5
    assert abs(r["total_library"] - (r["generation_library"] + 0.1 * r["contrastive_library"])) < 1e-5
    assert r["info_nce_bound_at_init"] <= math.log(r["num_pairs"]) and r["info_nce_bound_at_init"] < 0.5
    collapse = r["collapse"]
    assert collapse["lcl"]["probe_latent_variance"] > 1.5 * collapse["generation_regression"]["probe_latent_variance"]
    # the λ widget: generation never reaches the pool's query/key side, the contrastive term reaches every weight,
    # and at the paper's λ = 0.1 the contrastive term already gives most of the encoder's gradient
    gradient = r["encoder_gradient"]
    assert gradient["generation_unreached"] and all(name.startswith(("pool.query", "pool.norm_q", "pool.norm_k",
                                                                     "pool.q_proj", "pool.k_proj"))
                                                    for name in gradient["generation_unreached"])
    assert gradient["contrastive_unreached"] == []
    shares = [gradient["contrastive_share"][lam] for lam in ("0.0", "0.01", "0.1", "1.0")]
    assert shares[0] == 0 and shares == sorted(shares) and shares[2] > 0.5


@pytest.mark.notebooks
def test_04_pretrain_trains_live_and_logs_the_dashboard(smoke):
    r = results(smoke, "04_pretrain")
    assert not r["reused"], "04 must train (and draw live) in the smoke sequence, not reuse 00's run"
    assert r["logged_steps"][-1] == r["recipe"]["train"]["steps"] and len(r["logged_steps"]) >= 10
    first, last = r["first"], r["last"]
    assert last["generation_loss"] < first["generation_loss"] - 1.0
    for record in (first, last):
        assert record["info_nce_bound"] == pytest.approx(math.log(record["num_pairs"]) - record["contrastive_loss"])
        assert record["info_nce_bound"] <= math.log(record["num_pairs"])
        assert 0.0 <= record["contrastive_accuracy"] <= 1.0
    entropy = r["attention_entropy"]
    assert 0.0 < entropy["trained"] <= entropy["uniform"] + 1e-6 and entropy["initial"] <= entropy["uniform"] + 1e-6
    assert r["probe_diagnostics"]["trained"]["latent_variance"] > 0


@pytest.mark.notebooks
def test_05_baselines_share_data_and_regression_collapses(smoke):
    r = results(smoke, "05_baselines")
    runs = r["runs"]
    assert set(runs) == {"CLIP", "CoCa", "BLIP2", "BEiT3", "Flamingo-style", "Emu-style", "LCL"}
    assert runs["LCL"]["reused"] and runs["LCL"]["folder"] == results(smoke, "04_pretrain")["run"]
    assert {runs[k]["data_source"] for k in ("CLIP", "CoCa", "BLIP2")} == {"mmc4_pair"}
    assert {runs[k]["data_source"] for k in ("BEiT3", "Flamingo-style", "Emu-style", "LCL")} == {"mmc4"}
    assert runs["CLIP"]["last"]["generation_loss"] is None
    assert runs["Flamingo-style"]["last"]["contrastive_loss"] is None
    assert runs["Emu-style"]["last"]["regression_loss"] is not None
    assert runs["BLIP2"]["last"]["matching_loss"] is not None and runs["BLIP2"]["last"]["generation_loss"] is not None
    assert runs["BEiT3"]["last"]["masked_text_loss"] is not None and runs["BEiT3"]["last"]["masked_image_loss"] is not None
    assert runs["BEiT3"]["last"]["generation_loss"] is None and runs["BEiT3"]["last"]["contrastive_loss"] is None
    assert all(run["steps"] == r["recipe"]["train"]["steps"] for run in runs.values())
    # regressing onto its own latent drives the latents together (LCL-METHOD §6: Emu-style collapses)
    assert runs["Emu-style"]["probe"]["latent_variance"] < 0.5 * runs["LCL"]["probe"]["latent_variance"]


@pytest.mark.notebooks
def test_06_ablations_shows_the_committed_grids_and_reruns_one_point(smoke):
    r = results(smoke, "06_ablations")
    committed = repo_root() / "docs" / "results" / "ablations" / "cpu"
    assert Path(r["shown"]) == committed
    on_disk = {p.parent.name for p in committed.glob("*/results.json")}
    assert set(r["grids"]) == on_disk and {"lambda", "terms", "placement"} <= on_disk
    for name, grid in r["grids"].items():
        saved = json.loads((committed / name / "results.json").read_text())
        assert grid["verdicts"] == {c["key"]: c["verdict"] for c in saved["claims"]["claims"]}
        assert grid["seeds"] == [0, 1, 2]
    check = committed.parent / "cpu-check"  # the rerun with other seeds, shown beside the verdicts
    assert r["check"] == ({"folder": str(check), "same_verdicts": verdict_agreement(committed, check)[1]}
                          if check.is_dir() else None)
    calibrated = committed.parent / "cpu-calibrated"  # the placement and λ grids on the calibrated world
    assert r["calibrated"]["folder"] == str(calibrated)
    assert r["calibrated"]["same_verdicts_as_v1"] == verdict_agreement(committed, calibrated)[1]
    assert set(r["calibrated"]["verdicts"]) == {p.parent.name for p in calibrated.glob("*/results.json")} >= {"placement"}
    for name, verdicts in r["calibrated"]["verdicts"].items():
        saved = json.loads((calibrated / name / "results.json").read_text())
        assert verdicts == {c["key"]: c["verdict"] for c in saved["claims"]["claims"]}
    rerun = r["rerun"]
    assert rerun["point"] == "placement:p = 0.25" and rerun["profile"] == "smoke"
    assert rerun["summary"]["IN-1k"]["n"] == len(REPRODUCTION_PROFILES["smoke"].seeds)  # every smoke seed
    assert rerun["summary"]["effective rank"]["mean"] > 0


@pytest.mark.notebooks
def test_07_transfer_table_has_every_run_and_the_baselines(smoke):
    r = results(smoke, "07_transfer")
    encoders = r["encoders"]
    rows = {"CLIP", "CoCa", "BLIP2", "BEiT3", "Flamingo-style", "Emu-style", "LCL"}
    assert set(encoders) == rows | {"random-init", "raw-pixels"} and set(r["runs"]) == rows
    assert r["runs"]["LCL"] == results(smoke, "04_pretrain")["run"]  # reused, whoever trained it
    for label in r["runs"]:
        expected = {"cls/classification", "ret/coco", "ret/flickr30k", "cap/coco", "cap/nocaps",
                    "zeroshot-cls/classification"}
        assert expected <= set(encoders[label]["tasks"])
        assert 0.0 <= encoders[label]["IN-1k"] <= 100.0 and 0.0 <= encoders[label]["F30k TR@1"] <= 100.0
    assert encoders["raw-pixels"]["tasks"] == ["cls/classification"]
    schema = r["transfer"]
    assert schema["schema"] == "lcl-transfer-results/1" and schema["protocol"]["seeds"] == [0]
    assert len(r["retrieval_examples"]) == 4 and all(len(e["top3"]) == 3 for e in r["retrieval_examples"])
    assert len(r["caption_examples"]) == 6 and all(e["reference"] for e in r["caption_examples"])
    # the image picker: every run's head captioned the same 12 held-out images
    assert set(r["run_captions"]) == rows and all(len(c) == 12 for c in r["run_captions"].values())
    # the run picker lists every finished run of the shared folder: this notebook's and 04's, and 05's baselines
    assert set(r["runs"].values()) <= set(r["runs_found"].values())


@pytest.mark.notebooks
def test_every_exercise_reads_a_number_the_notebook_writes(smoke):
    for exercise in EXERCISES:
        assert isinstance(lookup(results(smoke, exercise.notebook), exercise.key), float), exercise


@pytest.mark.notebooks
def test_08_official_layout_round_trip(smoke):
    r = results(smoke, "08_scale_up")
    assert set(r["key_groups"]) == {"visual", "text", "pool_project", "lm_head", "logit_scale"}
    assert r["round_trip_equal"] and r["latent_difference"] < 1e-5
    assert r["architecture_inferred"]  # head counts from the preset whose sizes the shapes are
    cost = r["cost"]  # of the preset the notebook imports (smoke: tiny-fast), for the released model's 13B images
    config = get_preset(r["official_preset"]).with_tokenizer(ClipTokenizer())
    assert cost["preset"] == config.name and cost["parameters"] == parameter_counts(config)["total"]
    flops = training_flops(config, images=13e9, tokens=13e9 * config.bridge.context_length)
    assert cost["GFLOPs per image"] == pytest.approx(flops / 13e9 / 1e9)
    assert cost["GPU-days at sustained"] == pytest.approx(flops / (0.4 * 312e12) / 86400)


@pytest.mark.notebooks
def test_09_reproduction_reruns_the_smoke_table_and_shows_its_verdicts(smoke):
    from lcl_core.reproduce.claims import CLAIMS
    from lcl_core.reproduce.table1 import ROWS

    r = results(smoke, "09_reproduction")
    assert r["reproduction_profile"] == "smoke-calibrated" and r["seeds"] == [0, 1]
    from lcl_core.reproduce.report import verdict_agreement  # the committed cpu verdicts against the headline's

    committed = repo_root() / "docs" / "results" / "table1"
    headline = committed / "cpu-calibrated-across-shards"  # the calibrated world, read in runs across shards
    assert r["v1_world_same_verdicts"] == verdict_agreement(committed / "cpu", headline)[1]
    assert r["shard_shuffle_same_verdicts"] == verdict_agreement(committed / "cpu-calibrated-shuffled", headline)[1]
    assert set(r["verdicts"]) == {c.key for c in CLAIMS} and set(r["verdicts"].values()) <= {"holds", "fails",
                                                                                              "inconclusive"}
    assert r["rows"] == sorted(row.label for row in ROWS)


@pytest.mark.notebooks
def test_10_dialogue_reruns_the_smoke_table4_and_every_row_answers(smoke):
    from lcl_core.reproduce.table4 import BLIND, CLAIMS, COMPOSITES, ENCODERS, SETTINGS

    r = results(smoke, "10_dialogue")
    assert r["reproduction_profile"] == "smoke" and r["seeds"] == [0, 1] and r["chains"] == 10
    assert set(r["verdicts"]) == {c.key for c in CLAIMS + COMPOSITES}
    labels = {f"{row} · {setting}" for row in (*ENCODERS, "random init") for setting in SETTINGS} | {BLIND}
    assert set(r["rows"]) == labels and set(r["average"]) == labels
    assert all(0 <= value <= 100 for value in r["average"].values())
    # section 4 asked every row's seed-0 model about the held-out image
    assert set(r["asked"]["answers"]) == {*ENCODERS, "random init", BLIND}
    assert all(isinstance(answer, str) for answer in r["asked"]["answers"].values())


@pytest.mark.notebooks
def test_plain_papermill_from_the_repo_root_writes_under_the_checkout(tmp_path):
    """``papermill notebooks/03_objective.ipynb OUT -p profile smoke``, nothing else: the smoke sizes are
    used and everything lands in the checkout's runs/, its three training runs included (03: the quickest
    notebook that trains)."""
    written = repo_root() / "runs" / "notebooks" / "smoke" / "03_objective.results.json"
    written.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    completed = subprocess.run([sys.executable, "-m", "papermill", "notebooks/03_objective.ipynb",
                                str(tmp_path / "03.ipynb"), "-p", "profile", "smoke", "--no-progress-bar"],
                               cwd=repo_root(), env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    r = json.loads(written.read_text())
    assert r["profile"] == "smoke" and r["collapse_steps"] == PROFILES["smoke"]["03_objective"]["collapse_steps"]
    assert len(r["runs"]) == 3
    assert all(Path(folder).is_relative_to(repo_root() / "runs" / "notebooks" / "smoke") for folder in r["runs"].values())


# ---- nbval: cells whose output is deterministic --------------------------------------------------------
def checked_notebooks() -> list[str]:
    return [name for name in SEQUENCE
            if any(CHECK_TAG in c.metadata.get("tags", []) for c in nbformat.read(notebook_path(name), 4).cells)]


@pytest.mark.notebooks
@pytest.mark.parametrize("name", checked_notebooks())
def test_deterministic_cells_reproduce_under_nbval(smoke, name):
    """Re-execute the executed copy (same injected parameters) and compare the tagged cells' outputs."""
    results(smoke, name)
    out_dir, _ = smoke
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", f"{name}.ipynb"],
        cwd=out_dir, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
