"""Sliced inference: the tile grid, equality with one whole-image pass, no duplicates on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.training import tiny_network
from torchvision.ops import box_iou

from centernet.data.synthetic import generate_shapes_image
from centernet.inference import Detector
from centernet.inference.export import export_onnx, export_torchscript
from centernet.inference.raster import ArraySource
from centernet.inference.tiling import detect_tiled
from centernet.tiles import TileGrid, crop_tiles, default_overlap

NAMES, IDS = ["a", "b", "c"], [1, 2, 3]


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [
        ((1000, 1000), 512, 64),
        ((768, 300), 256, 100),
        ((64, 2000), 128, 0),
        ((100, 100), 512, 64),
        ((4000, 999), 384, 48),
    ],
)
def test_cores_partition_the_image_and_tiles_overlap_as_asked(size, tile, overlap):
    grid = TileGrid.plan(size, tile, overlap)
    tile_h, tile_w = grid.tile_size
    assert tile_h <= tile and tile_w <= tile and tile_h % 32 == 0 and tile_w % 32 == 0
    for origins, length, span in ((grid.xs, size[1], tile_w), (grid.ys, size[0], tile_h)):
        assert origins[0] == 0 and origins[-1] + span >= length and all(o % 32 == 0 for o in origins)
        if len(origins) > 1:  # neighbours share at least the overlap, rounded up to 32
            assert min(a + span - b for a, b in zip(origins, origins[1:], strict=False)) >= -(-overlap // 32) * 32
    # Every point of the image (a lattice of candidate centres, cell boundaries included) has exactly one owner.
    ys, xs = torch.meshgrid(torch.arange(0, size[0], 0.5), torch.arange(0, size[1], 0.5), indexing="ij")
    points = torch.stack([xs.flatten(), ys.flatten()], dim=-1)
    owners = torch.stack([tile.owns(points) for tile in grid]).sum(0)
    assert torch.equal(owners, torch.ones_like(owners))
    # A core lies inside its tile with at least half the overlap (rounded down to a cell) of context.
    for one in grid:
        if np.isfinite(one.core_x2):
            assert one.x0 + tile_w - one.core_x2 >= (-(-overlap // 32) * 32) // 2 - 4


def test_grid_of_a_1000_px_image_in_512_px_tiles():
    grid = TileGrid.plan((1000, 1000), 512, 64)
    # Padded to 1024 = 32 units; 3 tiles of 12 units (384 px) at 0, 320, 640: overlaps of 64 px.
    assert grid.tile_size == (384, 384) and grid.xs == (0, 320, 640) and len(grid) == 9
    assert grid.x_bounds == (352.25, 672.25)
    assert default_overlap(512) == 64 and default_overlap(384) == 64 and default_overlap(128) == 32


def test_grid_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 32"):
        TileGrid.plan((100, 100), 100, 0)
    with pytest.raises(ValueError, match="below tile"):
        TileGrid.plan((100, 100), 128, 100)


def test_crop_tiles_pads_beyond_the_image():
    image = torch.arange(3 * 70 * 50, dtype=torch.float32).reshape(3, 70, 50)
    grid = TileGrid.plan((70, 50), 64, 32)
    tiles = list(grid)
    crops = crop_tiles(image, grid, tiles)
    assert crops.shape == (len(tiles), 3, *grid.tile_size)
    last = tiles[-1]
    inside = image[:, last.y0 :, last.x0 :]
    assert torch.equal(crops[-1, :, : inside.shape[1], : inside.shape[2]], inside)
    assert crops[-1, :, inside.shape[1] :].abs().sum() == 0


@pytest.fixture(scope="module")
def network():
    """A tiny network whose heatmap reacts strongly to the pixels (random weights, amplified last layer) and whose
    boxes are about 16 px: its peaks depend on the image content, so tiles must reproduce the whole-image maps."""
    torch.manual_seed(0)
    net = tiny_network(3)
    with torch.no_grad():
        net.head.heatmap[-1].weight.mul_(10)
        net.head.heatmap[-1].bias.fill_(-3)
        net.head.size[-1].bias.fill_(4.0)
    return net.eval()


@pytest.fixture(scope="module")
def scene():
    return generate_shapes_image(768, 0, "train", 3).image  # (768, 768, 3) uint8


def _match(reference, candidate):
    """For each reference detection: the IoU of its best same-class match and the score difference."""
    iou = box_iou(torch.from_numpy(reference.boxes), torch.from_numpy(candidate.boxes))  # (R, C)
    iou[torch.from_numpy(reference.labels)[:, None] != torch.from_numpy(candidate.labels)[None, :]] = 0
    best, index = iou.max(1)
    return best, np.abs(reference.scores - candidate.scores[index.numpy()])


@pytest.mark.parametrize(("flip", "threshold"), [(False, 0.3), (True, 0.25)])
def test_sliced_with_enough_overlap_equals_one_whole_image_pass(network, scene, flip, threshold):
    detector = Detector(network, NAMES, IDS, 128)
    whole = detector.predict(scene, threshold, keep_resolution=True, flip=flip)[0]
    sliced = detector.predict(scene, threshold, tile=384, overlap=192, flip=flip)[0]
    assert len(whole.boxes) >= 8
    iou, score_gap = _match(whole, sliced)
    assert iou.min() >= 0.9 and score_gap.max() <= 0.02
    # And nothing extra (no object twice from two tiles): every clear sliced detection is a whole-image one.
    clear = detector.predict(scene, threshold + 0.02, tile=384, overlap=192, flip=flip)[0]
    iou_back, _ = _match(clear, detector.predict(scene, threshold - 0.02, keep_resolution=True, flip=flip)[0])
    assert iou_back.min() >= 0.9


def test_without_overlap_the_tile_borders_change_the_detections(network, scene):
    detector = Detector(network, NAMES, IDS, 128)
    whole = detector.predict(scene, 0.3, keep_resolution=True)[0]
    iou, score_gap = _match(whole, detector.predict(scene, 0.3, tile=384, overlap=0)[0])
    assert ((iou < 0.9) | (score_gap > 0.02)).any()  # the border effect that the overlap avoids


def test_image_within_one_tile_equals_keep_resolution(network):
    image = generate_shapes_image(160, 0, "train", 5).image
    detector = Detector(network, NAMES, IDS, 128)
    whole = detector.predict(image, 0.1, keep_resolution=True)[0]
    sliced = detector.predict(image, 0.1, tile=256)[0]
    np.testing.assert_array_equal(whole.boxes, sliced.boxes)
    np.testing.assert_array_equal(whole.scores, sliced.scores)


@pytest.fixture(scope="module")
def detectors(network, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiling_export")
    onnx_path = export_onnx(network, root / "m.onnx", NAMES, IDS, image_size=128, batch_size=1, dynamic=True)
    ts_path = export_torchscript(network, root / "m.torchscript", NAMES, IDS, image_size=128, batch_size=1)
    fixed = export_onnx(network, root / "fixed.onnx", NAMES, IDS, image_size=384, batch_size=1, dynamic=False)
    return {
        "eager": Detector(network, NAMES, IDS, 128),
        "onnxruntime": Detector.from_exported(onnx_path),
        "torchscript": Detector.from_exported(ts_path),
        "onnxruntime-fixed-size": Detector.from_exported(fixed),
    }


@pytest.mark.parametrize("backend", ["eager", "onnxruntime", "torchscript", "onnxruntime-fixed-size"])
def test_objects_across_tile_borders_are_reported_once_on_every_backend(detectors, scene, backend):
    detector = detectors[backend]
    tile, overlap = 384, 192
    grid = TileGrid.plan(scene.shape[:2], tile, overlap)
    whole = detectors["eager"].predict(scene, 0.3, keep_resolution=True)[0]
    sliced = detector.predict(scene, 0.3, tile=tile, overlap=overlap, batch_size=3)[0]
    centres = (whole.boxes[:, :2] + whole.boxes[:, 2:]) / 2
    in_two_tiles = [
        i
        for i, (x, y) in enumerate(centres)
        if sum(t.x0 <= x < t.x0 + grid.tile_size[1] and t.y0 <= y < t.y0 + grid.tile_size[0] for t in grid) >= 2
    ]
    assert len(in_two_tiles) >= 5  # objects that several tiles see
    iou = box_iou(torch.from_numpy(whole.boxes), torch.from_numpy(sliced.boxes))  # (R, C)
    same_class = torch.from_numpy(whole.labels)[:, None] == torch.from_numpy(sliced.labels)[None, :]
    copies = ((iou > 0.5) & same_class).sum(1)
    assert copies.tolist() == [1] * len(whole.boxes)
    # Without the cores, the tiles that share an object each report it.
    everything = detect_tiled(lambda b: detector._run_tiles(b, False, 100), detector.task, ArraySource(scene), tile,
                              overlap, merge="nms")  # fmt: skip
    kept = everything["scores"] > 0.3
    iou_all = box_iou(torch.from_numpy(whole.boxes), everything["boxes"][kept])
    assert int(((iou_all > 0.5).sum(1)[in_two_tiles] >= 2).sum()) >= 5


def test_nms_merge_keeps_what_the_cores_keep(network, scene):
    detector = Detector(network, NAMES, IDS, 128)
    core = detector.predict(scene, 0.3, tile=384, overlap=192)[0]
    nms = detector.predict(scene, 0.3, tile=384, overlap=192, tile_merge="nms")[0]
    iou, score_gap = _match(core, nms)
    assert iou.min() >= 0.9 and score_gap.max() <= 0.02
    pairs = box_iou(torch.from_numpy(nms.boxes), torch.from_numpy(nms.boxes)).triu(1)
    assert pairs.max() <= 0.5  # NMS at 0.5 left no two boxes overlapping more


def test_tiling_rejects_scales_and_unknown_merge(network, scene):
    detector = Detector(network, NAMES, IDS, 128)
    with pytest.raises(ValueError, match="scales"):
        detector.predict(scene, tile=256, scales=[0.5, 1.0])
    with pytest.raises(ValueError, match="tile_merge"):
        detector.predict(scene, tile=256, tile_merge="wbf")


def test_validate_and_predict_commands_slice_like_the_api(tiny_checkpoint, shapes_root, tmp_path):
    import json
    from pathlib import Path

    from centernet.cli.main import main
    from centernet.data.coco import parse_coco
    from centernet.data.records import Problems
    from centernet.data.synthetic import ensure_shapes_dataset

    paths = ensure_shapes_dataset(shapes_root, num_train=16, num_val=8, image_size=64, seed=0)  # the cached set
    val_images, val_json = paths.val_images, paths.val_annotations
    out = tmp_path / "val"
    metrics = main(["validate", "--checkpoint", tiny_checkpoint, "--backend", "eager", "--output", str(out),
                    "--tile", "32", "--overlap", "0"])  # fmt: skip
    assert metrics["mode"] == "sliced" and metrics["tile"] == 32
    source = parse_coco(val_images, val_json, Problems())
    records = sorted(source.records, key=lambda r: r.image_id)
    detector = Detector.from_checkpoint(tiny_checkpoint)
    predictions = detector.predict([r.path for r in records], 0.0, tile=32, overlap=0)
    expected = [e for r, p in zip(records, predictions, strict=True) for e in p.to_coco(r.image_id)]
    written = json.loads((out / "predictions.json").read_text())
    assert len(written) == len(expected) > 0
    np.testing.assert_allclose([e["bbox"] for e in written], [e["bbox"] for e in expected], atol=1e-3)
    predicted = main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(records[0].path), "--tile", "32",
                      "--overlap", "0", "--conf", "0.0", "--output", str(tmp_path / "pred")])  # fmt: skip
    entries = json.loads(Path(predicted).read_text())  # ONNX Runtime (auto on the CPU) against eager
    np.testing.assert_allclose([e["bbox"] for e in entries], [e["bbox"] for e in predictions[0].to_coco(0)], atol=0.05)


def test_large_images_are_read_one_tile_at_a_time(network):
    class Recorder(ArraySource):
        def __init__(self, image):
            super().__init__(image)
            self.windows = []

        def read(self, x0, y0, width, height):
            self.windows.append((x0, y0, width, height))
            return super().read(x0, y0, width, height)

    image = np.random.default_rng(0).integers(0, 256, size=(700, 900, 3), dtype=np.uint8)
    source = Recorder(image)
    detector = Detector(network, NAMES, IDS, 128)
    detect_tiled(lambda b: detector._run_tiles(b, False, 100), detector.task, source, 256, 64, batch_size=4)
    grid = TileGrid.plan((700, 900), 256, 64)
    assert source.windows == [(t.x0, t.y0, grid.tile_size[1], grid.tile_size[0]) for t in grid]
    assert max(w * h for *_, w, h in source.windows) <= 256 * 256
