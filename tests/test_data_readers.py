"""Streaming readers on generated shards: rules, layouts, collate, sharding and exact resume."""

import itertools
import json
import random
import zipfile
from collections import Counter
from math import comb

import pyarrow.parquet as pq
import pytest
import torch

from lcl_core.data import (MMC4Dataset, ObelicsDataset, PairedDataset, collate, keep_latest, make_loader,
                           select_images)
from lcl_core.data.mmc4 import interleave
from lcl_core.data.paired import tar_samples
from lcl_core.training import TrainConfig
from lcl_core.tokenizer import TrainedTokenizer
from lcl_core.data.world import build_world
from test_data_world import SMALL_EVAL, tiny_world

N_TOKENS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    tiny_world(folder, docs=48)
    tok = TrainedTokenizer.train((folder / "corpus.txt").read_text().splitlines(), vocab_size=400)
    return folder, tok


def mmc4(world, **options):
    folder, tok = world
    options = {"image_size": 16, "num_image_tokens": N_TOKENS, "context_length": 256, "seed": 3} | options
    return MMC4Dataset(folder / "mmc4", tok, **options)


def soi_count(ids, tok):
    return sum(t == tok.soi_id for t in ids)


def test_select_images_applies_threshold_sort_dedup_and_cap():
    info = [{"image_name": n, "matched_text_index": i, "matched_sim": s} for n, i, s in
            [("a", 5, 0.30), ("b", 1, 0.23), ("c", 2, 0.25), ("d", 2, 0.40), ("e", 0, 0.24),
             ("f", 7, 0.3), ("g", 8, 0.3), ("h", 9, 0.3), ("i", 10, 0.3)]]
    picks = {tuple(select_images(info, sim_threshold=0.24, max_images=6, rng=random.Random(s))) for s in range(20)}
    assert picks == {((0, "e"), (2, "c"), (5, "a"), (7, "f"), (8, "g"), (9, "h")),
                     ((0, "e"), (2, "d"), (5, "a"), (7, "f"), (8, "g"), (9, "h"))}
    kept = select_images(info, sim_threshold=0.24, max_images=10, rng=random.Random(0), one_per_sentence=False)
    assert [i for i, _ in kept] == [0, 2, 2, 5, 7, 8, 9, 10] and [n for _, n in kept][1:3] == ["c", "d"]


def test_placement_before_or_after_the_matched_sentence():
    sentences = ["s0", "s1", "s2"]
    assert interleave(sentences, [0, 2], random.Random(0), img_first_prob=1.0) == [0, "s0", "s1", 1, "s2"]
    assert interleave(sentences, [0, 2], random.Random(0), img_first_prob=0.0) == ["s0", 0, "s1", "s2", 1]


def test_mmc4_samples_match_their_documents(world):
    folder, tok = world
    samples = list(mmc4(world, context_length=2048))
    docs = {(p.name, i): json.loads(line) for p in (folder / "mmc4").glob("*.zip")
            for i, line in enumerate(zipfile.ZipFile(p).read(p.name[:-4]).splitlines())}
    assert 0 < len(samples) <= len(docs)
    for sample in samples:
        ids, images = sample["ids"], sample["images"]
        assert images.shape[1:] == (3, 16, 16) and images.dtype == torch.float32
        assert soi_count(ids, tok) == len(images) and 1 <= len(images) <= 6
        assert ids[0] == tok.sot_id and ids[-1] == tok.eot_id
        doc = docs[sample["position"]["file"], sample["position"]["record"]]
        expected = len({i["matched_text_index"] for i in doc["image_info"] if i["matched_sim"] >= 0.24})
        assert len(images) == min(6, expected)


def test_truncation_repair_ends_at_the_cut_images_soi(world):
    _, tok = world
    for sample in mmc4(world, context_length=40):
        ids = sample["ids"]
        assert len(ids) <= 40 and ids[-1] == tok.eot_id
        assert soi_count(ids, tok) == len(sample["images"]) >= 1
        assert sum(t == tok.img_id for t in ids) == N_TOKENS * len(sample["images"])


def test_same_seed_same_stream_and_epochs_differ(world):
    first = [s["ids"] for s in mmc4(world)]
    assert first == [s["ids"] for s in mmc4(world)]
    other = mmc4(world)
    other.set_epoch(1)
    assert [s["ids"] for s in other] != first


def test_obelics_keeps_page_order(world):
    folder, tok = world
    data = ObelicsDataset(folder / "obelics", tok, image_size=16, num_image_tokens=N_TOKENS, context_length=2048)
    samples = list(data)
    assert len(samples) == 48 and not data.skips
    rows = {(p.name, i): row for p in (folder / "obelics").glob("*.parquet")
            for i, row in enumerate(pq.read_table(p).to_pylist())}
    for sample in samples:
        row = rows[sample["position"]["file"], sample["position"]["record"]]
        expected = []
        for text, image in zip(row["texts"], row["images"]):
            expected += tok.encode(text) if text else [tok.soi_id] + [tok.img_id] * N_TOKENS + [tok.eoi_id]
        cut = min(6, sum(i is not None for i in row["images"]))
        assert soi_count(sample["ids"], tok) == len(sample["images"]) == cut
        if cut == sum(i is not None for i in row["images"]):
            assert sample["ids"] == [tok.sot_id] + expected + [tok.eot_id]


@pytest.mark.parametrize("layout", ["image_first", "text_first", "both", "contrastive", "sampled"])
def test_paired_layouts(world, layout):
    folder, tok = world
    data = PairedDataset(folder / "pairs", tok, image_size=16, num_image_tokens=N_TOKENS, context_length=32,
                         layout=layout, seed=1)
    samples = list(data)
    assert len(samples) == (40 if layout == "both" else 20)
    block = [tok.soi_id] + [tok.img_id] * N_TOKENS + [tok.eoi_id]
    firsts = [s["ids"][: len(block)] == block for s in samples]
    for sample in samples:
        assert sample["images"].shape == (1, 3, 16, 16) and soi_count(sample["ids"], tok) == 1
    if layout == "image_first":
        assert all(firsts) and all(s["ids"][-1] == tok.eot_id for s in samples)
    elif layout == "text_first":
        assert not any(firsts) and all(s["ids"][0] == tok.sot_id and s["ids"][-len(block):] == block for s in samples)
    elif layout == "both":
        assert firsts == [True, False] * 20
        assert samples[0]["images"].data_ptr() != samples[1]["images"].data_ptr()
        assert [s["position"]["part"] for s in samples[:2]] == [0, 1]
    elif layout == "contrastive":
        assert all(s["ids"][0] == tok.sot_id and s["ids"][-1] == tok.soi_id and tok.img_id not in s["ids"]
                   for s in samples)
    else:
        assert 0 < sum(firsts) < 20


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_sampled_layout_follows_img_first_prob(world, prob):
    folder, tok = world
    data = PairedDataset(folder / "pairs", tok, image_size=16, num_image_tokens=N_TOKENS, context_length=32,
                         layout="sampled", img_first_prob=prob, seed=1)
    assert {s["ids"][0] == tok.soi_id for s in data} == {prob == 1.0}


def test_collate_concatenates_images_and_pads(world):
    _, tok = world
    samples = list(itertools.islice(mmc4(world), 5))
    batch = collate(samples, pad_id=tok.pad_id)
    assert batch["num_images"].tolist() == [len(s["images"]) for s in samples]
    assert batch["images"].shape[0] == batch["num_images"].sum()
    assert torch.equal(batch["images"][: len(samples[0]["images"])], samples[0]["images"])
    assert batch["input_ids"].shape == (5, max(len(s["ids"]) for s in samples))
    for row, sample in zip(batch["input_ids"], samples):
        assert row[: len(sample["ids"])].tolist() == sample["ids"]
        assert (row[len(sample["ids"]):] == tok.pad_id).all()
    assert (batch["input_ids"] == tok.soi_id).sum(1).tolist() == batch["num_images"].tolist()


def test_a_shuffle_window_reads_runs_of_records_across_shards_in_drawn_orders(world):
    """Windows of 5 records: the shards' records in file order, shard after shard in the epoch's order, cut
    into runs of 5, each read in an order drawn from the seed, the epoch and its first record. A run that
    reaches a shard's end goes on into the next shard, as a sample buffer does. Window 1 is file order."""
    folder, _ = world
    lines = {p.name: len(zipfile.ZipFile(p).read(p.name[:-4]).splitlines()) for p in (folder / "mmc4").glob("*.zip")}

    def read_order(**options):
        """[(file, record, window)] of each record read, once (a document may give several rows)."""
        order = []
        for sample in mmc4(world, **options):
            p = sample["position"]
            if not order or order[-1][:2] != (p["file"], p["record"]):
                order.append((p["file"], p["record"], tuple(p["window"])))
        return order

    in_file_order = read_order()
    shards = list(dict.fromkeys(name for name, _, _ in in_file_order))
    stream = [(name, i) for name in shards for i in range(lines[name])]  # every record, broken ones too
    readable = {(name, i) for name, i, _ in in_file_order}
    assert [(name, i) for name, i, _ in in_file_order] == [r for r in stream if r in readable]
    runs = [stream[k:k + 5] for k in range(0, len(stream), 5)]
    assert any(len({name for name, _ in run}) == 2 for run in runs)  # 16-record shards: runs cross them

    shuffled = read_order(shuffle_window=5)
    by_window: dict[tuple, list] = {}  # in the order the windows were first read
    for name, i, window in shuffled:
        by_window.setdefault(window, []).append((name, i))
    read_runs = [run for run in runs if any(r in readable for r in run)]
    assert [sorted(group, key=stream.index) for group in by_window.values()] == \
        [[r for r in run if r in readable] for run in read_runs]  # each run's records together, run after run
    unit = {name: index for index, name in enumerate(sorted(lines))}  # units are the sorted files
    for (first_unit, first, place), run in zip(by_window, read_runs):  # the run's first record, its place
        assert (first_unit, first, place) == (unit[run[0][0]], run[0][1], 5 * runs.index(run))
    assert [r[:2] for r in shuffled] != [r[:2] for r in in_file_order]
    assert shuffled == read_order(shuffle_window=5)  # a function of the seed ...
    assert shuffled != read_order(shuffle_window=5, seed=4)
    other_epoch = mmc4(world, shuffle_window=5)
    other_epoch.set_epoch(1)  # ... and of the epoch
    assert [s["position"]["record"] for s in other_epoch] != [s["position"]["record"] for s in mmc4(world, shuffle_window=5)]
    with pytest.raises(ValueError, match="shuffle_window must be at least 1"):
        mmc4(world, shuffle_window=0)


def test_the_trainers_pair_batches_mix_the_pages_of_many_shards(world, tmp_path):
    """MMC4-Pair shards hold a page's pairs side by side. Read in file order a batch is a few pages; read in
    runs of one shard (what a shuffle within each shard gives) it is the pages of one shard; read as the
    trainer reads them (runs of 5,000 records across shards, the official buffer's size) it is as many
    pages as pairs drawn from the whole set at random. The shards here hold 16 pairs, so the gap is wide."""
    _, tok = world
    folder = tmp_path / "world"
    build_world(folder, docs=40, seed=0, pairs=20, eval_sizes=SMALL_EVAL, docs_per_shard=16, pairs_per_shard=16)
    pages, shards = {}, {}
    for tar in (folder / "mmc4_pair").glob("*.tar"):
        for index, sample in enumerate(tar_samples(tar, max_member_bytes=1 << 20)):
            pages[tar.name, index] = json.loads(sample["json"])["url"]
            shards.setdefault(tar.name, Counter())[pages[tar.name, index]] += 1

    def pages_per_batch(window):
        data = PairedDataset(folder / "mmc4_pair", tok, image_size=16, num_image_tokens=N_TOKENS, context_length=32,
                             layout="contrastive", seed=1, shuffle_window=window)
        groups = [[pages[p["file"], p["record"]] for p in b["positions"]] for b in make_loader(data, batch_size=8)]
        return sum(len(set(g)) for g in groups[:-1]) / len(groups[:-1])  # the last batch may be short

    def expected_pages(pairs_per_page: Counter) -> float:
        """Distinct pages among 8 pairs drawn without replacement: Σ_page P(the page is drawn at least once)."""
        n = sum(pairs_per_page.values())
        return sum(1 - comb(n - k, 8) / comb(n, 8) for k in pairs_per_page.values())

    assert set(map(sum, map(Counter.values, shards.values()))) == {16} and len(set(pages.values())) < len(pages) / 3
    whole_set = expected_pages(Counter(pages.values()))  # 7.4 here
    one_shard = sum(map(expected_pages, shards.values())) / len(shards)  # 4.3
    assert pages_per_batch(1) <= 3.5
    assert abs(pages_per_batch(16) - one_shard) < 0.6  # 17 full batches: the mean's s.e. is about 0.2
    assert abs(pages_per_batch(TrainConfig().shuffle_window) - whole_set) < 0.6


def keys(samples):
    return [(s["position"]["file"], s["position"]["record"]) for s in samples]


@pytest.mark.parametrize("window", [1, 5], ids=["file order", "shuffled in windows of 5"])
def test_ranks_and_workers_split_the_documents(world, window):
    everything = sorted(keys(mmc4(world, shuffle_window=window)))
    ranks = [keys(mmc4(world, rank=r, world_size=2, shuffle_window=window)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1]) and sorted(ranks[0] + ranks[1]) == everything
    per_rank = []  # 3 shards < 2 ranks × 2 workers: now split by place in each shard's read order
    for rank in range(2):
        data = mmc4(world, rank=rank, world_size=2, shuffle_window=window)
        loaded = [p for b in make_loader(data, batch_size=4, num_workers=2) for p in b["positions"]]
        assert {p["worker"] for p in loaded} == {0, 1}
        if window == 1:  # in file order a record's place is its index
            assert all(p["record"] % 4 == rank + 2 * p["worker"] for p in loaded)
        per_rank.append({(p["file"], p["record"]) for p in loaded})
    assert not per_rank[0] & per_rank[1] and sorted(per_rank[0] | per_rank[1]) == everything


def batches(loader, count=None):
    return [(b["input_ids"], b["images"], b["positions"]) for b in itertools.islice(loader, count)]


@pytest.mark.parametrize("window", [1, 5], ids=["file order", "shuffled in windows of 5"])
@pytest.mark.parametrize("loop", [False, True])
def test_resume_continues_the_uninterrupted_stream(world, loop, window):
    """Interrupt after K batches (odd K: the next batch belongs to worker 1), resume, compare. In windows
    of 5 the cut falls inside a window, which the resumed stream must draw again and read past."""
    total = 12 if loop else None  # with loop=True the stream crosses into epoch 1
    options = dict(loop=loop, context_length=96, shuffle_window=window)
    full = batches(make_loader(mmc4(world, **options), batch_size=3, num_workers=2), total)
    k = 5
    assert len(full) > k + 1, "the world must give more batches than the interruption point"
    state: list[dict] = []
    for _, _, positions in full[:k]:
        state = keep_latest(state + positions)
    assert len(state) == 2
    resumed_data = mmc4(world, **options)
    resumed_data.resume_from(state)
    rest = batches(make_loader(resumed_data, batch_size=3, num_workers=2), None if total is None else total - k)
    assert len(rest) == len(full) - k
    for (ids_a, img_a, pos_a), (ids_b, img_b, pos_b) in zip(full[k:], rest):
        assert torch.equal(ids_a, ids_b) and torch.equal(img_a, img_b)
        assert [(p["epoch"], p["file"], p["record"]) for p in pos_a] == [(p["epoch"], p["file"], p["record"]) for p in pos_b]
    if loop:
        assert len({p["epoch"] for _, _, ps in rest for p in ps}) > 1  # the resumed stream crossed an epoch


def test_resume_inside_a_window_that_began_in_the_previous_shard(world):
    """The cursor's run started in another shard than the cursor's record: the resumed stream goes back to
    that shard, draws the run again and continues right after the cursor. A position saved by a reader
    without windows across shards cannot be continued exactly, and says so."""
    full = list(mmc4(world, shuffle_window=5))
    crossing = [k for k, s in enumerate(full) if s["position"]["window"][0] != s["position"]["unit"]]
    assert crossing, "16-record shards and runs of 5: some runs cross a shard's end"
    for k in crossing[:3]:
        data = mmc4(world, shuffle_window=5)
        data.resume_from([s["position"] for s in full[:k + 1]])
        rest = list(data)
        assert [s["position"] for s in rest] == [s["position"] for s in full[k + 1:]]
        assert all(a["ids"] == b["ids"] for a, b in zip(rest, full[k + 1:]))
    old = mmc4(world, shuffle_window=5)
    old.resume_from([{key: value for key, value in full[3]["position"].items() if key != "window"}])
    with pytest.raises(ValueError, match="has no 'window'"):
        next(iter(old))


def test_resume_in_process_and_a_worker_count_mismatch(world):
    full = list(mmc4(world))
    data = mmc4(world)
    data.resume_from([s["position"] for s in full[:7]])
    assert [s["ids"] for s in data] == [s["ids"] for s in full[7:]]
    two_workers = [p for b in itertools.islice(make_loader(mmc4(world), batch_size=3, num_workers=2), 2)
                   for p in b["positions"]]
    wrong = mmc4(world)
    wrong.resume_from(two_workers)
    with pytest.raises(ValueError, match="2 workers per rank, this loader has 1"):
        next(iter(wrong))
