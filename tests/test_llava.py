"""The tiny LLaVA-1.5 pieces (lcl_core/llava.py, lcl_core/sequences.py) on odd sizes: the answer-only loss mask by hand, the
penultimate-layer tokens against the ViT run block by block, the image splice and greedy answers (the loss at the labels: tests/test_training_dialogue.py)."""

from __future__ import annotations

import pytest
import torch

from lcl_core.config import get_preset
from lcl_core.model import LCLModel
from lcl_core.tokenizer import TrainedTokenizer
from lcl_core.llava import TinyLLaVA, left_pad, penultimate_patch_tokens
from lcl_core.sequences import IGNORE_INDEX, dialogue_row


@pytest.fixture(scope="module")
def tokenizer():
    return TrainedTokenizer.train(["USER: What colour is the star? ASSISTANT: red. Is it small? yes"] * 20,
                                  vocab_size=300)


CONVERSATION = [{"from": "human", "value": "<image>\nWhat colour is the star?"}, {"from": "gpt", "value": "red"},
                {"from": "human", "value": "Is it small?"}, {"from": "gpt", "value": "yes"}]


def test_dialogue_row_labels_only_the_answers_and_their_eot(tokenizer):
    row = dialogue_row(tokenizer, CONVERSATION, image_tokens=5, max_tokens=200)
    enc = tokenizer.encode
    expected = ([tokenizer.sot_id] + enc(" USER:") + [tokenizer.img_id] * 5 + enc("\nWhat colour is the star? ASSISTANT:")
                + enc(" red") + [tokenizer.eot_id] + enc(" USER: Is it small?") + enc(" ASSISTANT:")
                + enc(" yes") + [tokenizer.eot_id])
    assert row.ids == expected
    labelled = [i for i, label in zip(row.ids, row.labels) if label != IGNORE_INDEX]
    assert labelled == enc(" red") + [tokenizer.eot_id] + enc(" yes") + [tokenizer.eot_id]
    assert all(label in (IGNORE_INDEX, i) for i, label in zip(row.ids, row.labels))
    assert dialogue_row(tokenizer, CONVERSATION, image_tokens=5, max_tokens=12).ids == expected[:12]
    with pytest.raises(ValueError, match="image block"):
        dialogue_row(tokenizer, CONVERSATION, image_tokens=5, max_tokens=4)
    with pytest.raises(ValueError, match="'human' or 'gpt'"):
        dialogue_row(tokenizer, [{"from": "system", "value": "hi"}], image_tokens=5, max_tokens=20)


def test_penultimate_tokens_equal_the_vit_run_block_by_block():
    config = get_preset("tiny-fast")
    config.vision.width, config.vision.layers, config.vision.heads, config.vision.image_size = 36, 3, 3, 30
    config.vision.patch_size = 6
    vision = LCLModel(config=config).vision.eval()
    images = torch.randn(2, 3, 30, 30)
    vit = vision.vit
    with torch.no_grad():
        x = vit.conv1(images).flatten(2).transpose(1, 2)  # [M, 25, 36]
        x = torch.cat([vit.class_embedding.expand(2, 1, -1), x], dim=1) + vit.positional_embedding
        x = vit.ln_pre(x)
        for block in vit.transformer.resblocks[:-1]:
            x = block(x)
        got = penultimate_patch_tokens(vision, images)
    assert got.shape == (2, 25, 36)
    torch.testing.assert_close(got, x[:, 1:], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, vision.patch_features(images))  # not the last layer's tokens


def _model(tokenizer, token_width=10):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=3, num_key_value_heads=3, max_position_embeddings=64), attn_implementation="eager")
    return TinyLLaVA(token_width=token_width, lm=lm, image_id=tokenizer.img_id)


def test_image_tokens_are_spliced_at_the_placeholders_in_order(tokenizer):
    model = _model(tokenizer)
    ids = torch.tensor([[tokenizer.sot_id, tokenizer.img_id, tokenizer.img_id, 7],
                        [tokenizer.sot_id, 8, tokenizer.img_id, tokenizer.img_id]])
    image_tokens = torch.randn(2, 2, 10)
    embeds = model.embed(ids, image_tokens)
    projected = model.projector(image_tokens)
    torch.testing.assert_close(embeds[0, 1:3], projected[0])
    torch.testing.assert_close(embeds[1, 2:4], projected[1])
    torch.testing.assert_close(embeds[1, 1], model.lm.get_input_embeddings().weight[8])
    with pytest.raises(ValueError, match="placeholders"):
        model.embed(ids, image_tokens[:1])
    with pytest.raises(ValueError, match="no image tokens"):
        model.embed(ids, None)


def test_greedy_answers_of_left_padded_prompts_match_one_at_a_time(tokenizer):
    model = _model(tokenizer).eval()
    prompts = [[tokenizer.sot_id, tokenizer.img_id, tokenizer.img_id, 9, 10], [tokenizer.sot_id, 11]]
    batch = model.answer(left_pad(prompts), torch.randn(1, 2, 10), eot_id=tokenizer.eot_id,
                         max_new_tokens=4)
    assert len(batch) == 2 and all(len(a) <= 4 and tokenizer.eot_id not in a for a in batch)
    alone = model.answer(left_pad(prompts[1:]), None, eot_id=tokenizer.eot_id, max_new_tokens=4)
    assert alone[0] == batch[1]
