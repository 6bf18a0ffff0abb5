"""The ``deepobs-plot`` command: a results tree (and baselines) -> figures, tables and
an offline report.html.

Example::

    deepobs-plot results/ --baselines deepobs-1.1 --out report/
"""

from __future__ import annotations

import argparse
import sys
import warnings

from deepobs.analyzer.aggregate import MODES
from deepobs.analyzer.loading import METRICS
from deepobs.analyzer.plots import WHICH
from deepobs.errors import ConfigurationError
from deepobs.safe_names import printable, quoted


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``deepobs-plot`` argument parser."""
    parser = _OneLineParser(
        prog="deepobs-plot", allow_abbrev=False,
        description="Turn a results tree into figures, tables and a self-contained report.html.",
        epilog="example: deepobs-plot results/ --baselines deepobs-1.1 deepobs-pytorch --out report/")
    parser.add_argument("results", help="results folder (<problem>/<optimizer>/<setting>/*.json)")
    parser.add_argument("--baselines", metavar="NAME|PATH", nargs="+",
                        help="one or more baseline sets: shipped ones by name (deepobs-1.1, "
                             "deepobs-pytorch) or paths to any results trees")
    parser.add_argument("--out", default="deepobs_report", help="output folder (default ./deepobs_report)")
    parser.add_argument("--mode", choices=MODES, default="final",
                        help="setting selection: final, best or most (default final)")
    parser.add_argument("--metric", choices=[m for m in METRICS if not m.startswith("test_")],
                        default="valid_accuracies",
                        help="selection metric (default valid_accuracies; falls back to valid_losses, "
                             "then the train_eval metric, never the test set)")
    parser.add_argument("--which", choices=WHICH, default="mean_and_std", help="curve and band")
    parser.add_argument("--include-diverged", action="store_true",
                        help="count diverged runs in means (default: shown apart)")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], help="figure formats (default png pdf)")
    parser.add_argument("--check", action="store_true",
                        help="only survey the results tree (empty settings, corrupt files) and exit")
    return parser


def main(argv=None) -> int:
    """Entry point of ``deepobs-plot``."""
    args = build_parser().parse_args(argv)
    try:
        if args.check:
            from deepobs.analyzer.loading import check_output

            check = check_output(args.results)
            print("\n".join(check.lines()) or "no results")
            return 0 if check.ok else 1
        from deepobs.analyzer.report import build_report

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = build_report(args.results, args.out, baselines=args.baselines, mode=args.mode,
                                  metric=args.metric, which=args.which,
                                  include_diverged=args.include_diverged, formats=args.formats)
    except ConfigurationError as error:
        print(f"deepobs-plot: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder made read-only or full while writing
        where = f" {quoted(error.filename)}" if getattr(error, "filename", None) else ""
        print(f"deepobs-plot: error: could not write{where}: {error.strerror or _one_line(error)}; "
              f"the report in {quoted(args.out)} is incomplete", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deepobs-plot: interrupted", file=sys.stderr)
        return 130
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {len(report.figures)} figure files and {len(report.tables)} tables to {printable(args.out)}")
    print(f"open {printable(report.html_path)}")
    return 0


def _one_line(error) -> str:
    return " ".join(printable(str(error)).split())


if __name__ == "__main__":
    sys.exit(main())
