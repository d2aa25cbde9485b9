"""DataLoader workers start even after the main process has used OpenCV's thread pool."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_workers_do_not_hang_after_opencv_ran_in_the_main_process(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import cv2
        import numpy as np
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
        from helpers.writers import noise_item, write_coco
        from centernet.data import CenterNetDataModule

        big = np.random.default_rng(0).integers(0, 255, (1280, 1280, 3), dtype=np.uint8)
        cv2.resize(big, (512, 512), interpolation=cv2.INTER_AREA)  # the main process uses OpenCV's thread pool
        items = [noise_item(f"i{{k}}", 64, 64, [(4, 4, 30, 30)], [0], seed=k) for k in range(4)]
        images, path = write_coco(Path({str(tmp_path)!r}), items, ["a"])
        dm = CenterNetDataModule(
            dataset="coco", train_images=str(images), train_annotations=str(path), val_images=str(images),
            val_annotations=str(path), image_size=64, batch_size=2, num_workers=1,
        )
        dm.setup("fit")
        print(sum(len(batch["image"]) for batch in dm.train_dataloader()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "4"
