# ruff: noqa: E402, E702  (a script: the repository and the official code go on sys.path first)
"""Score a (ground truth, submission) pair with the official DAD-3DHeads benchmark code
($OFFICIAL_DIR/DAD-3DHeads, the released files unchanged; stubs/ stand in for kaolin's CUDA Chamfer,
cv2 and fire; .cuda() a no-op).
usage: python run_official.py FLAME_DIR GT_JSON SUB_JSON OUT_JSON"""
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

OFFICIAL = Path(os.environ.get('OFFICIAL_DIR', '/tmp/official'))
sys.path.insert(0, str(Path(__file__).resolve().parent / 'stubs'))
flame_dir, gt_path, sub_path, out_path = (Path(a).resolve() for a in sys.argv[1:5])
root = OFFICIAL / 'DAD-3DHeads'
st = root / 'dad_3dheads_benchmark/data/static'
with open(flame_dir / 'FLAME_NEUTRAL.pkl', 'rb') as f:
    faces = pickle.load(f, encoding='latin1')['f']
torch.save(torch.LongTensor(np.asarray(faces).astype(np.int64)), st / 'flame_mesh_faces.pt')
for n in ('flame_static_embedding.pkl', 'flame_dynamic_embedding.npy'):
    shutil.copy(flame_dir / n, st / n)
ms = root / 'model_training/model/static'
shutil.copy(flame_dir / 'head_indices.npy', ms / 'head_indices.npy')
shutil.copy(flame_dir / 'flame_indices/face.npy', ms / 'flame_indices/face.npy')
torch.Tensor.cuda = lambda self, *a, **k: self
os.chdir(root / 'dad_3dheads_benchmark')
sys.path.insert(0, str(root / 'dad_3dheads_benchmark'))
import benchmark

ev = benchmark.DADEvaluator(str(gt_path), str(sub_path))
overall, _ = ev()
sub = benchmark.read_json(str(sub_path))
per = {}
for a in ev._get_data(str(gt_path)):
    if a.id in sub:
        p = sub[a.id]
        per[a.id] = {'nme': float(ev.nme(a, p)), 'z5': float(ev.zn(a, p, n=5)),
                     'chamfer': float(ev.chamfer_distance(a, p)), 'pose_error': float(ev.pose_error(a, p))}
out = {'overall': {k: float(v) for k, v in overall.items()}, 'per_image': per}
Path(out_path).write_text(json.dumps(out, indent=1))
print(json.dumps(out, indent=1))
