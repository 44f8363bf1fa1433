"""Elastic resume of the streams: positions saved on N ranks continue on M ranks, and every document
is read exactly once per epoch, as in the uninterrupted run.

The world has 48 documents (a few of them broken on purpose) in 3 shards, so the layouts below cover
both ways a stream splits: by shard (consumers ≤ 3) and by record inside the shards (more consumers
than shards).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from lcl_core.data.streaming import hand_over
from lcl_core.training.data import StreamBatches
from lcl_core.training.synthetic import SyntheticBatches

from conftest import odd_config
from test_data_readers import mmc4, world  # noqa: F401  (the module's world fixture)


def rank_streams(world, ranks: int, *, batch_size: int, workers: int = 0, loop: bool = False, states=None,
                 window: int = 1):
    """Every rank's batches, as the trainer builds them, resumed from ``states`` (every rank's) if given;
    ``window``: the reader's shuffle window."""
    streams = [StreamBatches(dataset=mmc4(world, rank=rank, world_size=ranks, loop=loop, shuffle_window=window),
                             batch_size=batch_size, num_workers=workers) for rank in range(ranks)]
    for stream in streams:
        if states is not None:
            stream.resume_from(states)
    return streams


def take(streams, steps: int | None) -> list[dict]:
    """The positions of ``steps`` batches of every rank in lockstep (``None``: until every rank's stream
    ends); returns them in the order read."""
    iterators, read, running = [iter(s) for s in streams], [], set(range(len(streams)))
    while running and (steps is None or steps > 0):
        for rank in sorted(running):
            batch = next(iterators[rank], None)
            if batch is None:
                running.discard(rank)
            else:
                read += batch["positions"]
        steps = None if steps is None else steps - 1
    return read


def documents(positions) -> Counter:
    return Counter((p["file"], p["record"], p["part"]) for p in positions)


def epoch_of(world) -> Counter:
    """Each usable document of one uninterrupted epoch (the world's broken ones are skipped), once."""
    everything = documents(s["position"] for s in mmc4(world))
    assert len(everything) > 40 and set(everything.values()) == {1}
    return everything


# (ranks, workers per rank) of each sitting, and the steps of batch size 3 each sitting takes before the next
LAYOUTS = {
    "2 ranks -> 1 (by shard)": ([(2, 0), (1, 0)], [5]),
    "1 rank -> 3 (by shard)": ([(1, 0), (3, 0)], [7]),
    "2 ranks -> 4 (by shard -> by record)": ([(2, 0), (4, 0)], [4]),
    "2 ranks -> 1 -> 3 (a plan handed over again)": ([(2, 0), (1, 0), (3, 0)], [3, 4]),
    "2 ranks -> 3, two workers each (by record)": ([(2, 2), (3, 2)], [3]),
}


@pytest.mark.parametrize("window", [1, 5], ids=["file order", "windows of 5"])
@pytest.mark.parametrize("sittings, cuts", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_an_epoch_resumed_on_other_numbers_of_ranks_reads_every_document_once(world, sittings, cuts, window):
    read, states = [], None
    for (ranks, workers), steps in zip(sittings, [*cuts, None]):
        streams = rank_streams(world, ranks, batch_size=3, workers=workers, states=states, window=window)
        read += take(streams, steps)
        states = [stream.state() for stream in streams]
    assert documents(read) == epoch_of(world)  # none twice, none missing


def test_a_looping_stream_resumed_on_one_rank_reads_every_document_once_per_epoch(world):
    """Rank 0 reads two shards (30 documents), rank 1 one (14): after 7 steps rank 1 is an epoch ahead.
    The handover then finishes rank 0's epoch 0 and its share of epoch 1 and rank 1's epoch 1 before
    the one rank's own epoch 2. Each epoch holds exactly the documents of that epoch of one
    uninterrupted process (a document's sample, and whether it is usable, depends on its epoch), and
    the resumed rank reads the epochs in order."""
    streams = rank_streams(world, 2, batch_size=3, loop=True)
    before = take(streams, 7)
    assert {p["epoch"] for p in before if p["rank"] == 0} == {0}
    assert {p["epoch"] for p in before if p["rank"] == 1} == {0, 1}
    resumed = rank_streams(world, 1, batch_size=6, loop=True, states=[s.state() for s in streams])
    after = take(resumed, 30)  # 180 samples: past 4 epochs of about 44
    epochs = [p["epoch"] for p in after]
    assert epochs == sorted(epochs) and epochs[-1] >= 4
    uninterrupted = [s["position"] for s in itertools.islice(mmc4(world, loop=True), len(before) + len(after))]
    for epoch in range(4):
        assert documents(p for p in before + after if p["epoch"] == epoch) == \
            documents(p for p in uninterrupted if p["epoch"] == epoch), epoch


def test_hand_over_plans_each_old_consumers_rest_for_one_new_consumer():
    """Hand computation: 2 old consumers, one in epoch 0 after record 4 of unit 1, one in epoch 1 after
    record 0 of unit 2; on 3 new consumers: the first gets consumer 0's rest of epoch 0 and its whole
    share of epoch 1, the second consumer 1's rest of epoch 1, the third nothing; all start epoch 2."""
    positions = [{"epoch": 0, "rank": 0, "world_size": 2, "worker": 0, "num_workers": 1, "unit": 1, "record": 4,
                  "part": 0},
                 {"epoch": 1, "rank": 1, "world_size": 2, "worker": 0, "num_workers": 1, "unit": 2, "record": 0,
                  "part": 0}]
    plan = hand_over(positions, None, layout=(2, 1), ranks=3, start_epoch=0)
    assert plan == {"layout": [3, 1], "epoch": 0, "start_epoch": 2, "inherited": [
        [{"epoch": 0, "consumer": 0, "consumers": 2, "unit": 1, "record": 4, "part": 0},
         {"epoch": 1, "consumer": 0, "consumers": 2}],
        [{"epoch": 1, "consumer": 1, "consumers": 2, "unit": 2, "record": 0, "part": 0}],
        []]}
    # resumed again on 1 rank before the second consumer read anything, the first one halfway through its
    # inherited epoch-1 share: one consumer inherits both rests, epoch by epoch
    later = [{"epoch": 1, "rank": 0, "world_size": 3, "worker": 0, "num_workers": 1, "unit": 0, "record": 7,
              "part": 0, "inherited": 1}]
    again = hand_over(later, plan, layout=(3, 1), ranks=1, start_epoch=0)
    assert again == {"layout": [1, 1], "epoch": 0, "start_epoch": 2, "inherited": [[
        {"epoch": 1, "consumer": 0, "consumers": 2, "unit": 0, "record": 7, "part": 0},
        {"epoch": 1, "consumer": 1, "consumers": 2, "unit": 2, "record": 0, "part": 0}]]}
    # the first consumer ahead instead, on 1 rank: the rests in epoch order, the old consumers in order within one
    ahead = [{**positions[0], "epoch": 1}, {**positions[1], "epoch": 0}]
    assert hand_over(ahead, None, layout=(2, 1), ranks=1, start_epoch=0)["inherited"] == [[
        {"epoch": 0, "consumer": 1, "consumers": 2, "unit": 2, "record": 0, "part": 0},
        {"epoch": 1, "consumer": 0, "consumers": 2, "unit": 1, "record": 4, "part": 0},
        {"epoch": 1, "consumer": 1, "consumers": 2}]]


def test_positions_of_two_layouts_are_refused(world):
    streams = rank_streams(world, 2, batch_size=3)
    read = take(streams, 1)
    mixed = [read[0], {**read[-1], "world_size": 3}]
    with pytest.raises(ValueError, match="several layouts"):
        mmc4(world).resume_from(mixed)


def test_synthetic_batches_resumed_on_one_rank_give_the_same_global_batches():
    config = odd_config(context_length=48)
    two = [SyntheticBatches(model_config=config, batch_size=2, seed=5, rank=r, world_size=2) for r in range(2)]
    for stream in two:
        stream.resume_from([{"batch_index": 3}, {"batch_index": 3}])
    one = SyntheticBatches(model_config=config, batch_size=4, seed=5)
    one.resume_from([stream.state() for stream in two])
    halves, whole = [next(iter(s)) for s in two], next(iter(one))
    assert whole["input_ids"].tolist() == halves[0]["input_ids"].tolist() + halves[1]["input_ids"].tolist()
    with pytest.raises(ValueError, match="disagree on 'batch_index'"):
        one.resume_from([{"batch_index": 3}, {"batch_index": 4}])
