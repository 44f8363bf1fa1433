"""Readers for ImageFolder, Karpathy JSON, COCO caption JSON and NoCaps JSON, on hand-written fixtures."""

import json

import pytest
from PIL import Image

from lcl_core.transfer.datasets import (find_eval_sets, read_coco_captions, read_image_folder, read_karpathy,
                                        read_nocaps)
from eval_fixture import write_eval_fixture


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def test_image_folder_labels_follow_sorted_class_folders(tmp_path):
    for wnid, count in (("n02", 2), ("n01", 1)):
        for i in range(count):
            _png(tmp_path / "train" / wnid / f"{i}.JPEG")
    (tmp_path / "train" / "n01" / "notes.txt").write_text("not an image")
    data = read_image_folder(tmp_path / "train")
    assert data.classes == ["n01", "n02"] and data.labels == [0, 1, 1]
    assert data.class_names == ["n01", "n02"]
    (tmp_path / "classnames.txt").write_text("tench\ngoldfish\n")
    named = read_image_folder(tmp_path / "train")
    assert named.class_names == ["tench", "goldfish"] and named.prompt_templates == ("a photo of a {}.",)
    # the offline world's classes.json: folder -> the phrase pre-training text uses, prompted verbatim
    (tmp_path / "classes.json").write_text(json.dumps({"n01": "a tench", "n02": "a goldfish"}))
    phrased = read_image_folder(tmp_path / "train")
    assert phrased.class_names == ["a tench", "a goldfish"] and phrased.prompt_templates == ("{}",)


def test_karpathy_json_resolves_filepath_and_selects_splits(tmp_path):
    images = []
    for i, (split, folder) in enumerate([("train", "train2014"), ("restval", "val2014"), ("test", "val2014")]):
        _png(tmp_path / "images" / folder / f"COCO_{i}.jpg")
        images.append({"filepath": folder, "filename": f"COCO_{i}.jpg", "imgid": i, "cocoid": 100 + i, "split": split,
                       "sentids": [i], "sentences": [{"raw": f" caption {i}. ", "tokens": ["caption", str(i)],
                                                      "imgid": i, "sentid": i}]})
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    train = read_karpathy(tmp_path / "dataset_coco.json", splits=("train", "restval"))
    assert train.name == "coco" and train.image_ids == [100, 101]
    assert train.captions == [["caption 0."], ["caption 1."]]
    assert train.paths[1] == tmp_path / "images" / "val2014" / "COCO_1.jpg"
    assert len(read_karpathy(tmp_path / "dataset_coco.json", splits=("test",))) == 1


def test_flickr_karpathy_json_without_filepath(tmp_path):
    _png(tmp_path / "1000.jpg")
    entry = {"filename": "1000.jpg", "imgid": 0, "split": "test", "sentids": [0, 1],
             "sentences": [{"raw": "A dog.", "imgid": 0, "sentid": 0}, {"raw": "A puppy.", "imgid": 0, "sentid": 1}]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps({"images": [entry], "dataset": "flickr30k"}))
    data = read_karpathy(tmp_path / "dataset_flickr30k.json", splits=("test",))
    assert data.name == "flickr30k" and data.num_captions == 2 and data.caption_owners() == [0, 0]


def test_coco_caption_json_groups_annotations_and_nocaps_keeps_domains(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _png(tmp_path / "images" / name)
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "domain": "in-domain"},
                      {"id": 9, "file_name": "b.jpg", "domain": "out-domain"},
                      {"id": 11, "file_name": "c.jpg", "domain": "near-domain"}],
           "annotations": [{"image_id": 9, "id": 1, "caption": "B one"}, {"image_id": 7, "id": 2, "caption": "A one"},
                           {"image_id": 9, "id": 3, "caption": "B two"}]}
    (tmp_path / "nocaps_val.json").write_text(json.dumps(doc))
    data = read_nocaps(tmp_path / "nocaps_val.json")
    assert data.image_ids == [7, 9]  # the image without annotations is dropped
    assert data.captions == [["A one"], ["B one", "B two"]] and data.domains == ["in-domain", "out-domain"]
    doc["images"][0].pop("domain")
    (tmp_path / "captions_val.json").write_text(json.dumps(doc))
    assert read_coco_captions(tmp_path / "captions_val.json").domains is None
    with pytest.raises(ValueError, match="domain"):
        read_nocaps(tmp_path / "captions_val.json")


def test_missing_image_is_reported(tmp_path):
    (tmp_path / "captions_val.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": [{"image_id": 1, "id": 1, "caption": "x"}]}))
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        read_coco_captions(tmp_path / "captions_val.json")


def test_find_eval_sets_on_the_fixture_root(tmp_path):
    write_eval_fixture(tmp_path / "eval", per_class_train=2, per_class_val=1, caption_train=6, caption_test=4, nocaps=3)
    sets = find_eval_sets(tmp_path)  # the world's DIR: finds DIR/eval
    assert sets.classification.name == "classification"
    assert len(sets.classification.train) == 6 and sets.classification.val.class_names == ["circle", "square", "triangle"]
    (coco,) = sets.caption_sets
    assert coco.name == "coco" and len(coco.train) == 6 and len(coco.test) == 4
    assert len(coco.caption_references) == 4  # captions_val.json, COCO caption format
    assert sets.nocaps.domains == ["in-domain", "near-domain", "out-domain"]
