#!/usr/bin/env python3
"""Prints the cycles between src/'s top-level modules (their strongly
connected components, from `crate::` paths outside #[cfg(test)]), and the
edges inside each.

    scripts/module-cycles.py [src]
    scripts/module-cycles.py --check scripts/module-cycles.allow [src]

--check (in .ci/run) fails on an edge inside a cycle that the allow-list does
not name (a new dependency that closes or widens a cycle), and on a listed
edge that no longer exists or no longer sits in a cycle (the list must shrink
with the code): the allow-list may only get shorter."""
import re,glob,os,sys,collections
args=sys.argv[1:]
allow_file=None
if args[:1]==['--check']:
    if len(args)<2: sys.exit(__doc__)
    allow_file=args[1]; args=args[2:]
root=args[0] if args else 'src'
mods=collections.defaultdict(set)
for f in glob.glob(root+'/**/*.rs',recursive=True):
    rel=os.path.relpath(f,root)
    top=rel.split('/')[0].replace('.rs','')
    if top in ('lib','main'): continue
    text=open(f).read()
    # Test modules come last in a file: what follows #[cfg(test)] is not counted.
    text=text.split('#[cfg(test)]')[0]
    for m in re.findall(r'crate::([a-z_]+)',text):
        if m!=top: mods[top].add(m)
# Tarjan SCC
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in mods.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in list(mods): 
    if v not in idx: sc(v)
if not allow_file:
    for comp in sccs:
        if len(comp)>1: print(sorted(comp))
    for comp in sccs:
        if len(comp)>1:
            for a in sorted(comp):
                print(' ',a,'->',sorted(x for x in mods[a] if x in comp))
if allow_file:
    found={(a,b) for comp in sccs if len(comp)>1 for a in comp for b in mods[a] if b in comp}
    allowed=set()
    for line in open(allow_file):
        line=line.split('#')[0].strip()
        if line:
            a,_,b=line.partition('->'); allowed.add((a.strip(),b.strip()))
    new=sorted(found-allowed); gone=sorted(allowed-found)
    for a,b in new: print(f'module-cycles: {a} -> {b} is a new edge inside a cycle; cut it (or, if it truly belongs, say why in review)')
    for a,b in gone: print(f'module-cycles: {a} -> {b} is no longer in a cycle: remove it from {allow_file}')
    if new or gone: sys.exit(1)
    print(f'module-cycles: ok ({len(found)} edges inside cycles, all on the allow-list)')

