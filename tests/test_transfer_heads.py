"""The transfer heads learn what the tokens carry, and beat chance on toy problems."""

import pytest
import torch

from lcl_core.tokenizer import TrainedTokenizer
from lcl_core.transfer.heads import (CachedTokens, TransferSettings, encode_captions, train_captioner,
                                     train_classifier, train_retrieval)
from lcl_core.transfer.metrics import retrieval_recall, topk_accuracy

# numerics: also run under a second CPU kernel path (test_cpu_capabilities.py)
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.numerics]


WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach"]
SETTINGS = TransferSettings(head_width=64, head_heads=4, embed_dim=32, batch_size=32, lr=3e-3,
                            cls_epochs=15, ret_epochs=30, cap_epochs=40, max_caption_tokens=8)


def toy_tokens(labels: torch.Tensor, *, num_tokens: int = 4, width: int = 16, seed: int = 0) -> torch.Tensor:
    """[n, num_tokens, width] unit noise, every token shifted by +2 on the axis of its example's label."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(len(labels), num_tokens, width, generator=g)
    tokens[torch.arange(len(labels)), :, labels] += 2.0
    return tokens


@pytest.fixture(scope="module")
def tokenizer():
    return TrainedTokenizer.train([f"a {w}" for w in WORDS] * 4, vocab_size=300)


def test_classifier_learns_a_separable_problem():
    labels = torch.arange(4).repeat(40)
    head = train_classifier(CachedTokens(toy_tokens(labels)), labels, num_classes=4, settings=SETTINGS, seed=0)
    val_labels = torch.arange(4).repeat(10)
    with torch.no_grad():
        accuracy = topk_accuracy(head(toy_tokens(val_labels, seed=1)), val_labels, ks=(1,))
    assert accuracy["top1"] >= 95.0


def test_classifier_is_reproducible_for_a_seed():
    labels = torch.arange(4).repeat(8)
    tokens = CachedTokens(toy_tokens(labels))
    quick = TransferSettings(cls_epochs=2, head_width=32)
    a = train_classifier(tokens, labels, num_classes=4, settings=quick, seed=3)
    b = train_classifier(tokens, labels, num_classes=4, settings=quick, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_retrieval_heads_beat_chance(tokenizer):
    labels = torch.arange(len(WORDS)).repeat(16)
    captions = [[f"a {WORDS[i]}"] for i in labels.tolist()]
    heads = train_retrieval(CachedTokens(toy_tokens(labels)), captions, tokenizer=tokenizer, settings=SETTINGS, seed=0)
    test_labels = torch.arange(len(WORDS))
    with torch.no_grad():
        image_emb = heads.embed_images(toy_tokens(test_labels, seed=1))
        text_emb = heads.embed_texts(*encode_captions(tokenizer, [f"a {w}" for w in WORDS], settings=SETTINGS))
    recall = retrieval_recall(image_emb @ text_emb.T, test_labels)
    chance = 100.0 / len(WORDS)
    assert recall["tr@1"] >= 4 * chance and recall["ir@1"] >= 4 * chance


def test_captioner_names_the_object_greedy_and_beam(tokenizer):
    labels = torch.arange(len(WORDS)).repeat(16)
    captions = [[f"a {WORDS[i]}"] for i in labels.tolist()]
    captioner = train_captioner(CachedTokens(toy_tokens(labels)), captions, tokenizer=tokenizer, settings=SETTINGS, seed=0)
    test_tokens = toy_tokens(torch.arange(len(WORDS)), seed=1)
    for beams in (1, 3):
        generated = captioner.generate(test_tokens, num_beams=beams, max_new_tokens=6)
        decoded = [tokenizer.decode(ids) for ids in generated]
        correct = sum(text == f"a {w}" for text, w in zip(decoded, WORDS))
        assert correct >= 4, decoded  # chance: 1 of 8
