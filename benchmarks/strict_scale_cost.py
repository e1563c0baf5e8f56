"""Cost of the strict scale test's extra pass (each image, its 2x zoom and its 2x shrink; centre
values only) per block, resnet18 random:0, one thread, and of the bootstrap statistic.

    python benchmarks/strict_scale_cost.py IMAGE_DIR 1.1,4.1

Prints wall and CPU seconds of this process per block (on a shared machine CPU time is the
steadier number; JPEG decoding runs in a DataLoader process and is not counted in it)."""
import json
import sys
import time

import torch

from rsi_core.measure.metrics import tracking_test
from rsi_core.measure.scale_test import stream_scaled
from rsi_core.model.anatomy import blocks
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model

if __name__ == "__main__":
    torch.set_num_threads(1)
    model = load_model("resnet18", "random:0", "cpu")
    imgs = ImageSet.from_dir(sys.argv[1] if len(sys.argv) > 1 else None)
    out = {"images": len(imgs), "threads": 1}
    for b in (sys.argv[2] if len(sys.argv) > 2 else "1.1,4.1").split(","):
        n = next(x for x in blocks(model) if x.name == b).channels
        t, c = time.time(), time.process_time()
        a = stream_scaled(model, imgs, b, range(n), progress=False)
        t1, c1 = time.time(), time.process_time()
        tracking_test(a["i_x"], a["b_x"], a["b_sx"], a["i_sinvx"])
        out[b] = {"pass_wall_s": t1 - t, "pass_cpu_s": c1 - c, "test_wall_s": time.time() - t1,
                  "test_cpu_s": time.process_time() - c1}
        print(b, out[b], flush=True)
    print(json.dumps(out))
