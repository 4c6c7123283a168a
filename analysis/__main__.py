"""python -m analysis EXP_DIR [--out DIR] [--format md,tex,csv]"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from analysis.load import load_experiment
from analysis.report import FORMATS, PLOTS_DIR, TABLES_DIR, TRIALS_FILE, write_report
from trainable.cli import Parser
from trainable.errors import UserError, cli_errors
from trainable.layout import ANALYSIS_DIR
from trainable.objectstore import local, push, uri_of


@cli_errors
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m analysis",
                                description="Tables, importances and plots from an experiment directory.")
    p.add_argument("exp_dir", help="the experiment folder (or s3://... URI) launch.py printed")
    p.add_argument("--out", type=Path, help="report folder (default EXP_DIR/analysis)")
    p.add_argument("--format", default=",".join(FORMATS), help="table formats, comma separated: md, tex, csv")
    args = p.parse_args(argv)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--format {args.format!r}: valid formats are {', '.join(FORMATS)}")
    start = time.time()
    exp = load_experiment(local(args.exp_dir, checkpoints=False))
    out = args.out or exp.path / ANALYSIS_DIR
    report = write_report(exp, out, formats)
    print(f"analysed {len(exp.trials)} trials of {exp.path.name} in {time.time() - start:.1f} s")
    print(f"report:  {report}")
    print(f"tables:  {out / TABLES_DIR}  ({', '.join(formats)})")
    print(f"plots:   {out / PLOTS_DIR}")
    print(f"data:    {out / TRIALS_FILE}")
    if uri_of(out):  # the analysis of an object store's experiment goes back into it, beside its trials
        print(f"uploaded to {push(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
