"""Pascal VOC format: a folder of images and a folder of XML files (one per image) -> records.

The annotations are a folder (every ``*.xml`` file in it) or a VOC image-set list such as
``VOC2012/ImageSets/Main/train.txt`` (one image id per line; the XML files are ``VOC2012/Annotations/<id>.xml``).
Each XML file describes one image: ``<filename>`` (relative to the image folder;
if absent, the image with the XML file's stem and a common image extension), ``<size>`` (``width``/``height``,
checked against the decoded image when present and non-zero) and ``<object>`` s with ``<name>`` and
``<bndbox>`` (``xmin``, ``ymin``, ``xmax``, ``ymax`` in pixels).

Conventions:

- Coordinates are used as written, as ``x1, y1, x2, y2`` pixels (as MMDetection 2+ and most labelling tools do;
  the 1-pixel offset of the original VOC devkit is not applied).
- Class names are either given (an unknown ``<name>`` is then an error naming the file and the object) or
  discovered: the sorted set of all names in the annotation folders. Category ids are ``1..C`` in the order of
  the class names.
- ``difficult`` objects are training targets like any other (nothing valid is dropped).
- ``<filename>`` must stay inside the image folder (no ``..`` leading out, no absolute path) unless
  ``allow_images_outside_folder`` is set.
- The XML is read with ``defusedxml``: a file that declares entities (e.g. the exponential "billion laughs"
  expansion) or references external ones is refused with an error naming it, whatever the installed expat's limits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import defusedxml
import defusedxml.ElementTree
import numpy as np

from centernet.data.records import DetectionSource, ImageRecord, Problems, leaves_folder, read_annotation_text

__all__ = ["discover_voc_classes", "parse_voc"]

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


def discover_voc_classes(annotation_dirs: Iterable[str | Path]) -> list[str]:
    """The sorted set of object names in the XML files of the given folders.

    Raises:
        ValueError: An XML file cannot be parsed or is refused (the message names it), there is no XML file, or no
            object is found.
    """
    names: set[str] = set()
    folders = [Path(folder) for folder in annotation_dirs]
    xml_paths = [p for folder in folders for p in _xml_files(folder)]
    if not xml_paths:
        raise ValueError(f"no XML files in {', '.join(map(str, folders))} (the dataset is empty)")
    for xml_path in xml_paths:
        root = _parse_xml(xml_path)
        names.update((obj.findtext("name") or "").strip() for obj in root.iter("object"))
    names.discard("")
    if not names:
        raise ValueError(f"no <object><name> found in the XML files of {', '.join(map(str, folders))}")
    return sorted(names)


def parse_voc(
    image_dir: str | Path,
    annotation_dir: str | Path,
    class_names: Sequence[str],
    problems: Problems,
    allow_images_outside_folder: bool = False,
) -> DetectionSource:
    """Read a folder of VOC XML files into records (no image is opened).

    Args:
        image_dir: Folder of the images.
        annotation_dir: Folder of the ``*.xml`` files, one per image, or a VOC image-set ``.txt`` list.
        class_names: The classes, in label order (category id = label + 1).
        problems: Collects the errors (unparsable or refused XML, missing fields, unknown names, an image path
            outside ``image_dir``), each naming the XML file.
        allow_images_outside_folder: Accept a ``<filename>`` that leaves ``image_dir`` (``../x.jpg``, an absolute
            path), for datasets laid out that way.

    Returns:
        Records sorted by XML file name (in list order for an image-set list); ``image_id`` is the 1-based
        position.
    """
    image_dir, annotation_dir = Path(image_dir), Path(annotation_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"VOC image folder not found: {image_dir}")
    label_of = {name: label for label, name in enumerate(class_names)}
    records = []
    for xml_path in _xml_files(annotation_dir):
        try:
            root = _parse_xml(xml_path)
        except ValueError as err:
            problems.error(str(err))
            continue
        boxes, labels, refs = [], [], []
        for k, obj in enumerate(root.iter("object")):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            values = [box.findtext(key) if box is not None else None for key in _COORDINATES]
            try:
                coordinates = [float(v) for v in values]  # type: ignore[arg-type]
            except (TypeError, ValueError):
                problems.error(f"{xml_path}: object {k} ({name!r}) needs a <bndbox> with numbers {_COORDINATES}")
                continue
            if name not in label_of:
                problems.error(f"{xml_path}: object {k} has class name {name!r}, not one of {list(class_names)}")
                continue
            boxes.append(coordinates)
            labels.append(label_of[name])
            refs.append(f"object {k}")
        file_name = (root.findtext("filename") or "").strip()
        if file_name and not allow_images_outside_folder and leaves_folder(image_dir, file_name):
            problems.error(
                f"{xml_path}: <filename> {file_name!r} is outside the image folder {image_dir} (set "
                "allow_images_outside_folder to accept it)"
            )
            continue
        image_path = _image_path(file_name, xml_path, image_dir)
        if image_path is None:
            problems.error(f"{xml_path}: no <filename>, and no image named {xml_path.stem}.* in {image_dir}")
            continue
        records.append(
            ImageRecord(
                path=image_path,
                image_id=len(records) + 1,
                width=_size(root, "width"),
                height=_size(root, "height"),
                boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                labels=np.asarray(labels, dtype=np.int64),
                iscrowd=np.zeros(len(labels), dtype=np.int64),
                area=np.full(len(labels), np.nan, dtype=np.float32),
                refs=refs,
                source=xml_path,
            )
        )
    return DetectionSource(
        records, list(class_names), list(range(1, len(class_names) + 1)), f"VOC annotations {annotation_dir}"
    )


def _xml_files(path: Path) -> list[Path]:
    """The XML files of a folder, or those named by a VOC image-set list (``ImageSets/Main/<split>.txt``)."""
    if path.is_dir():
        return sorted(path.glob("*.xml"))
    if path.is_file() and path.suffix == ".txt":
        # <root>/ImageSets/Main/train.txt lists image ids; their XML files are <root>/Annotations/<id>.xml.
        folder = path.parents[2] / "Annotations" if len(path.parents) > 2 else path.parent
        ids = [line.split()[0] for line in read_annotation_text(path).splitlines() if line.strip()]
        files = [folder / f"{image_id}.xml" for image_id in ids]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{path} lists {len(missing)} image(s) without an XML file, e.g. {missing[0]}")
        return files
    raise FileNotFoundError(f"VOC annotations not found: {path} (expected a folder of XML files or an image-set .txt)")


def _parse_xml(path: Path) -> ET.Element:
    """Parse with defusedxml (see the module docstring); errors name the file."""
    try:
        return defusedxml.ElementTree.parse(path).getroot()
    except ET.ParseError as err:  # also bytes that are not in the declared encoding
        raise ValueError(f"{path}: not valid XML ({err})") from err
    except defusedxml.DefusedXmlException as err:
        raise ValueError(
            f"{path}: refused XML ({err!r}): annotation files may not declare entities or reference external ones"
        ) from err


def _size(root: ET.Element, key: str) -> int | None:
    text = root.findtext(f"size/{key}")
    try:
        value = int(float(text)) if text is not None else 0
    except (ValueError, OverflowError):  # not a number, NaN, inf
        value = 0
    return value if value > 0 else None  # some tools write 0: the decoded size is used


def _image_path(file_name: str, xml_path: Path, image_dir: Path) -> Path | None:
    if file_name:
        return image_dir / file_name
    for extension in _IMAGE_EXTENSIONS:
        for candidate in (image_dir / f"{xml_path.stem}{extension}", image_dir / f"{xml_path.stem}{extension.upper()}"):
            if candidate.is_file():
                return candidate
    return None
