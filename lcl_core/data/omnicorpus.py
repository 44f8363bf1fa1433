"""OmniCorpus-CC reader: the OBELICS page layout (:class:`~.obelics.ObelicsDataset`) plus the corpus's own
quality and safety scores as filters.

Schema, from the dataset card of ``OpenGVLab/OmniCorpus-CC`` (``dataset_info.features`` of its README, the
same for every ``CC-MAIN-*`` config; files ``CC-MAIN-YYYY-WW/train-0000k-of-000n.parquet``)::

    general_metadata  struct  domain: list<string>, fluency_prob: float64, id: string,
                              non_advertisement_prob: float64, politics_prob: float64, porn_prob: float64,
                              toxic_prob: float64, url: string
    images            list<string>   image URLs, null where the page has text
    texts             list<string>   text pieces, null where the page has an image
    metadata          list<struct>   aesthetic_prob: float64, bytes: int64, d_hash: string,
                                     d_hash_dup_count: int64, height: int64, img_url_sha: string,
                                     p_hash: string, p_hash_dup_count: int64, unsafe_prob: float64, width: int64

Not confirmed by the card: whether ``metadata`` has one entry per position of ``images`` (null at text
positions) or one per image in page order. Both are read: a list as long as ``images`` is taken position by
position, one as long as the non-null images in image order; any other length is the counted skip
``metadata_misaligned`` (when an image filter needs it). The card gives no thresholds for these scores, so
every filter is off unless set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .obelics import ObelicsDataset


@dataclass(frozen=True)
class OmniCorpusFilters:
    """Thresholds on OmniCorpus-CC's scores (None: no filter; the card documents no defaults). A document
    below a ``min_`` or above a ``max_`` is the skip ``<field>_filtered`` (e.g. ``toxic_prob_filtered``), an
    image likewise (``unsafe_prob_filtered``, ``aesthetic_prob_filtered``); a score the row lacks while its
    filter is on is ``<field>_missing``."""

    min_fluency: float | None = None  # general_metadata.fluency_prob
    min_non_advertisement: float | None = None  # general_metadata.non_advertisement_prob
    max_toxic: float | None = None  # general_metadata.toxic_prob
    max_porn: float | None = None  # general_metadata.porn_prob
    max_politics: float | None = None  # general_metadata.politics_prob
    max_unsafe: float | None = None  # metadata[i].unsafe_prob, per image
    min_aesthetic: float | None = None  # metadata[i].aesthetic_prob, per image

    def __post_init__(self) -> None:
        outside = [f.name for f in fields(self) if getattr(self, f.name) is not None
                   and not 0.0 <= getattr(self, f.name) <= 1.0]
        if outside:
            raise ValueError(f"OmniCorpus filters are probabilities in [0, 1]: {', '.join(outside)}")


DOCUMENT_SCORES = {"min_fluency": "fluency_prob", "min_non_advertisement": "non_advertisement_prob",
                   "max_toxic": "toxic_prob", "max_porn": "porn_prob", "max_politics": "politics_prob"}
IMAGE_SCORES = {"max_unsafe": "unsafe_prob", "min_aesthetic": "aesthetic_prob"}


def score_skip(scores: dict | None, filters: OmniCorpusFilters, names: dict[str, str]) -> str | None:
    """The first filter of ``names`` (filter -> score field) that ``scores`` fail, as a skip reason."""
    for option, field in names.items():
        threshold = getattr(filters, option)
        if threshold is None:
            continue
        value = (scores or {}).get(field)
        if value is None:
            return f"{field}_missing"
        if (value < threshold) if option.startswith("min_") else (value > threshold):
            return f"{field}_filtered"
    return None


class OmniCorpusDataset(ObelicsDataset):
    columns = ("texts", "images", "general_metadata", "metadata")

    def __init__(self, paths, tokenizer, *, filters: OmniCorpusFilters = OmniCorpusFilters(), **options) -> None:
        super().__init__(paths, tokenizer, **options)
        self.filters = filters
        self._image_filters_on = any(getattr(filters, option) is not None for option in IMAGE_SCORES)

    def _document_skip(self, row: dict) -> str | None:
        return score_skip(row.get("general_metadata"), self.filters, DOCUMENT_SCORES)

    def _image_skip(self, row: dict, position: int) -> str | None:
        if not self._image_filters_on:
            return None
        images, metadata = row["images"], row.get("metadata") or []
        if len(metadata) == len(images):
            scores = metadata[position]
        elif len(metadata) == sum(entry is not None for entry in images):
            scores = metadata[sum(entry is not None for entry in images[:position])]
        else:
            return "metadata_misaligned"
        return score_skip(scores, self.filters, IMAGE_SCORES)


def add_filter_flags(parser) -> None:
    """``--min-fluency``, ``--max-toxic``, … ``--max-unsafe``: one flag per :class:`OmniCorpusFilters` field."""
    group = parser.add_argument_group("OmniCorpus-CC filters (default: off; the dataset card sets no thresholds)")
    for option in fields(OmniCorpusFilters):
        group.add_argument(f"--{option.name.replace('_', '-')}", type=float, default=None,
                           help=f"drop {'images' if option.name in IMAGE_SCORES else 'documents'} whose "
                                f"{(IMAGE_SCORES | DOCUMENT_SCORES)[option.name]} is "
                                f"{'below' if option.name.startswith('min_') else 'above'} this")


def filters_from_arguments(args) -> dict | None:
    """The filter flags given, as :class:`OmniCorpusFilters` fields (None: none given)."""
    given = {option.name: getattr(args, option.name) for option in fields(OmniCorpusFilters)
             if getattr(args, option.name) is not None}
    return given or None
