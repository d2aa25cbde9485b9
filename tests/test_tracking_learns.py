"""A tracker trained briefly on the moving-shapes videos (the demo's recipe) keeps ids better than the same
detections associated by nearest centre (slow: the demo's few minutes of CPU training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from centernet.tasks.tracking import GreedyAssociator
from centernet.tasks.tracking.metrics import evaluate_tracking
from centernet.tasks.tracking.online import associate_recorded


@pytest.mark.slow
def test_a_trained_tracker_switches_fewer_ids_than_nearest_centre_matching(tmp_path: Path):
    import lightning as L

    from centernet.data.tracking_datamodule import TrackingDataModule
    from centernet.inference.inputs import read_rgb
    from centernet.inference.tracker import Tracker
    from centernet.training.module import CenterNetModule

    L.seed_everything(0, verbose=False)
    data = TrackingDataModule("moving_shapes", image_size=128, batch_size=16, num_workers=0, shapes_root=str(tmp_path))
    module = CenterNetModule(
        1, ["shape"], [1], 128, task="tracking", backbone={"name": "resnet18"},
        neck={"name": "lateral", "channels": (128, 64, 64)}, optimizer={"lr": 0.004, "warmup_steps": 100},
    )  # fmt: skip
    trainer = L.Trainer(accelerator="cpu", max_epochs=10, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(tmp_path / "tracker.ckpt")
    tracker = Tracker.from_checkpoint(tmp_path / "tracker.ckpt")
    with_motion, nearest = {}, {}
    for sequence in data.val_source.sequences:
        detections = []
        for _ in tracker.track(read_rgb(frame.path) for frame in sequence.frames):
            detections.append(tracker.online.last_detections)
        ground_truth = [(frame.track_ids, frame.boxes) for frame in sequence.frames]
        for use_motion, results in ((True, with_motion), (False, nearest)):
            frames = associate_recorded(detections, GreedyAssociator(0.3, 0.4, max_age=10), use_motion)
            results[sequence.name] = (ground_truth, frames)
    ours, baseline = evaluate_tracking(with_motion), evaluate_tracking(nearest)
    assert ours["MOTA"] > 0.7  # it learnt to detect
    # Identity is kept better on the same detections: more of each object's frames under one id (IDF1, AssA) and
    # no more id switches (the demo's run: IDF1 0.814 vs 0.791, AssA 0.668 vs 0.645, 7 vs 7 switches).
    assert ours["IDSW"] <= baseline["IDSW"], (ours, baseline)
    assert ours["IDF1"] > baseline["IDF1"] and ours["AssA"] > baseline["AssA"], (ours, baseline)
    assert np.isfinite(ours["HOTA"])
