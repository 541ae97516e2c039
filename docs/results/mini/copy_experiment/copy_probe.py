"""Teacher-forced copy probe: can a model copy a fact out of the evidence for entities it never
trained on, and for invented names?

    python docs/results/mini/copy_experiment/copy_probe.py MODEL [MODEL ...] [--n 300]

Samples: the Stage-0 reading trajectories (`train/reading.py`) of the `test_unseen` entities
(in the knowledge base, never in training), as they are and renamed (`train/renaming.py`).
Reported per model: mean NLL of the answer tokens (after the last `</information>`), the
share of answer tokens the argmax gets right, and the share of answers right in every token.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from pixsearch.data.records import read_records
from pixsearch.predictor import load_model
from pixsearch.train.data import make_batch
from pixsearch.train.reading import reading_samples
from pixsearch.train.renaming import Renamer, world_names


def probe(model, samples, batch_size: int = 16) -> tuple[float, float, float]:
    close = model.tokens.id("info_close")
    nll, tok_right, tok_n, exact = 0.0, 0, 0, 0
    for i in range(0, len(samples), batch_size):
        batch = make_batch(model, samples[i:i + batch_size], None)
        with torch.no_grad():
            logits = model(batch).logits
        for b in range(logits.shape[0]):
            ids = batch.input_ids[b]
            last = (ids == close).nonzero().max().item()
            pos = [t for t in range(last + 1, ids.shape[0])
                   if batch.loss_mask[b, t] and batch.attention_mask[b, t]]
            lp = logits[b, [t - 1 for t in pos]].float().log_softmax(-1)
            tgt = ids[pos]
            nll += -lp.gather(1, tgt[:, None]).sum().item()
            right = (lp.argmax(-1) == tgt)
            tok_right += int(right.sum())
            tok_n += len(pos)
            exact += bool(right.all())
    return nll / tok_n, tok_right / tok_n, exact / len(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--world", default=str(Path.home() / ".cache/pixsearch/world"))
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    torch.manual_seed(0)
    world = Path(a.world)
    recs = read_records(world / "test_unseen.jsonl")
    samples = reading_samples(world, recs, passes=1)
    samples = random.Random(0).sample(samples, min(a.n, len(samples)))
    renamed = [Renamer(world_names(world), seed=1).rename(s) for s in samples]
    print(f"{len(samples)} reading samples of test_unseen entities")
    print("model | unseen: nll / token acc / exact | renamed: nll / token acc / exact")
    for m in a.models:
        model = load_model(m).eval()
        u, r = probe(model, samples), probe(model, renamed)
        print(f"{m} | {u[0]:.3f} / {u[1]:.3f} / {u[2]:.3f} | {r[0]:.3f} / {r[1]:.3f} / {r[2]:.3f}")


if __name__ == "__main__":
    main()
