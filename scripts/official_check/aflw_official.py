# ruff: noqa: E402, E702  (a script: the repository and the official code go on sys.path first)
"""3DDFA's benchmark_aflw2000.py ($OFFICIAL_DIR/3DDFA, unchanged) on make_aflw_case(12, 0)."""
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OFFICIAL = Path(os.environ.get('OFFICIAL_DIR', '/tmp/official'))  # the official sources, unchanged
sys.path.insert(0, str(REPO))
from tests.lightning_modules.aflw2000_case import make_aflw_case

c = make_aflw_case(12, 0)
d = OFFICIAL / '3DDFA' / 'test.configs'
np.save(f'{d}/AFLW2000-3D.pose.npy', c['pose']); np.save(f'{d}/AFLW2000-3D.pts68.npy', c['pts68'])
np.save(f'{d}/AFLW2000-3D-Reannotated.pts68.npy', c['pts68_re']); np.save(f'{d}/AFLW2000-3D_crop.roi_box.npy', c['roi'])
os.chdir(OFFICIAL / '3DDFA')
sys.path.insert(0, str(OFFICIAL / '3DDFA'))
import benchmark_aflw2000 as b

out = {}
for opt in ('ori', 're'):
    nl = b.calc_nme(c['fit'].copy(), option=opt)
    out[opt] = {'per_image': nl.tolist(), 'ana': [float(v) for v in b.ana(nl)]}
print(json.dumps(out))
