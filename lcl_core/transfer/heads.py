"""The transfer heads of the paper's appendix, sized for a CPU, and the loop that trains them.

* classification: attention pooling + linear;
* retrieval: attention pooling + linear on the image side, against a small text transformer trained
  from scratch on the retrieval training captions (symmetric InfoNCE);
* captioning: a LLaVA-1.5-style two-layer MLP projector from vision tokens into a small causal LM
  (Llama architecture from ``transformers``, random init) fed through ``inputs_embeds``.

Every head reads vision tokens from a *token source*: a callable ``indices -> [b, N, Dv]``. Frozen
transfer uses :class:`CachedTokens` over pre-computed features; full transfer uses
:class:`EncoderTokens`, an ``nn.Module`` whose encoder is trained along with the head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..sequences import IGNORE_INDEX, pad_rows
from ..tokenizer import Tokenizer
from .features import ImageSet



@dataclass(kw_only=True)
class TransferSettings:
    """Head sizes and schedules (tiny on purpose: seconds per head on two CPU cores)."""

    head_width: int = 128
    head_heads: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    encoder_lr_scale: float = 0.1  # full transfer: encoder learning rate relative to the head's
    cls_epochs: int = 40
    ret_epochs: int = 40
    cap_epochs: int = 40
    embed_dim: int = 128  # retrieval embedding
    text_layers: int = 2
    max_caption_tokens: int = 24
    lm_layers: int = 2
    beam_size: int = 3
    feature_batch_size: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


# ---- token sources --------------------------------------------------------------------------------
class CachedTokens:
    """Frozen transfer: rows of a pre-computed ``[n, N, Dv]`` feature tensor."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __call__(self, indices: torch.Tensor) -> torch.Tensor:
        return self.features[indices]


class EncoderTokens(nn.Module):
    """Full transfer: decode the images and run the (trainable) encoder on every batch."""

    def __init__(self, *, encoder: nn.Module, images: ImageSet) -> None:
        super().__init__()
        self.encoder = encoder
        self.images = images

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [b] -> patch tokens [b, N, Dv]."""
        return self.encoder.patch_features(self.images.load(indices))


TokenSource = Callable[[torch.Tensor], torch.Tensor]


def fit(head: nn.Module, batch_loss: Callable[[torch.Tensor], torch.Tensor], *, num_examples: int,
        epochs: int, settings: TransferSettings, seed: int, tokens: TokenSource) -> None:
    """AdamW with a cosine schedule over shuffled minibatches of example indices.

    ``batch_loss(indices) -> scalar``. When ``tokens`` is a module (full transfer) its parameters are
    trained too, at ``encoder_lr_scale`` times the head's learning rate.
    """
    groups = [{"params": [p for p in head.parameters() if p.requires_grad], "lr": settings.lr}]
    if isinstance(tokens, nn.Module):
        tokens.train()
        groups.append({"params": [p for p in tokens.parameters() if p.requires_grad],
                       "lr": settings.lr * settings.encoder_lr_scale})
    optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-num_examples // settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch))
    order = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        for batch in torch.randperm(num_examples, generator=order).split(settings.batch_size):
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            schedule.step()
    head.eval()
    if isinstance(tokens, nn.Module):
        tokens.eval()


def _token_shape(tokens: TokenSource) -> tuple[int, int]:
    """(N, Dv) of the tokens a source yields per image."""
    with torch.no_grad():
        return tuple(tokens(torch.tensor([0])).shape[1:])


# ---- modules --------------------------------------------------------------------------------------
class AttentionPool(nn.Module):
    """One learned query attends over the vision tokens: the attentive probe of every head here."""

    def __init__(self, *, token_width: int, width: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(token_width)
        self.query = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        self.attn = nn.MultiheadAttention(width, heads, kdim=token_width, vdim=token_width, batch_first=True)
        self.out_norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, Dv] -> pooled [B, width]."""
        keys = self.norm(tokens)
        pooled, _ = self.attn(self.query.expand(len(tokens), -1, -1), keys, keys, need_weights=False)
        return self.out_norm(pooled[:, 0])


class AttentiveClassifier(nn.Module):
    def __init__(self, *, token_width: int, num_classes: int, width: int, heads: int) -> None:
        super().__init__()
        self.pool = AttentionPool(token_width=token_width, width=width, heads=heads)
        self.linear = nn.Linear(width, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, Dv] -> logits [B, num_classes]."""
        return self.linear(self.pool(tokens))


class TextEncoder(nn.Module):
    """A small bidirectional transformer over caption tokens, mean-pooled (the retrieval text side)."""

    def __init__(self, *, vocab_size: int, context_length: int, width: int, heads: int, layers: int,
                 embed_dim: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """ids [B, T], valid [B, T] bool -> text embeddings [B, embed_dim] (not normalised)."""
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        x = self.norm(self.transformer(x, src_key_padding_mask=~valid))
        mean = (x * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return self.proj(mean)


class RetrievalHeads(nn.Module):
    def __init__(self, *, token_width: int, vocab_size: int, settings: TransferSettings) -> None:
        super().__init__()
        s = settings
        self.image_pool = AttentionPool(token_width=token_width, width=s.head_width, heads=s.head_heads)
        self.image_proj = nn.Linear(s.head_width, s.embed_dim)
        self.text = TextEncoder(vocab_size=vocab_size, context_length=s.max_caption_tokens, width=s.head_width,
                                heads=s.head_heads, layers=s.text_layers, embed_dim=s.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), CLIP's initial temperature

    def embed_images(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, Dv] -> unit image embeddings [B, embed_dim]."""
        return F.normalize(self.image_proj(self.image_pool(tokens)), dim=-1)

    def embed_texts(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """ids [B, T], valid [B, T] -> unit text embeddings [B, embed_dim]."""
        return F.normalize(self.text(ids, valid), dim=-1)

    def loss(self, tokens: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over a batch of matching (image, caption) rows."""
        logits = self.logit_scale.clamp(max=4.6052).exp() * self.embed_images(tokens) @ self.embed_texts(ids, valid).T
        target = torch.arange(len(logits))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class Captioner(nn.Module):
    """MLP projector + causal LM; the caption follows ``[projected tokens] <sot>`` and ends at ``<eot>``."""

    def __init__(self, *, token_width: int, num_tokens: int, vocab_size: int, bos_id: int, eos_id: int,
                 settings: TransferSettings) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, LlamaConfig

        width = settings.head_width
        self.bos_id, self.eos_id = bos_id, eos_id
        self.projector = nn.Sequential(nn.LayerNorm(token_width), nn.Linear(token_width, width), nn.GELU(),
                                       nn.Linear(width, width))
        config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=width, intermediate_size=4 * width,
            num_hidden_layers=settings.lm_layers, num_attention_heads=settings.head_heads,
            num_key_value_heads=settings.head_heads,
            max_position_embeddings=num_tokens + settings.max_caption_tokens + 2,
            bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id, tie_word_embeddings=True,
        )
        self.lm = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")

    def prefix(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, Dv] -> LM input embeddings [B, N + 1, W] (projected tokens, then <sot>)."""
        bos = self.lm.get_input_embeddings()(torch.full((len(tokens), 1), self.bos_id))
        return torch.cat([self.projector(tokens), bos], dim=1)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, Dv], targets [B, T] caption ids ending in <eot>, right-padded with IGNORE_INDEX."""
        prefix = self.prefix(tokens)
        valid = targets != IGNORE_INDEX
        caption = self.lm.get_input_embeddings()(targets.masked_fill(~valid, self.eos_id))
        mask = torch.cat([torch.ones(prefix.shape[:2], dtype=torch.long), valid.long()], dim=1)
        labels = torch.cat([torch.full(prefix.shape[:2], IGNORE_INDEX), targets], dim=1)
        return self.lm(inputs_embeds=torch.cat([prefix, caption], 1), attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, *, num_beams: int, max_new_tokens: int) -> list[list[int]]:
        """tokens [B, N, Dv] -> caption ids per image (greedy when ``num_beams == 1``), cut at <eot>."""
        prefix = self.prefix(tokens)
        out = self.lm.generate(
            inputs_embeds=prefix, attention_mask=torch.ones(prefix.shape[:2], dtype=torch.long),
            max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
            eos_token_id=self.eos_id, pad_token_id=self.eos_id,
        )
        captions = []
        for row in out.tolist():
            captions.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return captions


# ---- training entry points ------------------------------------------------------------------------
def caption_token_rows(tokenizer: Tokenizer, captions: Sequence[str], *, max_tokens: int) -> list[list[int]]:
    return [tokenizer.encode(c)[:max_tokens] for c in captions]


def train_classifier(tokens: TokenSource, labels: torch.Tensor, *, num_classes: int, settings: TransferSettings,
                     seed: int) -> AttentiveClassifier:
    torch.manual_seed(seed)
    head = AttentiveClassifier(token_width=_token_shape(tokens)[1], num_classes=num_classes,
                               width=settings.head_width, heads=settings.head_heads)
    fit(head, lambda idx: F.cross_entropy(head(tokens(idx)), labels[idx]), num_examples=len(labels),
        epochs=settings.cls_epochs, settings=settings, seed=seed, tokens=tokens)
    return head


def _sample_one_caption(captions: Sequence[Sequence[str]], indices: torch.Tensor,
                        generator: torch.Generator) -> list[str]:
    """Each epoch sees every image once, with one of its captions drawn at random."""
    return [captions[i][int(torch.randint(len(captions[i]), (1,), generator=generator))] for i in indices.tolist()]


def train_retrieval(tokens: TokenSource, captions: Sequence[Sequence[str]], *, tokenizer: Tokenizer,
                    settings: TransferSettings, seed: int) -> RetrievalHeads:
    torch.manual_seed(seed)
    heads = RetrievalHeads(token_width=_token_shape(tokens)[1], vocab_size=tokenizer.vocab_size, settings=settings)
    draw = torch.Generator().manual_seed(seed + 1)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        ids, valid = encode_captions(tokenizer, _sample_one_caption(captions, idx, draw), settings=settings)
        return heads.loss(tokens(idx), ids, valid)

    fit(heads, batch_loss, num_examples=len(captions), epochs=settings.ret_epochs, settings=settings, seed=seed,
        tokens=tokens)
    return heads


def encode_captions(tokenizer: Tokenizer, captions: Sequence[str], *, settings: TransferSettings):
    """-> ids [B, T] (padding 0, masked), valid [B, T] bool, for :class:`TextEncoder`."""
    rows = caption_token_rows(tokenizer, captions, max_tokens=settings.max_caption_tokens)
    rows = [r or [tokenizer.eot_id] for r in rows]  # an empty caption still needs one token to pool
    ids = pad_rows(rows, pad_id=-1)
    return ids.clamp(min=0), ids >= 0


def train_captioner(tokens: TokenSource, captions: Sequence[Sequence[str]], *, tokenizer: Tokenizer,
                    settings: TransferSettings, seed: int) -> Captioner:
    torch.manual_seed(seed)
    num_tokens, token_width = _token_shape(tokens)
    captioner = Captioner(token_width=token_width, num_tokens=num_tokens, vocab_size=tokenizer.vocab_size,
                          bos_id=tokenizer.sot_id, eos_id=tokenizer.eot_id, settings=settings)
    draw = torch.Generator().manual_seed(seed + 1)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        rows = caption_token_rows(tokenizer, _sample_one_caption(captions, idx, draw),
                                  max_tokens=settings.max_caption_tokens)
        targets = pad_rows([r + [tokenizer.eot_id] for r in rows], pad_id=IGNORE_INDEX)
        return captioner.loss(tokens(idx), targets)

    fit(captioner, batch_loss, num_examples=len(captions), epochs=settings.cap_epochs, settings=settings,
        seed=seed, tokens=tokens)
    return captioner
