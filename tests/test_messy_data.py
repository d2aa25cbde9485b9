"""What a new user's messy data does: every problem is an error naming the file (and the entry), before training.

Empty splits, image paths leaving the image folder, images cut short (that decode without an error, or crash a
DataLoader worker later), images above the pixel limit, malformed COCO fields, two entries of one file, files that
are not UTF-8, and XML with entity declarations.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers.writers import cut_jpeg_keeping_eoi, cut_png_image_data, noise_item, write_coco, write_voc, write_yolo
from PIL import Image

from centernet.cli.main import main
from centernet.data import (
    CenterNetDataModule,
    CocoDetection,
    DatasetError,
    DataWarning,
    ImageFileError,
    Problems,
    check_image_pixels,
    decode_rgb,
    discover_voc_classes,
    inspect_image,
    max_image_pixels,
    parse_coco,
    parse_voc,
    parse_yolo,
    read_image_size,
    read_yolo_yaml,
)
from centernet.data import imagefile as imagefile_module

NAMES = ["cat", "dog"]
RANDOM_BYTES = b"\xff" + bytes(np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8))  # FF: never UTF-8


def _items(count: int = 2) -> list:
    return [noise_item(f"im{i}", 48, 64, [(4, 4, 30, 30)], [i % 2], seed=i) for i in range(count)]


def _coco_module(image_dir: Path, path: Path, val_path: Path | None = None, **kwargs) -> CenterNetDataModule:
    return CenterNetDataModule(
        dataset="coco",
        train_images=str(image_dir),
        train_annotations=str(path),
        val_images=str(image_dir),
        val_annotations=str(val_path or path),
        image_size=64,
        batch_size=1,
        num_workers=0,
        **kwargs,
    )


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# --- 1. an empty split is an error naming its file --------------------------------------------------------------------


def test_an_empty_coco_split_fails_setup_and_data_check_naming_the_json(tmp_path, capsys):
    image_dir, path = write_coco(tmp_path, _items(), NAMES)
    empty = tmp_path / "val.json"
    empty.write_text(json.dumps({**json.loads(path.read_text()), "images": [], "annotations": []}))
    expected = f"COCO json {empty}: no images (the split is empty)"
    for stage in ("fit", "validate"):
        with pytest.raises(DatasetError) as error:
            _coco_module(image_dir, path, empty).setup(stage)
        assert error.value.errors == [expected]
    source, problems = _coco_module(image_dir, path, empty).read_split("val")
    assert problems.errors == [expected] and source.records == []
    empty_train = CenterNetDataModule(
        dataset="coco", train_images=str(image_dir), train_annotations=str(empty), image_size=64, num_workers=0
    )
    with pytest.raises(DatasetError, match=re.escape(expected)):
        empty_train.setup("fit")

    config = tmp_path / "config.yaml"
    data = {"dataset": "coco", "image_size": 64, "train_images": str(image_dir), "train_annotations": str(path)}
    data.update(val_images=str(image_dir), val_annotations=str(empty))
    config.write_text(yaml.safe_dump({"data": data}))
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "--config", str(config), "--output", str(tmp_path / "out"), "--samples", "1"])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert f"ERROR: {expected}" in printed and "errors found; training would stop" in printed


def test_empty_voc_and_yolo_splits_are_errors_naming_the_folder_list_or_yaml(tmp_path):
    images, xml = write_voc(tmp_path / "voc", _items(), NAMES)
    empty_folder = tmp_path / "voc" / "Empty"
    empty_folder.mkdir()
    empty_list = tmp_path / "voc" / "ImageSets" / "Main" / "val.txt"
    empty_list.parent.mkdir(parents=True)
    empty_list.write_text("\n")
    for listed in (empty_folder, empty_list):
        dm = CenterNetDataModule(
            dataset="voc",
            voc_classes=NAMES,
            train_images=str(images),
            train_annotations=str(xml),
            val_images=str(images),
            val_annotations=str(listed),
            image_size=64,
        )
        with pytest.raises(DatasetError, match=re.escape(f"VOC annotations {listed}: no images (the split")):
            dm.setup("validate")
    with pytest.raises(ValueError, match=re.escape(f"no XML files in {empty_folder} (the dataset is empty)")):
        discover_voc_classes([empty_folder])

    path = write_yolo(tmp_path / "yolo", {"train": _items()}, NAMES)
    (tmp_path / "yolo" / "images" / "val").mkdir()
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "val": "images/val"}))
    dm = CenterNetDataModule(dataset="yolo", yolo_data=str(path), image_size=64, num_workers=0)
    with pytest.raises(DatasetError, match=re.escape(f"YOLO val split of {path}: no images (the split is empty)")):
        dm.setup("fit")


def test_a_split_whose_every_image_is_skipped_is_an_error(tmp_path):
    image_dir, path = write_coco(tmp_path, _items(), NAMES)
    for file in image_dir.iterdir():
        file.write_bytes(b"")
    dm = _coco_module(image_dir, path, invalid_images="skip")
    with pytest.warns(DataWarning, match="skipped 2 unusable"), pytest.raises(DatasetError) as error:
        dm.setup("fit")
    assert error.value.errors == [
        f"COCO json {path}: no usable images: all 2 were skipped as unusable (invalid_images: skip; see the skipped "
        "images)"
    ]


# --- 2. image paths must not leave the image folder -------------------------------------------------------------------


def test_coco_and_voc_image_paths_outside_the_image_folder_are_errors_unless_allowed(tmp_path):
    image_dir, path = write_coco(tmp_path / "coco", _items(), NAMES)
    outside = tmp_path / "outside.png"
    (image_dir / "im1.png").rename(outside)
    _edit_json(path, lambda data: data["images"][1].update(file_name="../../outside.png"))
    with pytest.raises(DatasetError) as error:
        _coco_module(image_dir, path).setup("fit")
    assert error.value.errors == [
        f"{path}: images[1] (id 2) has file_name='../../outside.png', which is outside the image folder {image_dir} "
        "(set allow_images_outside_folder to accept it)"
    ]
    _edit_json(path, lambda data: data["images"][1].update(file_name=str(outside)))  # an absolute path
    with pytest.raises(DatasetError, match=re.escape(f"images[1] (id 2) has file_name='{outside}', which is outside")):
        CocoDetection(image_dir, path)
    dm = _coco_module(image_dir, path, allow_images_outside_folder=True)
    dm.setup("fit")
    assert [r.path for r in dm.train_dataset.source.records] == [image_dir / "im0.png", outside]

    images, xml = write_voc(tmp_path / "voc", _items(), NAMES)
    text = (xml / "im1.xml").read_text().replace("<filename>im1.png", "<filename>../JPEGImages/../../outside.png")
    (xml / "im1.xml").write_text(text)
    problems = Problems()
    parse_voc(images, xml, NAMES, problems)
    assert problems.errors == [
        f"{xml / 'im1.xml'}: <filename> '../JPEGImages/../../outside.png' is outside the image folder {images} (set "
        "allow_images_outside_folder to accept it)"
    ]
    problems = Problems()
    source = parse_voc(images, xml, NAMES, problems, allow_images_outside_folder=True)
    assert problems.errors == [] and source.records[1].path == images / "../JPEGImages/../../outside.png"
    text = (xml / "im0.xml").read_text().replace("<filename>im0.png", "<filename>../JPEGImages/im0.png")
    (xml / "im0.xml").write_text(text)  # '..' that stays inside the folder is fine
    problems = Problems()
    assert parse_voc(images, xml, NAMES, problems).records[0].path == images / "../JPEGImages/im0.png"
    assert len(problems.errors) == 1 and "im1.xml" in problems.errors[0]


# --- 3. the image check decodes what would crash the loader, and finds JPEGs cut short --------------------------------


def _jpeg(path: Path, image: np.ndarray, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, "JPEG", **options)
    return path


def _noise(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_png_cut_short_with_its_iend_kept_and_a_jpeg_cut_in_half_with_ffd9_are_errors(tmp_path):
    png = tmp_path / "cut.png"
    cv2.imwrite(str(png), _noise())
    cut_png_image_data(png)
    assert png.read_bytes()[-8:-4] == b"IEND"  # an end marker check passes it ...
    with pytest.raises(ImageFileError):
        decode_rgb(png)  # ... and the loader's decoder fails: a crashed DataLoader worker in the first epoch
    with pytest.raises(ImageFileError, match=re.escape(f"{png}: truncated or corrupt image (OpenCV cannot decode")):
        inspect_image(png)

    jpeg = _jpeg(tmp_path / "half.jpg", _noise(), quality=90)
    cut_jpeg_keeping_eoi(jpeg)
    assert jpeg.read_bytes().endswith(b"\xff\xd9")
    pixels = decode_rgb(jpeg)  # decodes without an error, grey from the cut onwards
    assert pixels.shape == (96, 128, 3) and (pixels[-8:] == 128).all() and not (pixels[:8] == 128).all()
    with pytest.raises(ImageFileError, match=re.escape(f"{jpeg}: truncated or corrupt image (the JPEG image data")):
        inspect_image(jpeg)

    naive = tmp_path / "naive.png"  # the first half of the file, then an IEND chunk
    cv2.imwrite(str(naive), _noise())
    naive.write_bytes(naive.read_bytes()[: naive.stat().st_size // 2] + png.read_bytes()[-12:])
    no_eoi = _jpeg(tmp_path / "no_eoi.jpg", _noise(), quality=90)
    no_eoi.write_bytes(no_eoi.read_bytes()[:-300])
    for file in (naive, no_eoi):
        with pytest.raises(ImageFileError, match="truncated or corrupt image"):
            inspect_image(file)


def test_cut_images_are_errors_in_training_or_skipped_counted_and_named(tmp_path):
    image_dir, path = write_coco(tmp_path, _items(3), NAMES)
    _edit_json(path, lambda data: data["images"][2].update(file_name="im2.jpg"))
    _jpeg(image_dir / "im2.jpg", _noise(48, 64, seed=2), quality=90)
    cut_png_image_data(image_dir / "im1.png")
    cut_jpeg_keeping_eoi(image_dir / "im2.jpg")
    bad = [image_dir / "im1.png", image_dir / "im2.jpg"]
    with pytest.raises(DatasetError) as error:
        _coco_module(image_dir, path).setup("fit")
    assert [e.split(": ")[0] for e in error.value.errors] == [str(file) for file in bad]
    assert all("truncated or corrupt image" in e and f"(listed in {path})" in e for e in error.value.errors)
    dm = _coco_module(image_dir, path, invalid_images="skip")
    with pytest.warns(DataWarning, match="skipped 2 unusable"):
        dm.setup("fit")
    assert [s.split(": ")[0] for s in dm.problems["train"].skipped] == [str(file) for file in bad]
    assert len(dm.train_dataset) == 1 and next(iter(dm.train_dataloader()))["image_id"].tolist() == [1]


def test_progressive_and_restart_interval_jpegs_cut_short_are_errors(tmp_path):
    progressive = _jpeg(tmp_path / "progressive.jpg", _noise(), quality=90, progressive=True)
    cut_jpeg_keeping_eoi(progressive, keep=0.6)  # progressive: the blocks keep the earlier scans, not grey
    assert not (decode_rgb(progressive)[-8:] == 128).all()
    with pytest.raises(ImageFileError, match="the JPEG image data stops short"):
        inspect_image(progressive)
    # Cut right after a restart marker: libjpeg would skip bytes inserted there; the intervals are counted instead.
    restarts = _jpeg(tmp_path / "restarts.jpg", _noise(), quality=90, restart_marker_rows=1)
    data = restarts.read_bytes()
    markers = [m.end() for m in re.finditer(rb"\xff[\xd0-\xd7]", data)]
    assert len(markers) == 5  # 96 rows in MCU rows of 16 (4:2:0): 6 intervals, 5 markers between them
    restarts.write_bytes(data[: markers[2]] + b"\xff\xd9")
    with pytest.raises(ImageFileError, match=r"image data of JPEG scan 1 stops in restart interval 4 of 6"):
        inspect_image(restarts)


def test_complete_jpegs_of_every_kind_pass_the_check(tmp_path):
    grey_corner = _noise()
    grey_corner[-32:, -32:] = 128  # decodes to exactly the grey of missing data: the check looks closer
    exif = Image.Exif()
    exif[0x0112] = 1
    files = {
        "baseline": _jpeg(tmp_path / "a.jpg", _noise(), quality=90),
        "progressive": _jpeg(tmp_path / "b.jpg", _noise(), quality=75, progressive=True),
        "restarts": _jpeg(tmp_path / "c.jpg", _noise(), quality=90, restart_marker_blocks=3),
        "progressive restarts": _jpeg(tmp_path / "d.jpg", _noise(), progressive=True, restart_marker_rows=1),
        "grey corner": _jpeg(tmp_path / "e.jpg", grey_corner, quality=95),
        "grayscale 4:4:4": _jpeg(tmp_path / "f.jpg", _noise()[..., 0], quality=90, subsampling=0),
        "exif": _jpeg(tmp_path / "g.jpg", _noise(), exif=exif),
    }
    assert (decode_rgb(files["grey corner"])[-1, -1] == 128).all()
    trailer = files["baseline"].read_bytes() + b"\x00" * 64 + b"trailing data\xff\xd9"  # bytes after the EOI
    files["trailer"] = tmp_path / "h.jpg"
    files["trailer"].write_bytes(trailer)
    for kind, file in files.items():
        info = inspect_image(file)
        assert (info.width, info.height) == (128, 96), kind


# --- 4. one pixel limit for training and predict ----------------------------------------------------------------------


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` 1-bit pixels; its image data is a few rows."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((1, 0, 0, 0, 0))
    rows = zlib.compress(bytes(4 * (1 + -(-width // 8))))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_an_image_above_the_pixel_limit_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    monkeypatch.delenv("CENTERNET_MAX_IMAGE_PIXELS", raising=False)
    assert max_image_pixels() == 178_956_970 == 2 * Image.MAX_IMAGE_PIXELS  # PIL's own threshold, by default
    bomb = _png_declaring(tmp_path / "bomb.png", 30_000, 30_000)
    assert bomb.stat().st_size < 2_000
    pil_limit = Image.MAX_IMAGE_PIXELS
    assert read_image_size(bomb) == (30_000, 30_000)  # PIL alone would refuse to say
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # lifted only while the header was read
    expected = (
        f"{bomb}: the image is 30000x30000 = 900,000,000 pixels, more than the limit of 178,956,970 pixels (set "
        "CENTERNET_MAX_IMAGE_PIXELS to a larger number, or to 0 for no limit, to accept it)"
    )
    with pytest.raises(ImageFileError, match=re.escape(expected)):
        check_image_pixels(bomb, 30_000, 30_000)

    def no_decoding(data):
        raise AssertionError("decoded an image above the limit")

    monkeypatch.setattr(imagefile_module, "_decode", no_decoding)
    with pytest.raises(ImageFileError, match=re.escape(expected)):
        inspect_image(bomb)

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), _noise(48, 64))
    monkeypatch.setenv("CENTERNET_MAX_IMAGE_PIXELS", "3000")
    with pytest.raises(
        ImageFileError, match=r"small.png: the image is 64x48 = 3,072 pixels, more than the limit of 3,"
    ):
        inspect_image(small)
    for value, limit in (("0", None), ("none", None), (" None ", None), ("900_000_000", 900_000_000)):
        monkeypatch.setenv("CENTERNET_MAX_IMAGE_PIXELS", value)
        assert max_image_pixels() == limit
    check_image_pixels(bomb, 30_000, 30_000)  # within 900,000,000
    for value in ("lots", "-1", "1e9"):
        monkeypatch.setenv("CENTERNET_MAX_IMAGE_PIXELS", value)
        with pytest.raises(ValueError, match="CENTERNET_MAX_IMAGE_PIXELS must be a number of pixels"):
            max_image_pixels()


def test_predict_applies_the_same_pixel_limit_before_decoding(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    from centernet.cli.main import console_main

    bomb = _png_declaring(tmp_path / "bomb.png", 30_000, 30_000)
    monkeypatch.setattr(
        "centernet.inference.inputs.decode_rgb", lambda path: pytest.fail("decoded an image above the limit")
    )
    monkeypatch.setattr("sys.argv", ["centernet", "predict", "--checkpoint", tiny_checkpoint, "--source", str(bomb),
                                     "--output", str(tmp_path / "out")])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    assert exit_info.value.code == 1
    assert "bomb.png: the image is 30000x30000 = 900,000,000 pixels, more than the limit" in capsys.readouterr().err
    monkeypatch.undo()
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), _noise(48, 64))
    monkeypatch.setenv("CENTERNET_MAX_IMAGE_PIXELS", "3000")
    from centernet.inference import Detector

    detector = Detector.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ImageFileError, match="small.png: the image is 64x48 = 3,072 pixels"):
        detector.predict(small)
    monkeypatch.setenv("CENTERNET_MAX_IMAGE_PIXELS", "3072")
    assert len(detector.predict(small)) == 1


def test_read_image_size_reads_the_header_and_names_bad_files(tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), _noise(48, 64))
    assert read_image_size(image) == (64, 48)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(ImageFileError, match="text.png: not an image file"):
        read_image_size(tmp_path / "text.png")
    with pytest.raises(ImageFileError, match="nope.png: image file not found"):
        read_image_size(tmp_path / "nope.png")


# --- 5. malformed COCO fields are errors naming the file and the entry ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("area", None, "annotation id=1 has area=None; expected a number of pixels >= 0 (or no area)"),
        ("area", "12", "annotation id=1 has area='12'; expected a number of pixels >= 0 (or no area)"),
        ("image_id", [1], "annotation id=1 has image_id=[1]; expected the integer id of an image"),
        ("category_id", [1], "annotation id=1 has category_id=[1], not one of the categories [1, 2]"),
        ("iscrowd", "0", "annotation id=1 has iscrowd='0'; expected 0 or 1"),
        ("id", [1], "annotations[0] has id=[1]; expected an integer"),
        ("bbox", [1, 2, None, 4], "annotation id=1 has bbox=[1, 2, None, 4]; expected [x, y, w, h] numbers"),
        ("image.id", [1], "images[0]={'id': [1], 'file_name': 'im0.png', 'height': 48, 'width': 64} needs an integer"),
        ("image.id", True, "images[0]={'id': True, 'file_name': 'im0.png', 'height': 48, 'width': 64} needs an int"),
        ("image.width", "64", "images[0] (id 1) has width='64'; expected a positive whole number of pixels"),
        ("image.height", [48], "images[0] (id 1) has height=[48]; expected a positive whole number of pixels"),
        ("image.width", 0, "images[0] (id 1) has width=0; expected a positive whole number of pixels"),
        ("image.file_name", None, "images[0] (id 1) has file_name=None; expected the image's path in the image"),
    ],
)
def test_malformed_coco_fields_are_errors_naming_the_file_and_the_entry(tmp_path, field, value, expected):
    image_dir, path = write_coco(tmp_path, _items(), NAMES)
    if field.startswith("image."):
        _edit_json(path, lambda data: data["images"][0].update({field[6:]: value}))
    else:
        _edit_json(path, lambda data: data["annotations"][0].update({field: value}))
    problems = Problems()
    parse_coco(image_dir, path, problems)  # no TypeError from a list where a number belongs
    assert problems.errors[0].startswith(f"{path}: {expected}")
    with pytest.raises(DatasetError, match=re.escape(expected)):
        CocoDetection(image_dir, path)


def test_well_formed_coco_variants_still_load(tmp_path):
    image_dir, path = write_coco(tmp_path, _items(), NAMES)

    def edit(data):
        data["images"][0].update(width=64.0, height=48.0)  # whole numbers written as floats
        data["images"][1].pop("width")  # no size: the decoded one is used
        data["annotations"][0].update(iscrowd=False, area=0)
        data["annotations"][1].pop("id")  # no id: messages say annotations[1]

    _edit_json(path, edit)
    problems = Problems()
    source = parse_coco(image_dir, path, problems)
    assert problems.errors == [] and (source.records[0].width, source.records[1].width) == (64, None)
    assert source.records[1].refs == ["annotations[1]"] and source.records[0].area.tolist() == [0.0]


# --- 6. two image entries of one file ---------------------------------------------------------------------------------


def test_two_image_entries_with_the_same_file_name_are_an_error_naming_both_ids(tmp_path):
    image_dir, path = write_coco(tmp_path, _items(3), NAMES)

    def edit(data):
        data["images"][1].update(id=7, file_name="im0.png")
        data["images"][2]["file_name"] = "./sub/../im0.png"  # the same file, spelled differently
        data["annotations"][1]["image_id"] = 7

    _edit_json(path, edit)
    problems = Problems()
    parse_coco(image_dir, path, problems)
    assert problems.errors == [
        f"{path}: images[1] (id 7) has the same file_name 'im0.png' as image id 1: each copy would train the other's "
        "objects as background (merge the two entries into one)",
        f"{path}: images[2] (id 3) has the same file_name './sub/../im0.png' as image id 1: each copy would train the "
        "other's objects as background (merge the two entries into one)",
    ]


# --- 7. files that are not UTF-8 text, and YAML syntax errors, name the file ------------------------------------------


def test_yolo_label_and_list_files_that_are_not_utf8_are_errors_naming_them(tmp_path):
    path = write_yolo(tmp_path, {"train": _items(), "val": _items()}, NAMES)
    labels = tmp_path / "labels" / "train" / "im0.txt"
    labels.write_bytes(RANDOM_BYTES)
    dm = CenterNetDataModule(dataset="yolo", yolo_data=str(path), image_size=64, num_workers=0)
    with pytest.raises(DatasetError, match=re.escape(f"{labels}: not a UTF-8 text file (invalid start byte at byte")):
        dm.setup("fit")

    listed = tmp_path / "val.txt"
    listed.write_bytes(b"images/val/im0.png\n" + RANDOM_BYTES)
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "val": "val.txt"}))
    with pytest.raises(ValueError, match=re.escape(f"{listed}: not a UTF-8 text file")):
        parse_yolo(read_yolo_yaml(path), "val", Problems())
    listed.write_bytes(b"\xef\xbb\xbfimages/val/im0.png\r\n")  # a byte-order mark and CRLF, as Windows tools write
    assert [r.path.name for r in parse_yolo(read_yolo_yaml(path), "val", Problems()).records] == ["im0.png"]

    path.write_text("names: [cat, dog\ntrain: images/train\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not valid YAML")):
        read_yolo_yaml(path)
    path.write_bytes(b"names: [cat]\n" + RANDOM_BYTES)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a UTF-8 text file")):
        read_yolo_yaml(path)


def test_voc_image_set_lists_and_xml_files_that_are_not_utf8_are_errors_naming_them(tmp_path):
    images, xml = write_voc(tmp_path, _items(), NAMES)
    image_set = tmp_path / "ImageSets" / "Main" / "train.txt"
    image_set.parent.mkdir(parents=True)
    image_set.write_bytes(b"im0\n" + RANDOM_BYTES)
    with pytest.raises(ValueError, match=re.escape(f"{image_set}: not a UTF-8 text file")):
        parse_voc(images, image_set, NAMES, Problems())
    (xml / "im1.xml").write_bytes(RANDOM_BYTES)
    problems = Problems()
    parse_voc(images, xml, NAMES, problems)
    assert len(problems.errors) == 1 and problems.errors[0].startswith(f"{xml / 'im1.xml'}: not valid XML")


# --- 8. VOC XML through a hardened parser -----------------------------------------------------------------------------

_BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotation [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>im1.png</filename><object><name>&lol9;</name></object></annotation>
"""

_EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<annotation><filename>im1.png</filename><object><name>&secret;</name></object></annotation>
"""


@pytest.mark.parametrize("text", [_BILLION_LAUGHS, _EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_voc_xml_with_entity_declarations_is_refused_naming_the_file(tmp_path, text):
    images, xml = write_voc(tmp_path, _items(), NAMES)
    (xml / "im1.xml").write_text(text)
    problems = Problems()
    source = parse_voc(images, xml, NAMES, problems)
    assert len(problems.errors) == 1 and [r.path.name for r in source.records] == ["im0.png"]
    assert problems.errors[0].startswith(f"{xml / 'im1.xml'}: refused XML (")
    assert problems.errors[0].endswith("annotation files may not declare entities or reference external ones")
    with pytest.raises(ValueError, match=re.escape(f"{xml / 'im1.xml'}: refused XML")):
        discover_voc_classes([xml])


def test_a_voc_size_of_inf_is_taken_from_the_image(tmp_path):
    images, xml = write_voc(tmp_path, _items(1), NAMES)
    (xml / "im0.xml").write_text((xml / "im0.xml").read_text().replace("<width>64</width>", "<width>inf</width>"))
    problems = Problems()
    assert parse_voc(images, xml, NAMES, problems).records[0].width is None and problems.errors == []
