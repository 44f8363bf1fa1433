"""The results schema: round trip, validation, and the paper-order table."""

import pytest

from lcl_core.transfer.results import (MISSING, add_encoder, format_report, format_table, load_results, new_results,
                                       save_results, task_entry, validate_results)


def _results():
    results = new_results(checkpoint={"source": "ckpt", "fingerprint": "sha256:abc"},
                          protocol={"full_transfer": False, "seeds": [0, 1]}, data={"root": "eval"})
    tasks = add_encoder(results, "checkpoint", description="under test", fingerprint="sha256:abc")
    tasks["cls/imagenet"] = task_entry(task="cls", dataset="imagenet", seeds=[0, 1], splits={"train": 10, "val": 5},
                                       per_seed=[{"top1": 50.0, "top5": 90.0}, {"top1": 60.0, "top5": 100.0}])
    tasks["cap/nocaps"] = task_entry(task="cap", dataset="nocaps", seeds=[0, 1], splits={"test_images": 3},
                                     per_seed=[{"cider": 10.0, "cider_in-domain": 12.0}] * 2)
    tasks["zeroshot-cls/imagenet"] = task_entry(task="zeroshot-cls", dataset="imagenet", seeds=[], splits={"val": 5},
                                                per_seed=[{"top1": 40.0}])
    return results


def test_task_entry_derives_mean_and_std():
    entry = _results()["encoders"]["checkpoint"]["tasks"]["cls/imagenet"]
    assert entry["metrics"]["top1"] == {"mean": 55.0, "std": pytest.approx(7.0710678), "per_seed": [50.0, 60.0]}


def test_round_trip(tmp_path):
    results = _results()
    save_results(results, tmp_path / "r.json")
    assert load_results(tmp_path / "r.json") == results


@pytest.mark.parametrize("break_it, message", [
    (lambda r: r.update(schema="other"), "schema"),
    (lambda r: r["encoders"]["checkpoint"]["tasks"]["cls/imagenet"].update(splits={}), "split sizes"),
    (lambda r: r["encoders"]["checkpoint"]["tasks"]["cls/imagenet"]["metrics"]["top1"]["per_seed"].pop(), "values"),
    (lambda r: r["encoders"]["checkpoint"]["tasks"].update({"cls/x": r["encoders"]["checkpoint"]["tasks"]["cls/imagenet"]}), "key"),
])
def test_validation_names_the_problem(break_it, message):
    results = _results()
    break_it(results)
    with pytest.raises(ValueError, match=message):
        validate_results(results)


def test_table_fills_known_columns_and_dashes_the_rest():
    table = format_table(_results())
    row = table.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["checkpoint", "55.0±7.1"]
    assert cells[2:8] == [MISSING] * 6 and cells[8] == "10.0±0.0"
    report = format_report(_results())
    assert "zero-shot" in report and "40.0" in report and "cls/imagenet: train 10, val 5" in report
    assert "in-domain 12.0" in report
