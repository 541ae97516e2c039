"""Engine vs BatchedEngine on the first N test records of the world, with the default decoding
(CRAG-MM deadlines on): prints every record whose answers differ, with the batched answer's
stop reason, and the count of identical answers.

    python docs/results/gemma-270m/batch_equality.py [MODEL] [N]
"""
import json
import sys

from pixsearch import Predictor, paths
from pixsearch.decode.batched import BatchedEngine
from pixsearch.decode.batched_request import BatchConfig
from pixsearch.decode.engine import Engine
from pixsearch.images import load_image

model = sys.argv[1] if len(sys.argv) > 1 else "gemma-270m"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 16
world = paths.world_dir()
p = Predictor.load(model, str(world / "index"))
records = [json.loads(x) for x in (world / "test.jsonl").read_text().splitlines()[:n]]
jobs = [(r["question"], load_image(world / r["image"])) for r in records]
single = Engine(p.model, p.search_api, p.decode_config)
alone = [single.answer(q, im) for q, im in jobs]
with BatchedEngine(p.model, p.search_api, p.decode_config, BatchConfig(max_batch=8)) as engine:
    together = [f.result(300) for f in [engine.submit(q, im) for q, im in jobs]]
same = 0
for rec, a, b in zip(records, alone, together):
    if a.text == b.text and a.trace.display == b.trace.display:
        same += 1
        continue
    print(f"{rec['id']}: alone {a.text!r} ({a.trace.stop_reason}); "
          f"batched {b.text!r} ({b.trace.stop_reason}: {b.trace.failure})")
print(f"identical: {same}/{len(records)}")
