"""Where CHGNet's time per MD step goes on this machine: graph construction (CPU) vs. the
model (GPU). Prints one JSON line. Used once to explain docs/BENCHMARKS.md's GPU figures.

    python3 scripts/device/chgnet_profile.py --atoms 1000 --device cuda
"""
import argparse, json, time

p = argparse.ArgumentParser()
p.add_argument("--atoms", type=int, default=1000)
p.add_argument("--device", default="cuda")
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()

import numpy as np
import torch
from ase.build import bulk
from chgnet.model import CHGNet
from pymatgen.io.ase import AseAtomsAdaptor

n = max(1, round((a.atoms / 4) ** (1 / 3)))
atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((n, n, n))
atoms.rattle(0.01, seed=1)
structure = AseAtomsAdaptor.get_structure(atoms)
model = CHGNet.load(use_device=a.device, verbose=False)
conv = model.graph_converter
out = {"atoms": len(atoms), "device": a.device, "torch_threads": torch.get_num_threads(),
       "converter_algorithm": getattr(conv, "algorithm", "?")}

def sync():
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()

def timed(fn):
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(a.repeats):
        t = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))

graph = conv(structure)
out["graph_s"] = timed(lambda: conv(structure))
out["model_s"] = timed(lambda: model.predict_graph(graph, task="efsm", batch_size=1))
out["predict_structure_s"] = timed(lambda: model.predict_structure(structure, task="efsm"))
print(json.dumps(out), flush=True)
