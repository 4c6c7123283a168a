"""python -m analysis EXP_DIR [EXP_DIR ...] [--out DIR] [--format md,tex,csv]

One experiment: its report. Two or more: their comparison. A staged search's folder: its stages compared.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from analysis.compare import default_out, load_experiments, stage_dirs, write_comparison
from analysis.load import load_experiment
from analysis.report import FORMATS, PLOTS_DIR, TABLES_DIR, TRIALS_FILE, write_report
from trainable.cli import Parser
from trainable.errors import UserError, cli_errors
from trainable.layout import ANALYSIS_DIR, PICTURE_FILES
from trainable.objectstore import local, push, uri_of


@cli_errors
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m analysis",
               description="Tables, importances and plots from an experiment directory; "
                           "with several, or a staged search's folder, their comparison.")
    p.add_argument("exp_dir", nargs="+", metavar="EXP_DIR",
                   help="the experiment folder (or s3://... URI) launch.py printed; two or more: compare them; a "
                        "staged search's folder: compare its stages")
    p.add_argument("--out", type=Path, help="report folder (default EXP_DIR/analysis; comparing: comparison-<time> "
                                            "beside the first EXP_DIR; a staged search: RUN/analysis)")
    p.add_argument("--format", default=",".join(FORMATS), help="table formats, comma separated: md, tex, csv")
    args = p.parse_args(argv)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--format {args.format!r}: valid formats are {', '.join(FORMATS)}")
    start = time.time()
    paths = [local(d, checkpoints=False) for d in args.exp_dir]
    stages = stage_dirs(paths[0]) if len(paths) == 1 else None
    if len(paths) > 1 or stages is not None:
        return _compare(paths, stages, args.out, formats, start)
    exp = load_experiment(paths[0])
    out = args.out or exp.path / ANALYSIS_DIR
    report = write_report(exp, out, formats)
    print(f"analysed {len(exp.trials)} trials of {exp.path.name} in {time.time() - start:.1f} s")
    print(f"report:  {report}")
    print(f"page:    {report.with_suffix('.html')}  (one file, images included)")
    print(f"tables:  {out / TABLES_DIR}  ({', '.join(formats)})")
    drawn = [name for name in PICTURE_FILES.values() if (out / PLOTS_DIR / name).is_file()]
    print(f"plots:   {out / PLOTS_DIR}" + (f"  (predictions: {', '.join(drawn)})" if drawn else ""))
    print(f"data:    {out / TRIALS_FILE}")
    if uri_of(out):  # the analysis of an object store's experiment goes back into it, beside its trials
        print(f"uploaded to {push(out)}")
    return 0


def _compare(paths: list[Path], stages: list[Path] | None, out: Path | None, formats: tuple[str, ...],
             start: float) -> int:
    """Several experiments, or a staged search's stages: compare them."""
    exps = load_experiments(stages or paths)
    out = out or (paths[0] / ANALYSIS_DIR if stages else default_out(paths[0]))
    report = write_comparison(exps, out, formats, staged=stages is not None)
    what = f"{len(exps)} stages of {paths[0].name}" if stages else f"{len(exps)} experiments"
    print(f"compared {what} ({', '.join(e.path.name for e in exps)}) in {time.time() - start:.1f} s")
    print(f"report:  {report}")
    print(f"page:    {report.with_suffix('.html')}  (one file, images included)")
    print(f"tables:  {out / TABLES_DIR}  ({', '.join(formats)})")
    print(f"plots:   {out / PLOTS_DIR}")
    if uri_of(out):  # a comparison of an object store's experiments goes back into it, beside them
        print(f"uploaded to {push(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
