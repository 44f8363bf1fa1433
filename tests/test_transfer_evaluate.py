"""``evaluate`` and ``lcl evaluate`` end to end on the format fixture, with a tiny LCL model."""

import json
import random

import pytest
import torch

from lcl_core.cli import main as lcl_main
from lcl_core.checkpoint import save_pretrained
from lcl_core.config import BridgeConfig, ModelConfig, VisionConfig
from lcl_core.model import LCLModel
from lcl_core.official import export_official
from lcl_core.transfer import TransferSettings, evaluate, load_results
from lcl_core.tokenizer import TrainedTokenizer
from lcl_core.transfer.datasets import find_eval_sets
from lcl_core.transfer.features import FeatureCache, ImageSet, weights_fingerprint
from eval_fixture import caption_texts, write_eval_fixture
from lcl_core.transfer.metrics import caption_scores
from lcl_core.transfer.results import TABLE1_COLUMNS

QUICK = TransferSettings(head_width=64, cls_epochs=10, ret_epochs=10, cap_epochs=40, batch_size=32, beam_size=2,
                         max_caption_tokens=12)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory):
    return write_eval_fixture(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def tokenizer():
    return TrainedTokenizer.train(caption_texts() * 4, vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer):
    config = ModelConfig(embed_dim=32, vision=VisionConfig(image_size=32, patch_size=8, width=48, layers=2, heads=4,
                                                           pool_heads=4),
                         bridge=BridgeConfig(context_length=40, width=32, heads=4, layers=2),
                         name="transfer-test").with_tokenizer(tokenizer)
    torch.manual_seed(1)
    return LCLModel(config=config)


@pytest.fixture(scope="module")
def results(model, tokenizer, eval_root):
    return evaluate(model, tokenizer, eval_root, settings=QUICK, seed=0, num_seeds=2)


def test_every_task_and_baseline_is_reported_with_split_sizes(results):
    tasks = {name: set(enc["tasks"]) for name, enc in results["encoders"].items()}
    full = {"cls/classification", "ret/coco", "cap/coco", "cap/nocaps", "zeroshot-cls/classification",
            "zeroshot-ret/coco"}
    assert tasks == {"checkpoint": full, "random-init": full, "raw-pixels": {"cls/classification"}}
    entries = results["encoders"]["checkpoint"]["tasks"]
    assert entries["cls/classification"]["splits"] == {"train": 48, "val": 24, "classes": 3}
    assert entries["ret/coco"]["splits"] == {"train_images": 48, "train_captions": 96,
                                             "test_images": 24, "test_captions": 48}
    assert entries["cap/nocaps"]["splits"]["test_near-domain"] == 4
    assert set(entries["cap/nocaps"]["metrics"]) >= {"cider", "bleu4", "cider_in-domain", "cider_out-domain"}
    assert set(entries["cap/coco"]["metrics"]) == {"bleu4", "cider", "bleu4_greedy", "cider_greedy"}
    assert entries["cls/classification"]["seeds"] == [0, 1]
    assert len(entries["cls/classification"]["metrics"]["top1"]["per_seed"]) == 2
    assert entries["zeroshot-cls/classification"]["seeds"] == []


def test_heads_beat_chance_on_the_fixture(results, eval_root):
    entries = results["encoders"]["checkpoint"]["tasks"]
    retrieval = entries["ret/coco"]["metrics"]
    # chance: TR@1 ≈ 2 captions / 48 = 4.2 %, IR@1 = 1 / 24 images = 4.2 %
    assert retrieval["tr@1"]["mean"] > 3 * 4.2 and retrieval["ir@1"]["mean"] > 2 * 4.2
    # a chance-level captioner: every test image gets a random training caption
    bench = find_eval_sets(eval_root).caption_sets[0]
    rng = random.Random(0)
    references = dict(enumerate(bench.caption_references.captions))
    chance = caption_scores(references, {i: rng.choice(rng.choice(bench.train.captions)) for i in references})
    assert entries["cap/coco"]["metrics"]["cider"]["mean"] > chance["cider"] + 20


def test_table_follows_the_paper_column_order(results):
    from lcl_core.transfer.results import format_report

    report = format_report(results)
    header = next(line for line in report.splitlines() if line.startswith("| encoder"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [c[0] for c in TABLE1_COLUMNS]
    row = next(line for line in report.splitlines() if line.startswith("| checkpoint"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells[3] == cells[4] == "—"  # no Flickr30k in the fixture
    assert all("±" in cells[i] for i in (0, 1, 2, 5, 6, 7))  # two seeds: mean±std


def test_evaluate_leaves_the_callers_model_and_random_stream_alone(model, tokenizer, eval_root):
    before = weights_fingerprint(model)
    model.train()
    rng_state = torch.random.get_rng_state()
    results = evaluate(model, tokenizer, eval_root, tasks=("cls",), baselines=(), full_transfer=True,
                       settings=TransferSettings(head_width=32, cls_epochs=1))
    assert results["protocol"]["full_transfer"] is True
    assert weights_fingerprint(model) == before and model.training
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_features_are_cached_on_disk_per_encoder(tmp_path, model, eval_root):
    images = ImageSet(paths=find_eval_sets(eval_root).classification.val.paths, image_size=32)
    calls = []

    def encode(x):
        calls.append(len(x))
        return model.patch_features(x)

    args = dict(encoder_id=weights_fingerprint(model), kind="patch_tokens", images=images, encode=encode, batch_size=16)
    first = FeatureCache(folder=tmp_path).get(**args)
    second = FeatureCache(folder=tmp_path).get(**args)  # a new run: reads the file
    assert calls == [16, 8] and torch.equal(first, second) and first.shape == (24, 16, 48)
    assert FeatureCache(folder=tmp_path).get(**(args | {"encoder_id": "sha256:other"})).shape == first.shape
    assert calls == [16, 8, 16, 8]


def test_cli_on_a_kit_folder(tmp_path, model, tokenizer, eval_root, capsys):
    save_pretrained(tmp_path / "ckpt", model, tokenizer)
    code = lcl_main(["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(eval_root),
                     "--tasks", "cls,zeroshot", "--baselines", "raw-pixels", "--epochs", "2",
                     "--out", str(tmp_path / "results.json"), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| encoder | IN-1k |" in printed.replace("  ", " ").replace("  ", " ")
    saved = load_results(tmp_path / "results.json")
    assert saved["checkpoint"]["fingerprint"] == weights_fingerprint(model)
    assert set(saved["encoders"]) == {"checkpoint", "raw-pixels"}


def test_cli_on_an_official_layout_checkpoint(tmp_path, eval_root):
    # official head width is 64, so the smallest official-shaped model has 64-wide towers
    config = ModelConfig(embed_dim=64, vision=VisionConfig(image_size=32, patch_size=8, width=64, layers=1, heads=1,
                                                           pool_heads=1),
                         bridge=BridgeConfig(context_length=32, width=64, heads=1, layers=1), name="official-tiny")
    torch.manual_seed(2)
    torch.save(export_official(LCLModel(config=config)), tmp_path / "lcl_official.pt")
    config.to_json(tmp_path / "official-tiny.json")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "lcl_official.pt"), "--data", str(eval_root),
            "--tasks", "cls,ret,zeroshot", "--baselines", "", "--epochs", "1", "--no-cache",
            "--out", str(tmp_path / "official.json")]
    assert lcl_main(argv) == 2  # sizes of no preset: head counts unknown, refused with a clear message
    assert lcl_main(argv + ["--model-config", str(tmp_path / "official-tiny.json")]) == 0
    saved = json.loads((tmp_path / "official.json").read_text())
    assert set(saved["encoders"]["checkpoint"]["tasks"]) == {"cls/classification", "ret/coco",
                                                             "zeroshot-cls/classification", "zeroshot-ret/coco"}


def test_zero_shot_search_ranks_by_cosine_in_both_directions(model, tokenizer, eval_root):
    from lcl_core.transfer.zeroshot import rank_captions, rank_images

    bench = find_eval_sets(eval_root).caption_sets[0]
    images = ImageSet(paths=bench.test.paths[:5], image_size=32).load(range(5))
    captions = [c[0] for c in bench.test.captions[:7]]
    rows = [torch.tensor([tokenizer.sot_id, *tokenizer.encode(c)[:38], tokenizer.soi_id]) for c in captions]
    with torch.no_grad():  # by hand: unnormalised towers on [<sot> caption <soi>] rows, then cosine
        texts = model.encode_text(torch.nn.utils.rnn.pad_sequence(rows, batch_first=True,
                                                                  padding_value=tokenizer.pad_id), normalize=False)
        cosine = torch.nn.functional.cosine_similarity(texts[:, None], model.encode_image(images, normalize=False)[None],
                                                       dim=-1)
    assert rank_captions(model, tokenizer, images, captions, k=3).tolist() == cosine.T.topk(3, dim=1).indices.tolist()
    assert rank_images(model, tokenizer, captions, images, k=2).tolist() == cosine.topk(2, dim=1).indices.tolist()


def test_frozen_captions_are_reproducible_and_leave_the_model_as_it_was(model, tokenizer, eval_root):
    from lcl_core.transfer.evaluate import frozen_captions

    bench = find_eval_sets(eval_root).caption_sets[0]
    model.train()
    first = frozen_captions(model, tokenizer, bench, settings=QUICK, seed=3, count=4)
    assert model.training and first == frozen_captions(model, tokenizer, bench, settings=QUICK, seed=3, count=4)
    assert len(first) == 4 and all(isinstance(text, str) for text in first)
    model.eval()
