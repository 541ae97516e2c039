import torch
from pathlib import Path
from pixsearch.model.checkpoint import load_checkpoint
from pixsearch.train.data import load_split
from pixsearch.images import load_image
from pixsearch.model.proposals import heatmap_peaks
torch.set_num_threads(2)
m = load_checkpoint(Path.home()/".cache/pixsearch/models/mini-referent").eval()
w = Path.home()/".cache/pixsearch/world"
recs = [r for r in load_split(w, "val") if r.ego][:12:3]
for r in recs:
    im = load_image(w/r.image)
    vis = m.stack_images([m.preprocess(im)])
    with torch.no_grad():
        _, emb = m.encode_images(vis)
        heat = torch.sigmoid(m.proposer.centre_logits(emb)[0])
        pts = heatmap_peaks(heat, 10, 0.0)
        lg, sc = m.proposer.decode_points(emb, pts[None])
    print(r.id, len(r.masks), "heat max %.3f" % heat.max(), "top peaks", [round(float(heat.flatten().topk(5).values[i]),3) for i in range(5)])
    print("   scores", [round(float(x),2) for x in sc[0]], "areas", [int((l>0).sum()) for l in lg[0]])
