# ruff: noqa: E402, E702  (a script: the repository and the official code go on sys.path first)
"""Write tests/fitting/dad_benchmark_case.make_case(seed) as json files. usage: python scripts/official_check/make_case.py OUTDIR"""
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OFFICIAL = Path(os.environ.get('OFFICIAL_DIR', '/tmp/official'))  # the official sources, unchanged
sys.path.insert(0, str(REPO))
from facemodels.world import default_flame_dir
from fitting.dad3dheads_benchmark import write_ground_truth
from tests.fitting.dad_benchmark_case import make_case

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
gt, sub = make_case(default_flame_dir(), n=3, seed=0)
write_ground_truth(out / 'gt.json', gt)
(out / 'sub.json').write_text(json.dumps(sub))
print(default_flame_dir())
