"""GeoTIFF in, GeoJSON out: windowed raster reads and coordinates that round-trip through the raster's transform."""

from __future__ import annotations

import json

import numpy as np
import pytest

from centernet.cli.predict import run_predict
from centernet.inference.geo import pixel_to_crs, to_geojson
from centernet.tasks.detection.results import Prediction

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

# 0.5 m pixels of a UTM zone 33N raster whose top-left corner is at (500000, 4650000), slightly rotated.
TRANSFORM = Affine(0.5, 0.02, 500_000.0, 0.01, -0.5, 4_650_000.0)
CRS = "EPSG:32633"
_MATRIX = np.array([[0.5, 0.02, 500_000.0], [0.01, -0.5, 4_650_000.0], [0.0, 0.0, 1.0]])


def _to_pixels(points: np.ndarray) -> np.ndarray:
    """(n, 2) CRS x, y -> (n, 2) pixel column, row through the inverse of the raster's transform."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)  # (n, 3)
    return (np.linalg.inv(_MATRIX) @ homogeneous.T).T[:, :2]


def _write_geotiff(path, image: np.ndarray, transform=TRANSFORM, crs=CRS) -> None:
    """(H, W, C) array -> a tiled GeoTIFF (C bands) with ``transform`` and ``crs``."""
    height, width, bands = image.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": image.dtype.name,
               "tiled": True, "blockxsize": 64, "blockysize": 64}  # fmt: skip
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(image.transpose(2, 0, 1))


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "grey"])
def test_windowed_reads_equal_the_array(tmp_path, scene, dtype):
    from centernet.inference.raster import RasterioSource

    stored = scene
    if dtype == "uint16":
        stored = scene.astype(np.uint16) << 8 | 7  # training keeps the most significant byte
    elif dtype == "grey":
        stored = scene[..., :1]
    path = tmp_path / "scene.tif"
    _write_geotiff(path, stored)
    source = RasterioSource(path)
    expected = np.repeat(scene[..., :1], 3, axis=2) if dtype == "grey" else scene
    assert source.size == (200, 300) and source.crs == CRS
    np.testing.assert_array_equal(source.read(32, 64, 128, 96), expected[64:160, 32:160])
    window = source.read(256, 160, 64, 64)  # leaves the image: black beyond it
    np.testing.assert_array_equal(window[:40, :44], expected[160:, 256:])
    assert window[40:].sum() == 0 and window[:, 44:].sum() == 0
    source.close()


def test_geojson_polygons_round_trip_to_pixel_boxes():
    boxes = np.array([[10.0, 20.0, 50.0, 44.5], [0.0, 0.0, 8.0, 8.0]], dtype=np.float32)
    prediction = Prediction(boxes, np.array([0.9, 0.4], np.float32), np.array([1, 0]), ["car", "tree"], [7, 3])
    collection = to_geojson(prediction, tuple(TRANSFORM)[:6], CRS)
    assert collection["crs"]["properties"]["name"] == CRS
    for feature, box in zip(collection["features"], boxes, strict=True):
        ring = np.array(feature["geometry"]["coordinates"][0])  # (5, 2) CRS coordinates, closed
        assert feature["geometry"]["type"] == "Polygon" and np.array_equal(ring[0], ring[-1])
        pixels = _to_pixels(ring[:4])
        np.testing.assert_allclose(pixels.min(0), box[:2], atol=1e-6)
        np.testing.assert_allclose(pixels.max(0), box[2:], atol=1e-6)
    assert collection["features"][0]["properties"] == {"class": "car", "category_id": 7, "score": 0.9}
    np.testing.assert_allclose(pixel_to_crs(np.array([1.0, 2.0]), tuple(TRANSFORM)[:6]), _MATRIX[:2] @ [1.0, 2.0, 1.0])


def test_predict_geojson_on_a_geotiff(tiny_checkpoint, tmp_path):
    from centernet.data.synthetic import generate_shapes_image

    image = generate_shapes_image(192, 0, "val", 1).image
    _write_geotiff(tmp_path / "ortho.tif", image)
    output = tmp_path / "out"
    json_path = run_predict(
        ["--checkpoint", tiny_checkpoint, "--backend", "eager", "--source", str(tmp_path / "ortho.tif"),
         "--output", str(output), "--tile", "64", "--overlap", "32", "--conf", "0.0", "--geojson", "--no-draw"]
    )  # fmt: skip
    coco = json.loads(json_path.read_text())
    collection = json.loads((output / "geojson" / "ortho.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == CRS and len(collection["features"]) == len(coco) > 0
    for entry, feature in zip(coco, collection["features"], strict=True):
        pixels = _to_pixels(np.array(feature["geometry"]["coordinates"][0])[:4])
        x, y, w, h = entry["bbox"]
        np.testing.assert_allclose([*pixels.min(0), *pixels.max(0)], [x, y, x + w, y + h], atol=1e-3)
        assert abs(feature["properties"]["score"] - entry["score"]) < 1e-4


def test_geojson_refuses_rasters_without_georeference(tiny_checkpoint, tmp_path, scene):
    _write_geotiff(tmp_path / "plain.tif", scene, crs=None)
    with pytest.raises(ValueError, match="no georeference"):
        run_predict(["--checkpoint", tiny_checkpoint, "--backend", "eager", "--source", str(tmp_path / "plain.tif"),
                     "--output", str(tmp_path / "out"), "--geojson", "--no-draw"])  # fmt: skip


def test_geojson_without_rasterio_says_what_to_install(tiny_checkpoint, tmp_path, scene, monkeypatch):
    import centernet.inference.raster as raster

    _write_geotiff(tmp_path / "ortho.tif", scene)
    monkeypatch.setattr(raster, "has_rasterio", lambda: False)
    with pytest.raises(SystemExit, match=r"centernet\[geo\]"):
        run_predict(["--checkpoint", tiny_checkpoint, "--source", str(tmp_path / "ortho.tif"),
                     "--output", str(tmp_path / "out"), "--geojson"])  # fmt: skip
