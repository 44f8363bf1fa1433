"""Transfer metrics against hand-computed values and pycocoevalcap's own scorers."""

import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from lcl_core.transfer.metrics import caption_scores, retrieval_recall, tokenize_caption, topk_accuracy


def test_recall_at_k_on_a_hand_made_similarity_matrix():
    # 3 images, 4 captions; captions 0 and 1 belong to image 0, caption 2 to image 1, caption 3 to image 2
    similarity = torch.tensor([
        [0.9, 0.1, 0.8, 0.2],  # image 0: own caption 0 ranks first            -> TR rank 0
        [0.7, 0.3, 0.5, 0.6],  # image 1: own caption 2 behind 0.7 and 0.6     -> TR rank 2
        [0.1, 0.2, 0.3, 0.4],  # image 2: own caption 3 ranks first            -> TR rank 0
    ])
    owners = torch.tensor([0, 0, 1, 2])
    # IR ranks per caption column: c0 [.9 .7 .1] -> 0; c1 [.1 .3 .2] -> 2; c2 [.8 .5 .3] -> 1; c3 [.2 .6 .4] -> 1
    got = retrieval_recall(similarity, owners, ks=(1, 2, 3))
    assert got == pytest.approx({"tr@1": 200 / 3, "tr@2": 200 / 3, "tr@3": 100.0,
                                 "ir@1": 25.0, "ir@2": 75.0, "ir@3": 100.0})


def test_topk_accuracy():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])  # top-1 hit, second choice, last choice
    assert topk_accuracy(logits, labels, ks=(1, 2, 5)) == pytest.approx({"top1": 100 / 3, "top2": 200 / 3, "top5": 100.0})


def test_pure_python_tokenizer_matches_ptb_conventions():
    assert tokenize_caption("A dog's toy, don't you think? It's red-ish.") == "a dog 's toy do n't you think it 's red-ish"


def test_bleu4_hand_checked_and_equal_to_pycocoevalcap():
    refs, cand = {"a": ["the cat sat on the mat"]}, {"a": "The cat sat on a mat."}
    # matches: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3; equal lengths, so no brevity penalty
    hand = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    got = caption_scores(refs, cand)
    assert got["bleu4"] == pytest.approx(hand, abs=1e-4)
    bleu, _ = Bleu(4).compute_score({"a": ["the cat sat on the mat"]}, {"a": ["the cat sat on a mat"]}, verbose=0)
    assert got["bleu4"] == pytest.approx(100 * bleu[3], rel=1e-12)


def test_cider_hand_checked_and_equal_to_pycocoevalcap():
    # Two images with disjoint words: a candidate equal to its only reference has cosine 1 for every
    # n, no length penalty, so CIDEr-D = 10 per image (its x10 scale) -> 1000 %.
    refs = {1: ["a red square on black"], 2: ["two green circles near water"]}
    exact = {1: "A red square on black.", 2: "two green circles near water"}
    assert caption_scores(refs, exact)["cider"] == pytest.approx(1000.0, abs=1e-6)

    refs = {1: ["a red square on a black floor", "red block on black"],
            2: ["two green circles near the water", "green rings by a lake"],
            3: ["a yellow triangle", "a small yellow triangle on grey"]}
    preds = {1: "a red block on the floor", 2: "green circles near a lake", 3: "a yellow square"}
    gts = {k: [tokenize_caption(r) for r in v] for k, v in refs.items()}
    res = {k: [tokenize_caption(v)] for k, v in preds.items()}
    cider, _ = Cider().compute_score(gts, res)
    got = caption_scores(refs, preds)
    assert got["cider"] == pytest.approx(100 * cider, rel=1e-12)
    assert got["cider"] == pytest.approx(227.4956, abs=1e-3)  # pinned from pycocoevalcap 1.2


def test_caption_scores_need_the_same_images():
    with pytest.raises(ValueError):
        caption_scores({1: ["a"]}, {2: "a"})
