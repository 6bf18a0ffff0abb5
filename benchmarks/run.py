"""End-to-end speed of deepobs: one full epoch against the common way and the floor.

    python benchmarks/run.py [--quick] [--problems mnist_mlp ...] [--device cpu|cuda]

On a GPU the default problems include one epoch of ``cifar100_resnet18`` (fake data
of the real size); on a CPU it runs only when named in ``--problems``.

For each problem, one epoch (training pass + train_eval/valid/test evaluations) is run
three ways, alternated and repeated (medians): ours (StandardRunner), the common way
(per-sample datasets + DataLoader, as the reference PyTorch port) and the floor
(forward+backward+step on preloaded tensors). Then each speed option (automatic
evaluation batch, channels_last, bf16 autocast, torch.compile) is timed against the
default. ``--quick`` shortens every epoch to a fixed number of training steps with
the evaluations cut in proportion. Writes a Markdown table and a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import epochs  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402
from common_way import CommonLoaders  # noqa: E402
from measure import alternate, paired_overhead, paired_ratio  # noqa: E402

from deepobs.tuner.executors import available_cores  # noqa: E402

IMAGE_PROBLEMS = ("mnist_mlp", "fmnist_2c2d", "cifar10_3c3d")
CONV_PROBLEMS = ("fmnist_2c2d", "cifar10_3c3d", "cifar100_resnet18")
#: Targets of the issue (CPU): training pass within 15 % of the floor, epoch 3× the common way.
TARGET_FLOOR_RATIO = 1.15
TARGET_SPEEDUP = 3.0
EVAL_PHASES = ("train_eval", "valid", "test")


def idle_cores() -> int:
    """Cores not busy with other work: more intra-op threads than that only wait for
    each other (on a loaded 2-core machine a second thread makes small ops ~10× slower)."""
    cores = available_cores()
    return max(1, min(cores, cores - int(os.getloadavg()[0])))


def compare_epochs(workload, repeats: int) -> dict:
    """Ours, the common way and the floor on one workload."""
    problem = workload.problem
    optimizer = epochs.make_optimizer(problem)
    loaders = CommonLoaders(problem, workload.batches)
    floor_batches = epochs.preload(problem, workload.batches["train"])
    floor_eval = epochs.preload_eval(problem)
    results = alternate({
        "ours": lambda: epochs.ours_epoch(problem, optimizer),
        "common": lambda: epochs.common_epoch(problem, optimizer, loaders),
        "floor": lambda: epochs.floor_epoch(problem, optimizer, floor_batches, floor_eval),
    }, repeats, problem.device)
    eval_parts = [phase for phase in EVAL_PHASES if phase in results["ours"]["parts"]]
    return {
        "variants": results,
        "ours_over_floor_train": paired_ratio(results, "ours", "floor", ["train"]),
        "common_over_ours_epoch": paired_ratio(results, "common", "ours"),
        "common_over_ours_train": paired_ratio(results, "common", "ours", ["train"]),
        "common_over_ours_eval": paired_ratio(results, "common", "ours", eval_parts),
        "ours_over_floor_epoch": paired_ratio(results, "ours", "floor"),
        "common_over_floor_epoch": paired_ratio(results, "common", "floor"),
        "overhead_seconds": {name: paired_overhead(results, name, "floor") for name in ("ours", "common")},
        "eval_share_ours": sum(results["ours"]["parts"][p] for p in eval_parts) / results["ours"]["total"],
    }


def option_variants(problem, with_compile: bool) -> dict:
    """The speed options worth timing on ``problem``: {label: (build kwargs, options)}.

    The first line is the other evaluation batch: the automatic large one where the
    default is the training batch size (conv nets on a CPU), else the training batch size.
    """
    name, default = problem.name, problem.data.eval_batch_size
    other = problem.auto_eval_batch_size("cuda") if default == problem.batch_size else problem.batch_size
    options = {}
    if other != default:
        options[f"eval batch {other} (default {default})"] = ({"eval_batch_size": other}, {})
    if name in CONV_PROBLEMS:
        options["channels_last"] = ({}, {"channels_last": True})
    options["amp bf16"] = ({}, {"amp": "bf16"})
    if with_compile:
        options["compile"] = ({}, {"compile_mode": "default"})
    return options


def compare_options(workload, repeats: int, with_compile: bool) -> dict:
    """Each speed option of ``workload``'s problem against the defaults (full epochs)."""
    base = workload.problem
    base_optimizer = epochs.make_optimizer(base)
    lines = {}
    for label, (build_kwargs, options) in option_variants(base, with_compile).items():
        other = workloads.reshape_like(base, workload.batches, **build_kwargs)
        started = time.perf_counter()
        other.set_performance_options(**options)
        optimizer = epochs.make_optimizer(other)
        first = epochs.ours_epoch(other, optimizer)  # compiles, if it compiles
        first_seconds = time.perf_counter() - started
        results = alternate({
            "default": lambda: epochs.ours_epoch(base, base_optimizer),
            "option": lambda: epochs.ours_epoch(other, optimizer),
        }, repeats, base.device)
        lines[label] = {
            "options": options or build_kwargs,
            "option_over_default_epoch": paired_ratio(results, "option", "default"),
            "option_over_default_train": paired_ratio(results, "option", "default", ["train"]),
            "first_epoch_seconds": first_seconds,
            "first_epoch_parts": first,
            "variants": results,
        }
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="shortened epochs (--quick_steps training steps, evaluations in proportion)")
    parser.add_argument("--quick_steps", type=int, default=None,
                        help="training steps of a --quick epoch (default: per problem, "
                             "workloads.QUICK_STEPS)")
    parser.add_argument("--problems", nargs="+", default=None,
                        help="default: every workload on a GPU; on a CPU all but "
                             f"{', '.join(workloads.GPU_PROBLEMS)} (hours per epoch there)")
    parser.add_argument("--repeats", type=int,
                        help="timed repeats per variant (default 5; speed-option lines with --quick: 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: the idle cores, i.e. the cores this process "
                             "may use minus the whole part of the load average, at least 1)")
    parser.add_argument("--options", choices=["none", "some", "all"], default=None,
                        help="speed-option lines: none, some (no compile), all "
                             "(default: some with --quick, all otherwise)")
    parser.add_argument("--compile_problems", nargs="+", default=["mnist_mlp"],
                        help="problems whose torch.compile line is measured with --options some "
                             "(compiling is slow on a CPU)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="folder of the JSON and Markdown files")
    parser.add_argument("--tag", default=None, help="file name stem (default: quick or full, and device)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or idle_cores())
    repeats = args.repeats or 5
    options_mode = args.options or ("some" if args.quick else "all")
    device = torch.device(args.device)
    if args.problems is None:
        args.problems = workloads.default_problems(args.device)
    started = time.perf_counter()
    figures = {
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if argv is None else " ".join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": report.device_name(device), "threads": torch.get_num_threads(),
        "cores": available_cores(), "torch": torch.__version__, "python": platform.python_version(),
        "quick": args.quick,
        "quick_steps": (args.quick_steps or workloads.QUICK_STEPS) if args.quick else None,
        "repeats": repeats, "load_average_before": os.getloadavg(), "problems": {},
    }
    print(f"{figures['device']}, torch {torch.__version__}, {figures['threads']} threads, "
          f"load average {figures['load_average_before'][0]:.1f}; median of {repeats}"
          + ("; quick: shortened epochs" if args.quick else ""), flush=True)
    for name in args.problems:
        if name not in workloads.PROBLEMS:
            parser.error(f"unknown problem {name!r}; allowed: {', '.join(workloads.PROBLEMS)}")
        quick_steps = (args.quick_steps or workloads.QUICK_STEPS[name]) if args.quick else None
        workload = workloads.build_workload(name, str(device), quick_steps)
        entry = {"workload": workload.describe(), "batches": workload.batches,
                 "full_batches": workload.full_batches, "real_data": workload.real_data,
                 "batch_size": workload.problem.batch_size,
                 "eval_batch_size": workload.problem.data.eval_batch_size}
        entry.update(compare_epochs(workload, repeats))
        print(report.epoch_line(name, entry), flush=True)
        if options_mode != "none":
            with_compile = options_mode == "all" or name in args.compile_problems
            entry["options"] = compare_options(workload, 2 if args.quick else repeats, with_compile)
            for label, line in entry["options"].items():
                print(report.option_line(name, label, line), flush=True)
        figures["problems"][name] = entry
    figures["load_average_after"] = os.getloadavg()
    figures["seconds"] = time.perf_counter() - started
    figures["targets"] = report.check_targets(figures, IMAGE_PROBLEMS, TARGET_FLOOR_RATIO, TARGET_SPEEDUP)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.tag or f"{'quick' if args.quick else 'full'}-{device.type}"
    markdown = report.markdown(figures)
    (out / f"{stem}.md").write_text(markdown)
    (out / f"{stem}.json").write_text(json.dumps(figures, indent=1, default=float) + "\n")
    print()
    print(markdown)
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.json')} in {figures['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
