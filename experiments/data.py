"""Write and check datasets (the CLI of `make data` / `make check-data`), driven by the
dataset registry (datamodules/registry.py)::

    python -m experiments.data write --dataset NAME --out DIR [--n N] [--seed S]
    python -m experiments.data check --dataset NAME --dir DIR
    python -m experiments.data prepare --dataset NAME [--arg KEY=VALUE ...]
    python -m experiments.data names [--can write|check] [--sep SEP]

``write`` writes a procedural dataset in its real layout; ``check`` prints one line per problem
(missing file, corrupt image / mat / json / ply, wrong shape, NaN) starting with the path, then a
summary line, and exits 1 when problems were found; ``prepare`` writes (once, into the cache
that training reads) the procedural set the dataset's DataModule reads with its default
arguments (``--arg n_train=8``: a DataModule argument, the value read as YAML), and prints its folder; ``names`` prints the registered names.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from datamodules.registry import check_dataset, dataset_names, get_dataset, write_dataset

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    writable = dataset_names("write")
    ap = argparse.ArgumentParser(prog="python -m experiments.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write a procedural dataset in its real layout",
                       epilog="n per dataset: " + "; ".join(f"{n}: {get_dataset(n).summary}" for n in writable))
    w.add_argument("--dataset", required=True, choices=writable)
    w.add_argument("--out", required=True)
    w.add_argument("--n", type=int, default=100)
    w.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check", help="report every problem in a dataset folder")
    c.add_argument("--dataset", required=True, choices=dataset_names("check"))
    c.add_argument("--dir", required=True)
    p = sub.add_parser("prepare", help="write the DataModule's default procedural set into its cache, as training would")
    p.add_argument("--dataset", required=True, choices=dataset_names())
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a DataModule argument (repeatable; the value is read as YAML)")
    n = sub.add_parser("names", help="print the registered dataset names")
    n.add_argument("--can", choices=["write", "check"], default=None, help="only those with a writer / checker")
    n.add_argument("--sep", default="\n")
    return ap


def _datamodule_args(pairs: list[str]) -> dict:
    """["n_train=8", "seed=1"] -> {"n_train": 8, "seed": 1} (values read as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--arg {pair!r}: expected KEY=VALUE, e.g. n_train=8")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.command == "write":
        out = write_dataset(a.dataset, a.out, a.n, a.seed)
        print(f"wrote {a.dataset} to {out}")
        return 0
    if a.command == "check":
        n, problems = check_dataset(a.dataset, a.dir)
        for p in problems:
            print(p)
        print(f"{a.dataset} {a.dir}: checked {n} files, {len(problems)} problem(s)")
        return 1 if problems else 0
    if a.command == "prepare":
        dm = get_dataset(a.dataset).datamodule(**_datamodule_args(a.arg))
        dm.prepare_data()
        dm.setup()
        print(f"prepared {a.dataset} at {dm.root}")
        return 0
    print(a.sep.join(dataset_names(a.can)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
