import time, json
from centernet.cli import main

def test_smoke(tiny_checkpoint, shapes_root, tmp_path):
    t=time.time()
    print("ckpt", tiny_checkpoint)
    main(["validate", "--checkpoint", tiny_checkpoint, "--output", str(tmp_path/"v")])
    print(json.loads((tmp_path/"v"/"metrics.json").read_text())["map_50"], time.time()-t)
    main(["export", "--checkpoint", tiny_checkpoint, "--output", str(tmp_path/"m.onnx"), "--dynamic"])
    main(["export", "--checkpoint", tiny_checkpoint, "--format", "torchscript", "--output", str(tmp_path/"m.torchscript")])
    main(["validate", "--checkpoint", str(tmp_path/"m.onnx"), "--images", str(shapes_root)+"/shapes-v1-seed0-train16-val8-64px/val/images", "--annotations", str(shapes_root)+"/shapes-v1-seed0-train16-val8-64px/val/annotations.json", "--output", str(tmp_path/"v2"), "--keep-resolution"])
    main(["predict", "--checkpoint", str(tmp_path/"m.torchscript"), "--source", str(shapes_root)+"/shapes-v1-seed0-train16-val8-64px/val/images/*.png", "--output", str(tmp_path/"p"), "--save-txt"])
    import subprocess; print(subprocess.run(["ls","-R",str(tmp_path)],capture_output=True,text=True).stdout)
