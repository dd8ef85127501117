"""Diagnostic only (python experiments/scripts/export_rendition_diagnostic.py [--model DIR]; writes nothing): does a stage-1
model call the same validation crops the same way when they arrive as 360 x 363 px analyser exports, and would
first bringing an export back to the training crops' 256-px grid undo the difference?

The shared PBC crops were made from 360-px CellaVision exports, centre-cropped, resized to 256 px and saved as JPEG
q90. Each real validation crop is scored (models.engine.infer.CellPredictor, the model's default runtime) as stored, as a
360 x 363 export (core.preprocess.as_export), and as that export resized back to 256 px with Pillow's bilinear,
bicubic or Lanczos filter (one variant then saved as JPEG q90 again). Printed per variant: the fine-class macro
sensitivity on the real PBC crops (SNE / BNE / MMY / MY / PMY), the share of all crops whose top type matches the
as-stored call, the mean L1 distance of the type probabilities to it, and the mean pixel difference of the network's
input. No model is chosen with it and the test split is not read. About 4 minutes on 2 cores.

Measured 2026-12-07, shipped model cellnet-20261206-1703-att202612061707 (bf16, 2-core AMD EPYC):

| variant | fine classes | same call | L1 | pixel difference |
|---|---|---|---|---|
| as stored (256 px) | 85.79 % (79.8 / 87.9 / 84.8 / 85.7 / 90.7) | 100 % | 0 | 0 |
| 360-px export | 83.25 % (79.8 / 86.0 / 83.3 / 85.7 / 81.4) | 97.92 % | 0.0399 | 1.83 |
| export -> 256 bilinear | 80.84 % | 97.18 % | 0.0585 | 0.99 |
| export -> 256 bicubic | 83.58 % | 98.37 % | 0.0389 | 0.93 |
| export -> 256 Lanczos | 84.24 % | 98.44 % | 0.0339 | 0.93 |
| export -> 256 Lanczos, JPEG q90 | 83.76 % | 96.51 % | 0.0729 | 1.09 |

A pixel difference of about one grey level moves 1.6-3.5 % of the calls, most at the fine-class boundaries, so no
decode path restores the as-stored figure; the fix tried was training with a rendition jitter
(models/configs/cellnet_192_fov08_rendition.yaml).
"""
import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from core.datasets import load_all
from core.metrics import one_vs_rest
from core.preprocess import as_export, load_cell_image
from core.taxonomy import load_taxonomy
from models.engine.evaluate import FINE_CLASSES
from models.engine.infer import CellPredictor


def back_to_256(blob: bytes, resample: Image.Resampling, jpeg: bool) -> bytes:
    img = Image.open(io.BytesIO(blob)).convert("RGB").resize((256, 256), resample)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90) if jpeg else img.save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="stage-1 model folder (default: the shipped one)")
    args = ap.parse_args()
    types = np.array(load_taxonomy().type_abbrs)
    real = load_all(None)
    real = real[real.split == "val"].reset_index(drop=True)
    pbc_single = ((real.source == "pbc") & (real.cell_types.map(len) == 1)).values
    truth = np.array([t[0] for t in real.cell_types[pbc_single]])
    predictor = CellPredictor(args.model)
    stored = [Path(p).read_bytes() for p in real.path]
    exports = [as_export(b, 360) for b in stored]
    R = Image.Resampling
    variants = {"as stored (256 px)": stored, "360-px export": exports,
                "export -> 256 bilinear": [back_to_256(b, R.BILINEAR, False) for b in exports],
                "export -> 256 bicubic": [back_to_256(b, R.BICUBIC, False) for b in exports],
                "export -> 256 Lanczos": [back_to_256(b, R.LANCZOS, False) for b in exports],
                "export -> 256 Lanczos, JPEG q90": [back_to_256(b, R.LANCZOS, True) for b in exports]}
    ref_probs = ref_pixels = None
    for name, blobs in variants.items():
        pixels = np.stack([load_cell_image(b, predictor.input_px, field_of_view=predictor.field_of_view) for b in blobs])
        probs = predictor.predict_arrays(pixels).type_probs
        if ref_probs is None:
            ref_probs, ref_pixels = probs, pixels
        rows = one_vs_rest(truth, types[probs.argmax(1)][pbc_single], FINE_CLASSES)
        per_type = " / ".join(f"{100 * r['sensitivity']:.1f}" for r in rows)
        print(f"{name}: fine classes {100 * np.nanmean([r['sensitivity'] for r in rows]):.2f} % ({per_type}); "
              f"same call {100 * np.mean(probs.argmax(1) == ref_probs.argmax(1)):.2f} %; "
              f"L1 {np.abs(probs - ref_probs).sum(1).mean():.4f}; "
              f"pixel difference {np.abs(pixels.astype(float) - ref_pixels).mean():.2f}", flush=True)


if __name__ == "__main__":
    main()
