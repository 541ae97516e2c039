"""The scratch script behind the seed table of the "region examples" section (README.md):
trains the index's image embedder from scratch, on KB views only (`kb`) or with crops of the
world's train scenes by perturbed gold masks (`scene`; `photo`: those crops jittered), and
searches a run's own first region masks and the gold masks in it (as `region_retrieval.py`).
Its sampling differs from `pixsearch/retrieval/regions.py` in small ways (flags only).

    SEED=1 python exp2.py photo 0.4 2000 VAL900_RUN TEST_RUN TEST_UNSEEN_RUN
    SAVE=DIR SEED=1 python exp2.py ...   # also keeps the trained embedder, for ../index_members/ens.py
"""
import sys, json, time, numpy as np, torch, torch.nn.functional as F
sys.path.insert(0,str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from pathlib import Path
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion
from pixsearch.masks import rle_to_mask
from pixsearch.retrieval.learned import LearnedImageEmbedder, CropNet
from pixsearch.retrieval.augment import random_views, to_tensor, photometric
from pixsearch.retrieval.crop import crop
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.retrieval.config import LearnedConfig
from region_retrieval import masks_of
W=Path(__import__('os').environ.get('PIXSEARCH_HOME','~/.cache/pixsearch')).expanduser()/'world'; IDX=W/'index/current'
keys=json.load(open(IDX/'image.keys.json'))['keys']
mode=sys.argv[1]; frac=float(sys.argv[2]) if len(sys.argv)>2 else 0.25; steps=int(sys.argv[3]) if len(sys.argv)>3 else 2000
base=LearnedImageEmbedder.load(IDX)
SEED=int(__import__("os").environ.get("SEED","0")); rng=np.random.default_rng(SEED)
cfg=__import__('dataclasses').replace(base.config, steps=steps, seed=SEED, members=1)
def perturb(m, others):
    x0=np.flatnonzero(m.any(0)); y0=np.flatnonzero(m.any(1)); s=min(x0[-1]-x0[0], y0[-1]-y0[0])+1
    u=rng.random()
    if u<0.45: m=binary_dilation(m, iterations=max(1,int(rng.uniform(0.02,0.15)*s)))
    elif u<0.65: 
        e=binary_erosion(m, iterations=max(1,int(rng.uniform(0.02,0.12)*s)))
        m=e if e.sum()>0.3*m.sum() else m
    elif u<0.85 and others:
        o=others[rng.integers(len(others))]
        near=binary_dilation(m, iterations=max(2,int(rng.uniform(0.05,0.3)*s)))
        m=m|(o&near)
    if rng.random()<0.3:  # cut a side
        ys,xs=np.flatnonzero(m.any(1)),np.flatnonzero(m.any(0)); h=ys[-1]-ys[0]+1; w=xs[-1]-xs[0]+1
        side=rng.integers(4); c=rng.uniform(0.05,0.2)
        m=m.copy()
        if side==0: m[:ys[0]+int(c*h)]=0
        elif side==1: m[ys[-1]-int(c*h)+1:]=0
        elif side==2: m[:, :xs[0]+int(c*w)]=0
        else: m[:, xs[-1]-int(c*w)+1:]=0
    return m if m.sum()>20 else None
def scene_bank(n_per=4):
    t=time.time(); crops=[]; rows=[]
    seen=set()
    for l in open(W/'train.jsonl'):
        r=json.loads(l)
        if r['image'] in seen or not r.get('masks'): continue
        seen.add(r['image'])
        img=Image.open(W/r['image']).convert('RGB')
        golds=[rle_to_mask(m).astype(bool) for m in r['masks']]
        for j,e in enumerate(r['entities']):
            if not e.get('in_kb') or e['code']+'_flag' not in keys or j>=len(golds): continue
            others=[g for k,g in enumerate(golds) if k!=j]
            for _ in range(n_per):
                m=perturb(golds[j], others) if rng.random()<0.85 else golds[j]
                if m is None: continue
                c,_=crop(img,m); crops.append(c.resize((cfg.input_width,cfg.input_height),Image.BOX)); rows.append(keys.index(e['code']+'_flag'))
    x=to_tensor(crops,(cfg.input_width,cfg.input_height)); print('bank',x.shape,time.time()-t,flush=True)
    return x, torch.tensor(rows)
kbimgs=[Image.open(W/'kb/images'/f'{k}.png') for k in keys]
if mode=='base':
    emb=base
else:
    xb,rb=scene_bank() if mode!='kb' else (torch.zeros(1,3,48,64),torch.zeros(1,dtype=torch.long))
    emb=LearnedImageEmbedder.create(cfg)
    g=torch.Generator().manual_seed(cfg.seed); torch.manual_seed(cfg.seed)
    src=to_tensor(kbimgs,(cfg.source_width, round(cfg.source_width*3/4))); n=len(src)
    protos=torch.nn.Parameter(F.normalize(torch.randn(n,cfg.dim,generator=g),dim=-1))
    opt=torch.optim.AdamW(list(emb.nets[0].parameters())+[protos],lr=cfg.lr,weight_decay=1e-4)
    sch=torch.optim.lr_scheduler.OneCycleLR(opt,cfg.lr,total_steps=cfg.steps,pct_start=0.1)
    emb.nets[0].train(); t=time.time(); ns=int(frac*cfg.batch_size) if mode!='kb' else 0
    for step in range(cfg.steps):
        idx=torch.randint(0,n,(cfg.batch_size-ns,),generator=g)
        v=random_views(src[idx],(cfg.input_height,cfg.input_width),cfg.augment,g)
        j=torch.randint(0,len(xb),(ns,),generator=g)
        sv=photometric(xb[j],cfg.augment,g).clamp(0,1) if mode=='photo' else xb[j]
        v=torch.cat([v,sv]); y=torch.cat([idx,rb[j]])
        logits=cfg.scale*emb.nets[0](v)@F.normalize(protos,dim=-1).T
        loss=F.cross_entropy(logits,y); opt.zero_grad(); loss.backward(); opt.step(); sch.step()
        if step%500==0: print(step,loss.item(),time.time()-t,flush=True)
    emb.nets[0].eval(); emb.prototypes=[protos.detach().clone()]
kv=torch.from_numpy(emb.kb_vectors(kbimgs))
if __import__('os').environ.get('SAVE'): emb.save(Path(__import__('os').environ['SAVE']))
def evalrun(run):
    items=masks_of(Path(run)); imgs={}
    def top(key):
        cs=[crop(imgs.setdefault(i['image'],Image.open(i['image']).convert('RGB')),i[key])[0] for i in items]
        q=torch.from_numpy(emb.embed_images(cs)); s=q@kv.T
        return np.array([keys[a].split('_')[0]==i['code'] for a,i in zip(s.argmax(1).tolist(),items)])
    own,gold=top('mask'),top('gold'); on=np.array([i['on'] for i in items])
    print(run, 'n',len(items),'own R@1 %.3f'%own.mean(),'on-target wrong',(~own[on]).sum(),'of',on.sum(),'gold R@1 %.3f'%gold.mean(),flush=True)
for run in sys.argv[4:]: evalrun(run)
