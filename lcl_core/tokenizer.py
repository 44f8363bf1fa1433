"""Tokenizers, built offline, behind one interface.

Two kinds:

* :class:`ClipTokenizer` — open_clip's CLIP BPE (49,408 entries shipped in the wheel) plus the three
  LCL tokens with the official ids: ``<img_placehold>`` 49408, ``<start_of_img>`` 49409,
  ``<end_of_img>`` 49410; ``<start_of_text>`` 49406, ``<end_of_text>`` 49407. Vocabulary 49,411.
* :class:`TrainedTokenizer` — a small BPE trained with the ``tokenizers`` library on a text corpus,
  carrying the same special tokens, saved and reloaded in Hugging Face format. With a 4k vocabulary a
  CPU training step is several times faster than with the 49k CLIP table (see ``benchmarks/``).

Padding. The official code pads with id 0, which is also the real CLIP token ``"!"``, so every ``"!"``
is silently dropped from the generation targets. This kit pads with an id that is no real token:
``49411`` for CLIP (one past the embedding table, never looked up) and a dedicated ``<pad>`` entry for
trained tokenizers. Importing official weights is unaffected; only ``"!"`` becomes a target again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

SOT, EOT = "<start_of_text>", "<end_of_text>"
IMG, SOI, EOI = "<img_placehold>", "<start_of_img>", "<end_of_img>"
PAD, UNK = "<pad>", "<unk>"
LCL_ADDED_TOKENS = (IMG, SOI, EOI)  # official order: ids 49408, 49409, 49410


class Tokenizer:
    """The interface every part of the kit uses.

    ``encode`` returns plain text ids without any special token; sequences are laid out by
    :mod:`lcl_core.sequences`. ``vocab_size`` is the number of rows the embedding table needs.
    """

    kind: str
    vocab_size: int
    pad_id: int
    sot_id: int
    eot_id: int
    img_id: int
    soi_id: int
    eoi_id: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(t) for t in texts]``; a tokenizer with a batch call overrides it (a page's sentences in one
        call instead of one each: the data feed tokenises about 20 per page)."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        raise NotImplementedError

    def save(self, folder: str | Path) -> None:
        raise NotImplementedError

    @property
    def special_ids(self) -> dict[str, int]:
        return {SOT: self.sot_id, EOT: self.eot_id, IMG: self.img_id, SOI: self.soi_id, EOI: self.eoi_id,
                PAD: self.pad_id}

    def id_to_token(self, token_id: int) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, pad_id={self.pad_id})"


class ClipTokenizer(Tokenizer):
    """CLIP BPE from open_clip with the LCL special tokens (official ids)."""

    kind = "clip"

    def __init__(self) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self._bpe = SimpleTokenizer(additional_special_tokens=list(LCL_ADDED_TOKENS))
        enc = self._bpe.encoder
        self.sot_id, self.eot_id = enc[SOT], enc[EOT]
        self.img_id, self.soi_id, self.eoi_id = enc[IMG], enc[SOI], enc[EOI]
        self.vocab_size = len(enc)
        self.pad_id = self.vocab_size  # not a real token: see the module docstring

    def encode(self, text: str) -> list[int]:
        return self._bpe.encode(text)

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        special = set(self.special_ids.values())
        ids = [int(i) for i in ids if not (skip_special and int(i) in special) and int(i) != self.pad_id]
        return self._bpe.decode(ids).strip()

    def id_to_token(self, token_id: int) -> str:
        return PAD if token_id == self.pad_id else self._bpe.decoder[int(token_id)]

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lcl_tokenizer.json").write_text(json.dumps({"kind": "clip"}) + "\n")


class TrainedTokenizer(Tokenizer):
    """A byte-level BPE trained on a corpus (lower-cased, GPT-2 style ``Ġ`` word starts).

    Byte-level with the full 256-byte initial alphabet makes training deterministic: the same corpus
    gives the same ids in every process (a character-level alphabet is ordered by hash-map iteration).
    """

    kind = "trained"

    def __init__(self, hf_tokenizer) -> None:
        self._hf = hf_tokenizer
        ids = {t: hf_tokenizer.convert_tokens_to_ids(t) for t in (SOT, EOT, IMG, SOI, EOI, PAD)}
        missing = [t for t, i in ids.items() if i is None or i == hf_tokenizer.unk_token_id]
        if missing:
            raise ValueError(f"tokenizer lacks the LCL special tokens {missing}")
        self.sot_id, self.eot_id, self.img_id = ids[SOT], ids[EOT], ids[IMG]
        self.soi_id, self.eoi_id, self.pad_id = ids[SOI], ids[EOI], ids[PAD]
        self.vocab_size = len(hf_tokenizer)

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int = 4096, min_frequency: int = 2) -> "TrainedTokenizer":
        """Fit on ``texts``. The 256 bytes and 7 special tokens come first, so merges start above 263."""
        from tokenizers import Tokenizer as RawTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        raw = RawTokenizer(models.BPE(unk_token=UNK))
        raw.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        raw.decoder = decoders.ByteLevel()
        specials = [PAD, UNK, SOT, EOT, IMG, SOI, EOI]
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        raw.train_from_iterator(texts, trainer=trainer)
        hf = PreTrainedTokenizerFast(
            tokenizer_object=raw, pad_token=PAD, unk_token=UNK, bos_token=SOT, eos_token=EOT,
            additional_special_tokens=list(LCL_ADDED_TOKENS),
        )
        return cls(hf)

    @classmethod
    def load(cls, folder: str | Path) -> "TrainedTokenizer":
        from transformers import PreTrainedTokenizerFast

        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"no tokenizer.json in {folder}")
        return cls(PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True))

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(text, add_special_tokens=False)

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        # the Rust tokenizer's own batch call: what ``encode`` does per text, without transformers' Python per call
        return [e.ids for e in self._hf.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        return self._hf.decode([int(i) for i in ids], skip_special_tokens=skip_special).strip()

    def id_to_token(self, token_id: int) -> str:
        return self._hf.convert_ids_to_tokens(int(token_id))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._hf.save_pretrained(str(folder))
        (folder / "lcl_tokenizer.json").write_text(json.dumps({"kind": "trained"}) + "\n")


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """``"clip"`` or a folder written by :meth:`Tokenizer.save`."""
    if str(spec) == "clip":
        return ClipTokenizer()
    folder = Path(spec)
    marker = folder / "lcl_tokenizer.json"
    if not marker.is_file():
        raise FileNotFoundError(f"{folder} holds no saved LCL tokenizer (expected {marker.name})")
    kind = json.loads(marker.read_text())["kind"]
    return ClipTokenizer() if kind == "clip" else TrainedTokenizer.load(folder)
