"""Data: the offline world, and streaming readers for the formats real data comes in.

World folder (``lcl data world --out DIR --docs N --tier basic|real --seed S``, :func:`build_world`, or
:func:`ensure_world` / :func:`cached_world`, which reuse a world built with the same settings)::

    DIR/world.json                      manifest: format, seed, tier, image_size, knobs, counts, classes, paths,
                                        settings (every build argument) and content_sha256 (the run identity's)
    DIR/corpus.txt                      every document's text, one document per line (train a tokenizer on it)
    DIR/mmc4/docs_shard_{i}_v2.jsonl.zip  MMC4 records: url, text_list, image_info, similarity_matrix
    DIR/mmc4/images/                    the documents' images (PNG, image_size px)
    DIR/mmc4/alignment.jsonl            true alignment per document: image -> true sentence, scene, noise flags
    DIR/obelics/obelics-{i}.parquet     the same pages in OBELICS form (image entries: ../mmc4/images/NAME)
    DIR/pairs/{i}.tar + sizes.json      LAION-style pairs: key.png, key.txt, key.json
    DIR/mmc4_pair/{i}.tar + sizes.json  MMC4-Pair: each image with matched_sim >= 0.24 and its matched sentence
    DIR/eval/classification/{train,val}/<class>/*.png  ImageFolder of held-out instances (+ classes.json:
                                        class -> the phrase pre-training text uses)
    DIR/eval/captions/images/ + dataset_coco.json (Karpathy) + captions_val.json (COCO captions, val+test)
    DIR/eval/flickr30k/images/ + dataset_flickr30k.json  a second Karpathy retrieval set (other held-out instances)
    DIR/eval/nocaps/images/ + nocaps_val.json (COCO captions with "domain": in-/near-/out-domain per image)

Real data's images: ``lcl data fetch-images SOURCE… --out DIR`` (:mod:`.fetch`, img2dataset in an
environment of its own) puts MMC4's at ``DIR/<shard stem>/<image_name>`` and those named by URL (OBELICS,
OmniCorpus-CC, MINT-1T HTML) at ``DIR/`` :func:`~.streaming.url_image_name`; readers take ``image_root=DIR``.

Readers (torch ``IterableDataset``): :class:`MMC4Dataset`, :class:`ObelicsDataset`, :class:`OmniCorpusDataset`
(+ ``filters=OmniCorpusFilters(...)``), :class:`MintHtmlDataset`, :class:`MintPdfDataset` (MINT-1T PDF/ArXiv
tars), :class:`ConversationDataset` (LLaVA-format conversations and text as JSON lines, for the tiny
LLaVA-1.5 of :mod:`lcl_core.llava`; its samples also carry ``labels``), :class:`PairedDataset` ``(paths, tokenizer, *, image_size, num_image_tokens, context_length, seed,
loop=False, shuffle=True, shuffle_window=1, rank=None, world_size=None, limits=ReadLimits(), ...rule knobs)``
(``shuffle_window``: records read in a shuffled order within runs of that many, across shard
boundaries; 1: file order). ``paths``:
files, folders or globs; ``limits`` bounds what an untrusted file may ask for (pixels before decoding,
bytes of a JSON line, tar member or parquet row, items of a document's lists; each a counted skip). Each sample is ``{"images": FloatTensor[k,3,H,W], "ids": list[int], "position": dict}``, the
``k`` images in the order of the row's ``<soi>`` tokens.

``position`` = ``{"epoch", "rank", "world_size", "worker", "num_workers", "unit", "file", "record",
"part", "window"}`` (+ ``"skipped": {reason: n}`` for skips since the previous sample of that worker, and
``"inherited": i`` for a sample of the worker's i-th handed-over share after an elastic resume).

Batches (:func:`collate` / :func:`make_loader`): ``{"images": FloatTensor[M,3,H,W]`` (all images,
row-major ``<soi>`` order), ``"input_ids": LongTensor[B,L]`` (right-padded with ``pad_id``),
``"num_images": LongTensor[B]``, ``"positions": list[dict]``, ``"skips": dict}``.

Sharding: rank/world size from the arguments, else ``torch.distributed`` when initialised (read when
the reader is built); workers from ``get_worker_info()``. Resume: the stream is a function of
(seed, epoch, rank, world size, number of workers). Record the consumed batches' positions (keep
them small with ``keep_latest(state + batch["positions"])``); ``dataset.resume_from(state)`` continues
exactly after them; ``set_epoch(e)`` starts another epoch; ``loop=True`` iterates epochs forever.
Elastic: ``dataset.resume_from(every rank's positions, plan=saved dataset.plan)`` on another number of
ranks hands the unread records of the epochs begun over to the new ranks (each record still once per
epoch; :func:`lcl_core.data.streaming.hand_over`); save ``dataset.plan`` with the positions from then on.

Bad input never stops an epoch: it is counted in ``dataset.skips`` (a Counter; reasons such as
``corrupt_image``, ``missing_image``, ``broken_json_line``, ``non_utf8_line``, ``no_usable_image``,
``no_image_above_threshold``, ``odd_image_size``, ``unreadable_file``, ``duplicate_member``; repairs
``converted_image_mode``, ``zip_member_renamed``), summarised in ``dataset.last_epoch_summary`` and the log at the end of each
epoch. A consumer that gets no sample at all from its files raises :class:`NothingReadable` naming them.
"""

from .collate import StreamLoader, collate, make_loader
from .conversations import ConversationDataset
from .mint import MintHtmlDataset, MintPdfDataset
from .mmc4 import MMC4Dataset, select_images
from .obelics import ObelicsDataset
from .omnicorpus import OmniCorpusDataset, OmniCorpusFilters
from .paired import LAYOUTS, PairedDataset
from .streaming import NothingReadable, ReadLimits, Skip, keep_latest

_GENERATOR = {"EvalSizes", "WORLD_PRESETS", "WorldKnobs", "build_world", "cached_world", "ensure_world"}


def __getattr__(name):
    """The generator (scipy, scikit-learn, scikit-image) is imported only when used, not by the readers."""
    if name in _GENERATOR:
        from . import world
        return getattr(world, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConversationDataset", "EvalSizes", "LAYOUTS", "WORLD_PRESETS", "MMC4Dataset", "MintHtmlDataset", "MintPdfDataset",
           "NothingReadable", "ObelicsDataset", "OmniCorpusDataset", "OmniCorpusFilters", "PairedDataset", "ReadLimits",
           "Skip", "StreamLoader", "WorldKnobs", "build_world", "cached_world", "collate", "ensure_world", "keep_latest",
           "make_loader", "select_images"]
