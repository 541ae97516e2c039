"""Diagnose ego region masks: right referent? candidate recall among components?"""
import sys, numpy as np, torch
from pathlib import Path
import torch.nn.functional as F
from scipy import ndimage
from pixsearch.predictor import load_model
from pixsearch.train.data import load_split, trajectory_sample, make_batch
from pixsearch.train.features import FeatureCache
from pixsearch.masks import rle_to_mask

torch.manual_seed(0)
world = Path.home() / ".cache/pixsearch/world"
model = load_model("mini"); model.eval()
recs = [r for r in load_split(world, sys.argv[1] if len(sys.argv) > 1 else "val")
        if r.ego and any(s.get("type") == "region" for s in r.searches)][: int(sys.argv[2]) if len(sys.argv) > 2 else 120]
fc = FeatureCache(model, world, "/tmp/diagcache", progress=False)
fc.precompute([r.image for r in recs])
M = model.mask_size
stats = dict(n=0, right=0, iou=[], best_comp=[], nents=[], comp_n=[])
for r in recs:
    s = trajectory_sample(r)
    b = make_batch(model, [s], fc)
    with torch.no_grad():
        out = model(b)
    logits = out.mask_logits[:, 0].float()
    regions = [x for x in r.searches if x.get("type") == "region"]
    ents = [torch.from_numpy(rle_to_mask(m).astype(np.float32)) for m in r.masks]
    ents = [F.interpolate(e[None, None], size=(M, M), mode="nearest")[0, 0].bool() for e in ents]
    for k, sr in enumerate(regions):
        t = sr["entity"]
        pred = logits[k] > 0
        inter = [float((pred & e).sum()) for e in ents]
        iou_t = float((pred & ents[t]).sum()) / max(float((pred | ents[t]).sum()), 1)
        stats["n"] += 1
        stats["right"] += int(int(np.argmax(inter)) == t and max(inter) > 0)
        stats["iou"].append(iou_t)
        stats["nents"].append(len(ents))
        # candidate recall: components of a low threshold
        p = torch.sigmoid(logits[k]).numpy()
        best = 0.0
        for th in (0.5, 0.2, 0.05, 0.01):
            lab, n = ndimage.label(p > th, structure=np.ones((3, 3)))
            for c in range(1, n + 1):
                cm = torch.from_numpy(lab == c)
                iou = float((cm & ents[t]).sum()) / max(float((cm | ents[t]).sum()), 1)
                best = max(best, iou)
        stats["best_comp"].append(best)
print("region searches", stats["n"], "right referent", stats["right"] / stats["n"])
print("mean IoU target", np.mean(stats["iou"]), "IoU>0.5", np.mean(np.array(stats["iou"]) > 0.5))
print("best component IoU mean", np.mean(stats["best_comp"]), ">0.5", np.mean(np.array(stats["best_comp"]) > 0.5))
print("entities per scene", np.bincount(stats["nents"]))
