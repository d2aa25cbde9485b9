"""Dataset formats: COCO, Pascal VOC and YOLO parse into the same records and give the same batches."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.writers import Item, noise_item, write_coco, write_voc, write_yolo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centernet.data import (
    CenterNetDataModule,
    DatasetError,
    Problems,
    parse_coco,
    parse_voc,
    parse_yolo,
    read_yolo_yaml,
    validate_source,
)
from centernet.training.cli import CenterNetCLI

NAMES = ["cat", "dog", "bird"]


def _items() -> list[Item]:
    return [
        noise_item("a", 64, 96, [(4, 5, 30, 40), (50, 10, 96, 64), (-8, 20, 10, 30)], [0, 2, 1], seed=1),
        noise_item("b", 80, 64, [(10, 10, 20, 70.5)], [1], seed=2),
        noise_item("c", 64, 64, [], [], seed=3),  # a negative image
        noise_item("d", 48, 64, [(1, 1, 63, 47), (30, 2, 40, 12), (5, 30, 25, 40)], [2, 2, 0], seed=4),
    ]


def _datamodule(kind: str, root: Path, **kwargs) -> CenterNetDataModule:
    items = _items()
    common = {"image_size": 64, "batch_size": 2, "num_workers": 0, **kwargs}
    if kind == "yolo":
        path = write_yolo(root / "yolo", {"train": items, "val": items}, NAMES)
        return CenterNetDataModule(dataset="yolo", yolo_data=str(path), **common)
    if kind == "voc":
        images, xml = write_voc(root / "voc", items, NAMES)
        paths = {"train_images": str(images), "train_annotations": str(xml)}
        return CenterNetDataModule(
            dataset="voc", voc_classes=NAMES, val_images=str(images), val_annotations=str(xml), **paths, **common
        )
    images, json_path = write_coco(root / "coco", items, NAMES)
    paths = {"train_images": str(images), "train_annotations": str(json_path)}
    return CenterNetDataModule(
        dataset="coco", val_images=str(images), val_annotations=str(json_path), **paths, **common
    )


def _assert_same_batches(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for key in ("image", "labels", "mask", "image_id", "orig_size", "scale"):
            assert torch.equal(a[key], b[key]), key
        torch.testing.assert_close(a["bboxes"], b["bboxes"], atol=1e-6, rtol=0)
        for x, y in zip(a["gt_boxes"], b["gt_boxes"], strict=True):
            torch.testing.assert_close(x, y, atol=1e-4, rtol=0)


def test_voc_yolo_and_coco_copies_of_a_dataset_give_identical_batches(tmp_path):
    modules = {kind: _datamodule(kind, tmp_path) for kind in ("voc", "yolo", "coco")}
    assert modules["voc"].category_ids == [1, 2, 3] and modules["yolo"].category_ids == [0, 1, 2]
    batches = {}
    for kind, dm in modules.items():
        assert dm.class_names == NAMES
        dm.setup("fit")  # the box of "a" that sticks out is clipped, nothing is dropped
        assert dm.problems["train"].clipped == 1 and dm.problems["train"].dropped == []
        torch.manual_seed(0)
        train = list(dm.train_dataloader())  # same seed: same shuffle and same augmentations
        batches[kind] = (train, list(dm.val_dataloader()))
    for kind in ("yolo", "coco"):
        _assert_same_batches(batches["voc"][0], batches[kind][0])
        _assert_same_batches(batches["voc"][1], batches[kind][1])
    assert sum(int(b["mask"].sum()) for b in batches["voc"][1]) == 7  # every box, the clipped one included


def test_class_names_and_ids_travel_with_the_checkpoint(tmp_path):
    """YOLO names with gaps in the indices: the category ids are the YOLO indices, linked into the model."""
    items = [noise_item("a", 64, 64, [(4, 4, 30, 30)], [1])]
    path = write_yolo(tmp_path, {"train": items, "val": items}, ["cat", "dog"])
    data = yaml.safe_load(path.read_text())
    data["names"] = {0: "cat", 5: "dog"}
    for split in ("train", "val"):
        (tmp_path / "labels" / split / "a.txt").write_text("5 0.25 0.25 0.4 0.4\n")
    path.write_text(yaml.safe_dump(data))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {"default_root_dir": str(tmp_path / "runs"), "logger": False},
                "model": {"neck": {"name": "lateral", "channels": [32, 32, 32]}, "head": {"channels": 32}},
                "data": {
                    "dataset": "yolo",
                    "yolo_data": str(path),
                    "image_size": 64,
                    "num_workers": 0,
                    "augmentations": [{"name": "HorizontalFlip", "p": 0.5}, {"name": "RandomBrightnessContrast"}],
                },
            }
        )
    )
    cli = CenterNetCLI(args=["--config", str(config)], run=False)
    assert cli.model.hparams.class_names == ["cat", "dog"] and cli.model.hparams.category_ids == [0, 5]
    assert cli.model.hparams.num_classes == 2
    cli.datamodule.setup("fit")
    sample = cli.datamodule.train_dataset[0]
    assert sample["labels"].tolist() == [1] and sample["image"].shape == (3, 64, 64)


# --- YOLO and VOC specifics -------------------------------------------------------------------------------------


def test_yolo_layouts_polygons_and_negatives(tmp_path):
    items = [noise_item(n, 32, 64, seed=i) for i, n in enumerate("abc")]
    path = write_yolo(tmp_path, {"train": items}, NAMES)
    (tmp_path / "labels" / "train" / "a.txt").write_text("2 0.5 0.5 0.25 0.5\n\n0 0.25 0.25 0.5 0.25 0.5 0.75\n")
    (tmp_path / "labels" / "train" / "b.txt").unlink()  # no label file: an image without objects
    (tmp_path / "list.txt").write_text("images/train/a.png\nimages/train/b.png\n")
    data = yaml.safe_load(path.read_text())
    data.update(val="list.txt", names=list(NAMES))
    path.write_text(yaml.safe_dump(data))
    yolo = read_yolo_yaml(path)
    source, problems = validate_source(parse_yolo(yolo, "train", Problems()))
    assert problems.errors == [] and [r.path.name for r in source.records] == ["a.png", "b.png", "c.png"]
    a = source.records[0]
    np.testing.assert_allclose(a.boxes, [[24, 8, 40, 24], [16, 8, 32, 24]])  # the polygon's bounding box
    assert a.labels.tolist() == [2, 0] and a.refs == ["line 1", "line 3"]
    assert len(source.records[1]) == 0
    val = parse_yolo(yolo, "val", Problems())
    assert [r.path.name for r in val.records] == ["a.png", "b.png"]

    (tmp_path / "labels" / "train" / "zz.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # label file without an image
    (tmp_path / "labels" / "train" / "c.txt").write_text("0 0.5 0.5 0.1\n1 x 0.5 0.1 0.1\n1.5 0.5 0.5 0.1 0.1\n")
    problems = Problems()
    parse_yolo(yolo, "train", problems)
    assert len(problems.errors) == 4
    assert any("zz.txt: label file without an image" in e for e in problems.errors)
    assert any(e.startswith(f"{tmp_path / 'labels/train/c.txt'}:1: expected") for e in problems.errors)
    assert any(e.startswith(f"{tmp_path / 'labels/train/c.txt'}:2: expected numbers") for e in problems.errors)
    assert any(e.startswith(f"{tmp_path / 'labels/train/c.txt'}:3: class 1.5 is not in") for e in problems.errors)
    for bad, message in (([], "names"), ({"x": 1}, "names"), ({0: "a", -1: "b"}, "class index")):
        data["names"] = bad
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ValueError, match=message):
            read_yolo_yaml(path)


def test_voc_classes_discovered_or_given(tmp_path):
    items = [noise_item("x", 32, 32, [(1, 1, 9, 9)], [1]), noise_item("y", 32, 32, [(2, 2, 8, 8)], [2])]
    images, xml = write_voc(tmp_path, items, ["zebra", "ant", "moth"])
    dm = CenterNetDataModule(dataset="voc", train_images=str(images), train_annotations=str(xml), image_size=32)
    assert dm.class_names == ["ant", "moth"] and dm.category_ids == [1, 2]  # sorted names found in the XML
    image_set = tmp_path / "ImageSets" / "Main" / "train.txt"  # the VOC layout: ids, XML in Annotations/
    image_set.parent.mkdir(parents=True)
    image_set.write_text("y\n")
    listed = parse_voc(images, image_set, ["ant", "moth"], Problems())
    assert [r.path.name for r in listed.records] == ["y.png"] and listed.records[0].labels.tolist() == [1]
    image_set.write_text("y\nnope\n")
    with pytest.raises(FileNotFoundError, match="train.txt lists 1 image.*nope.xml"):
        parse_voc(images, image_set, ["ant"], Problems())
    problems = Problems()
    parse_voc(images, xml, ["ant"], problems)
    assert problems.errors == [f"{xml / 'y.xml'}: object 0 has class name 'moth', not one of ['ant']"]
    # No <filename>: the image with the XML's stem; <size> of 0 is taken from the decoded image.
    text = (xml / "x.xml").read_text().replace("<filename>x.png</filename>", "")
    (xml / "x.xml").write_text(text.replace("<width>32</width>", "<width>0</width>"))
    (xml / "y.xml").write_text("<annotation><object><name>ant")
    problems = Problems()
    source = parse_voc(images, xml, ["ant", "moth"], problems)
    assert len(problems.errors) == 1 and "y.xml: not valid XML" in problems.errors[0]
    assert source.records[0].path == images / "x.png" and source.records[0].width is None


# --- property-based: random annotations give exactly the specified outcome ------------------------------------

_WIDTH, _HEIGHT = 64, 32  # powers of two: YOLO's relative coordinates are exact
_coordinate = st.one_of(st.integers(-24, 88).map(float), st.sampled_from([math.nan, math.inf, -math.inf]))
_box = st.tuples(_coordinate, _coordinate, _coordinate, _coordinate)
_annotations = st.lists(st.tuples(_box, st.integers(0, len(NAMES))), max_size=8)  # label == len(NAMES): unknown


def _expected(annotations):
    """The policy as a reference: (kept boxes clipped, their labels, clipped count, dropped indices)."""
    kept, labels, clipped, dropped = [], [], 0, []
    for i, (box, label) in enumerate(annotations):
        x1, y1, x2, y2 = box
        if not all(math.isfinite(v) for v in box):
            dropped.append(i)
            continue
        c = (min(max(x1, 0), _WIDTH), min(max(y1, 0), _HEIGHT), min(max(x2, 0), _WIDTH), min(max(y2, 0), _HEIGHT))
        if c[2] <= c[0] or c[3] <= c[1]:
            dropped.append(i)
            continue
        clipped += c != tuple(box)
        kept.append(c)
        labels.append(label)
    return kept, labels, clipped, dropped


def _parse(kind: str, root: Path, annotations) -> tuple:
    item = noise_item("img", _HEIGHT, _WIDTH, [b for b, _ in annotations], [label for _, label in annotations])
    problems = Problems()
    names = NAMES + ["unknown"]  # writers need a name for the unknown label; parsers get NAMES only
    if kind == "coco":
        images, path = write_coco(root, [item], names)
        data = path.read_text().replace(', {"id": 4, "name": "unknown"}', "")
        path.write_text(data)
        source = parse_coco(images, path, problems)
    elif kind == "voc":
        images, xml = write_voc(root, [item], names)
        source = parse_voc(images, xml, NAMES, problems)
    else:
        yolo = write_yolo(root, {"train": [item]}, NAMES)
        source = parse_yolo(read_yolo_yaml(yolo), "train", problems)
    return source, problems


@pytest.mark.parametrize("kind", ["coco", "voc", "yolo"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(annotations=_annotations)
def test_parsers_apply_the_policy_exactly(kind, annotations):
    with tempfile.TemporaryDirectory() as tmp:
        source, problems = _parse(kind, Path(tmp), annotations)
        unknown = [i for i, (_, label) in enumerate(annotations) if label == len(NAMES)]
        if unknown:
            assert len(problems.errors) == len(unknown)
            where = {"coco": "annotations.json: annotation id=", "voc": "img.xml: object ", "yolo": "img.txt:"}[kind]
            assert all(where in error for error in problems.errors)
            with pytest.raises(DatasetError, match=re.escape(problems.errors[-1])):
                problems.raise_if_errors(source.description)
            return
        assert problems.errors == []
        with pytest.warns(UserWarning) if _expected(annotations)[3] else _no_warning():
            validated, problems = validate_source(source, problems=problems)
    kept, labels, clipped, dropped = _expected(annotations)
    record = validated.records[0]
    np.testing.assert_allclose(record.boxes, np.asarray(kept, dtype=np.float64).reshape(-1, 4), atol=1e-9)
    assert record.labels.tolist() == labels
    assert problems.clipped == clipped
    assert [int(m.split(": box ")[1].split(" ")[0]) for m in problems.dropped] == dropped


class _no_warning:  # noqa: N801 - used like pytest.warns
    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
