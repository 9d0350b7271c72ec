#!/usr/bin/env python3
"""Prints the cycles between src/'s top-level modules (their strongly
connected components, from `crate::` paths outside #[cfg(test)]), and the
edges inside each. Usage: scripts/module-cycles.py [src]"""
import re,glob,os,sys,collections
root=sys.argv[1] if len(sys.argv)>1 else 'src'
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
for comp in sccs:
    if len(comp)>1: print(sorted(comp))
for comp in sccs:
    if len(comp)>1:
        for a in sorted(comp):
            print(' ',a,'->',sorted(x for x in mods[a] if x in comp))
