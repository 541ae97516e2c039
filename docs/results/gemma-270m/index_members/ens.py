"""Scratch: embedders saved by `../not_shipped_regions/exp2.py` (SAVE=DIR), alone and averaged
(every subset), searched with a run's own first region masks and the gold masks
(as `region_retrieval.py`); the table is `ensemble.md`.

    python ens.py DIR0,DIR1,DIR2 VAL900_RUN TEST_RUN TEST_UNSEEN_RUN
"""
import sys, json, itertools, numpy as np, torch
sys.path.insert(0,str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from pathlib import Path
from PIL import Image
from pixsearch.retrieval.learned import LearnedImageEmbedder
from pixsearch.retrieval.crop import crop
from region_retrieval import masks_of
W=Path(__import__('os').environ.get('PIXSEARCH_HOME','~/.cache/pixsearch')).expanduser()/'world'; IDX=W/'index/current'
keys=json.load(open(IDX/'image.keys.json'))['keys']
kbimgs=[Image.open(W/'kb/images'/f'{k}.png') for k in keys]
embs=[LearnedImageEmbedder.load(d) for d in sys.argv[1].split(',')]
runs=sys.argv[2:]
items={r:masks_of(Path(r)) for r in runs}; imgs={}
crops={r:{key:[crop(imgs.setdefault(i['image'],Image.open(i['image']).convert('RGB')),i[key])[0] for i in items[r]] for key in ('mask','gold')} for r in runs}
S={}
for m,e in enumerate(embs):
    kv=e.kb_vectors(kbimgs)
    for r in runs:
        for key in ('mask','gold'): S[m,r,key]=e.embed_images(crops[r][key])@kv.T
for k in range(1,len(embs)+1):
  for combo in itertools.combinations(range(len(embs)),k):
    out=[]
    for r in runs:
        it=items[r]; on=np.array([i['on'] for i in it])
        res={}
        for key in ('mask','gold'):
            s=np.mean([S[m,r,key] for m in combo],0)
            res[key]=np.array([keys[a].split('_')[0]==i['code'] for a,i in zip(s.argmax(1),it)])
        out.append('%.3f (%d) g%.3f'%(res['mask'].mean(),(~res['mask'][on]).sum(),res['gold'].mean()))
    print(combo,' | '.join(out),flush=True)
