"""python -m analysis EXP_DIR [--out DIR] [--format md,tex,csv]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from analysis.load import load_experiment
from analysis.report import FORMATS, write_report
from trainable.errors import UserError, cli_errors


@cli_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis",
                                description="Tables, importances and plots from an experiment directory.")
    p.add_argument("exp_dir", type=Path, help="the experiment folder launch.py printed")
    p.add_argument("--out", type=Path, help="report folder (default EXP_DIR/analysis)")
    p.add_argument("--format", default=",".join(FORMATS), help="table formats, comma separated: md, tex, csv")
    args = p.parse_args(argv)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--format {args.format!r}: valid formats are {', '.join(FORMATS)}")
    start = time.time()
    exp = load_experiment(args.exp_dir)
    out = args.out or exp.path / "analysis"
    report = write_report(exp, out, formats)
    print(f"analysed {len(exp.trials)} trials of {exp.path.name} in {time.time() - start:.1f} s")
    print(f"report:  {report}")
    print(f"tables:  {out / 'tables'}  ({', '.join(formats)})")
    print(f"plots:   {out / 'plots'}")
    print(f"data:    {out / 'trials.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
