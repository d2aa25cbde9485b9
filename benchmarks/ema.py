"""Does the weight average (EMA) help? Train the demo config once and evaluate the raw weights and several EMAs.

The average does not influence training, so one run measures every decay:

    python benchmarks/ema.py                         # the demo: 6 epochs
    python benchmarks/ema.py --epochs 3 --decays 0.99,0.998 --warmups 50,100
"""

from __future__ import annotations

import argparse
import tempfile
import time

import lightning as L

from centernet.training.cli import CenterNetCLI, config_path
from centernet.training.ema import EMA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--decays", default="0.99,0.998,0.9998")
    parser.add_argument("--warmups", default="50,200,2000", help="warm-up steps, one per decay")
    args = parser.parse_args()
    decays = [float(d) for d in args.decays.split(",")]
    warmups = [int(w) for w in args.warmups.split(",")]
    emas = [EMA(decay=d, warmup_steps=w) for d, w in zip(decays, warmups, strict=True)]

    with tempfile.TemporaryDirectory() as root:
        cli = CenterNetCLI(args=["--config", str(config_path("demo")), f"--trainer.default_root_dir={root}"], run=False)
        model, data = cli.model, cli.datamodule
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=args.epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            callbacks=emas,
        )
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        print(f"trained {args.epochs} epochs, {trainer.global_step} steps in {time.perf_counter() - start:.0f} s")

        evaluator = L.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
        )
        raw = {k: v.clone() for k, v in model.state_dict().items()}
        rows = [("raw weights", raw)]
        for ema in emas:
            average = {k: v.to(raw[k].dtype) for k, v in ema.average().items()}
            rows.append((f"EMA decay {ema.decay} warm-up {ema.warmup_steps}", average))
        print(f"{'weights':40s} {'AP':>7s} {'AP50':>7s} {'AP75':>7s} {'AR100':>7s}")
        for name, state in rows:
            model.load_state_dict(state)
            metrics = evaluator.validate(model, datamodule=data, verbose=False)[0]
            print(
                f"{name:40s} {metrics['val/map']:7.4f} {metrics['val/map_50']:7.4f} "
                f"{metrics['val/map_75']:7.4f} {metrics['val/mar_100']:7.4f}"
            )


if __name__ == "__main__":
    main()
