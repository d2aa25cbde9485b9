"""Georeferenced output: detections of a GeoTIFF as GeoJSON polygons in the raster's coordinate reference system.

A raster's affine transform ``(a, b, c, d, e, f)`` (GDAL / rasterio order) maps pixel coordinates (column, row),
continuous, with (0, 0) the top-left corner of the top-left pixel, to the CRS: ``x = a * col + b * row + c`` and
``y = d * col + e * row + f``. Every box becomes the polygon of its four corners mapped so (a rectangle for
north-up rasters, a parallelogram for rotated ones), closed as GeoJSON requires, with the class name, the dataset's
category id and the score as properties. Coordinates stay in the raster's CRS (named in the collection's ``crs``
member, the 2008 GeoJSON form that GDAL, QGIS and geopandas read), not reprojected to WGS 84.

Reading the georeference needs the optional ``geo`` extra (rasterio, see :mod:`centernet.inference.raster`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from centernet.tasks.detection.results import Prediction

__all__ = ["Affine6", "pixel_to_crs", "to_geojson", "write_geojson"]

Affine6 = tuple[float, float, float, float, float, float]


def pixel_to_crs(points: np.ndarray, transform: Affine6) -> np.ndarray:
    """(..., 2) column, row pixel coordinates -> (..., 2) x, y in the raster's CRS."""
    a, b, c, d, e, f = transform
    col, row = points[..., 0].astype(np.float64), points[..., 1].astype(np.float64)
    return np.stack([a * col + b * row + c, d * col + e * row + f], axis=-1)


def to_geojson(prediction: Prediction, transform: Affine6, crs: str | None, source: str | None = None) -> dict:
    """A GeoJSON FeatureCollection of one image's detections.

    Args:
        prediction: Boxes in the raster's pixels (xyxy, continuous).
        transform: The raster's affine transform, ``(a, b, c, d, e, f)``.
        crs: The raster's CRS as text (e.g. ``"EPSG:32633"``); ``None`` leaves the ``crs`` member out.
        source: The image it came from, stored as the collection's ``source`` property.

    Returns:
        ``{"type": "FeatureCollection", "features": [...]}``, one Polygon feature per box with ``class``,
        ``category_id`` and ``score`` properties.
    """
    boxes = np.asarray(prediction.boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    corners = np.stack([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], axis=0).transpose(2, 0, 1)  # (K, 5, 2)
    rings = pixel_to_crs(corners, transform)  # (K, 5, 2)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
            "properties": {"class": name, "category_id": int(category), "score": round(float(score), 5)},
        }
        for ring, name, category, score in zip(
            rings, prediction.names, prediction.category_ids, prediction.scores, strict=True
        )
    ]
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    if source is not None:
        collection["properties"] = {"source": source}
    return collection


def write_geojson(path: str | Path, prediction: Prediction, transform: Affine6, crs: str | None, source: str) -> Path:
    """Write :func:`to_geojson` to ``path`` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_geojson(prediction, transform, crs, source)))
    return path
