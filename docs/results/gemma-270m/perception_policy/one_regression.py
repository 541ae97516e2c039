"""Ablation: the seventeenth's policy fitted as one regression for every answer (no perception
regression), written into a copy of the model."""
import shutil, sys
from pathlib import Path
from pixsearch.abstention import SEEN_READ
from pixsearch.eval import abstention as A
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
runs = sys.argv[3:]
if dst.exists(): shutil.rmtree(dst)
shutil.copytree(src, dst)
outs, where, _ = A.pooled_outcomes(runs)
for o in outs: o.features[SEEN_READ] = 0.0
pol, _ = A.calibrate(outs, fitted_on=where + " (one regression)")
assert pol.perception is None
held = A.cross_validate(outs, folds=5)
for i, r in enumerate(runs):
    v = [x for (k, _), x in held.items() if k == i]
    print(r, 'held out %+.1f' % (100 * sum(v) / len(v)))
print('threshold', pol.threshold, A.write_policy(dst, pol))
