"""Lines, tables and target checks of the end-to-end benchmark's figures."""

from __future__ import annotations

import platform

import torch

MIB = 2 ** 20


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def _s(seconds: float) -> str:
    """Seconds with four significant digits (epochs last from milliseconds to minutes)."""
    return f"{seconds:.4g}"


def _eval_seconds(parts: dict) -> float:
    return sum(seconds for part, seconds in parts.items() if part != "train")


def epoch_line(name: str, entry: dict) -> str:
    ours, common, floor = (entry["variants"][v] for v in ("ours", "common", "floor"))
    overhead = entry["overhead_seconds"]
    return (f"{name:<17} ours {ours['total']:7.3f} s (train {ours['parts']['train']:.3f} + eval "
            f"{_eval_seconds(ours['parts']):.3f})  common {common['total']:7.3f} s  floor "
            f"{floor['total']:.3f} s (train {floor['parts']['train']:.3f})  | ours/floor: train "
            f"{entry['ours_over_floor_train']:.3f}, epoch {entry['ours_over_floor_epoch']:.3f}  "
            f"common/ours (epoch) {entry['common_over_ours_epoch']:.2f}x  added to the floor: ours "
            f"{overhead['ours']:+.3f} s, common {overhead['common']:+.3f} s")


def option_line(name: str, label: str, line: dict) -> str:
    return (f"{'':<17} {label:<42} epoch x{line['option_over_default_epoch']:.3f}  "
            f"train x{line['option_over_default_train']:.3f}  "
            f"(first epoch {line['first_epoch_seconds']:.1f} s)")


def check_targets(figures: dict, image_problems, floor_ratio: float, speedup: float) -> dict:
    """Which targets of the issue the figures meet."""
    problems = figures["problems"]
    met = {f"ours/floor (train) <= {floor_ratio}": all(
        entry["ours_over_floor_train"] <= floor_ratio for entry in problems.values())}
    images = [name for name in image_problems if name in problems]
    if images:
        met[f"epoch >= {speedup}x faster than the common way (image problems)"] = all(
            problems[name]["common_over_ours_epoch"] >= speedup for name in images)
    return met


def markdown(figures: dict) -> str:
    """The figures as Markdown: the epoch table, the speed-option table, the targets."""
    load = figures["load_average_before"], figures["load_average_after"]
    lines = [
        f"Device {figures['device']}, {figures['threads']} torch threads on {figures['cores']} cores, "
        f"torch {figures['torch']}; medians of {figures['repeats']} alternated repeats; "
        f"load average {load[0][0]:.1f} before, {load[1][0]:.1f} after; "
        + ("--quick: shortened epochs (the training steps in the table), evaluations cut in proportion."
           if figures["quick"] else "full epochs."),
        "",
        "| problem | batches train / train_eval / valid / test | eval batch | ours: epoch (train + eval) s "
        "| common way s | floor (train + eval) s | ours / floor (train) | ours / floor (epoch) "
        "| common / ours (epoch) | common / floor (epoch): a zero-cost harness | common / ours (eval) "
        "| s added to the floor: ours / common | peak RSS ours / common / floor MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in figures["problems"].items():
        ours, common, floor = (entry["variants"][v] for v in ("ours", "common", "floor"))
        batches = " / ".join(str(entry["batches"].get(s, "-")) for s in ("train", "train_eval", "valid", "test"))
        memory = " / ".join(f"{entry['variants'][v]['peak_bytes'] / MIB:.0f}" for v in ("ours", "common", "floor"))
        lines.append(
            f"| {name} | {batches} | {entry['eval_batch_size']} (train {entry['batch_size']}) | "
            f"{_s(ours['total'])} ({_s(ours['parts']['train'])} + {_s(_eval_seconds(ours['parts']))}) | "
            f"{_s(common['total'])} | {_s(floor['total'])} ({_s(floor['parts']['train'])} + "
            f"{_s(_eval_seconds(floor['parts']))}) | {entry['ours_over_floor_train']:.3f} | "
            f"{entry['ours_over_floor_epoch']:.3f} | {entry['common_over_ours_epoch']:.2f}× | "
            f"{entry['common_over_floor_epoch']:.2f}× | {entry['common_over_ours_eval']:.2f}× | "
            f"{entry['overhead_seconds']['ours']:+.4g} / {entry['overhead_seconds']['common']:+.4g} | "
            f"{memory} |")
    option_rows = [(name, label, line) for name, entry in figures["problems"].items()
                   for label, line in entry.get("options", {}).items()]
    if option_rows:
        lines += ["", "Speed options, each against the defaults on the same epoch (time with / without; "
                  "below 1 = faster):", "",
                  "| problem | option | epoch | training pass | first epoch s (incl. compiling) |",
                  "|---|---|---|---|---|"]
        for name, label, line in option_rows:
            lines.append(f"| {name} | {label} | {line['option_over_default_epoch']:.3f} | "
                         f"{line['option_over_default_train']:.3f} | {line['first_epoch_seconds']:.1f} |")
    lines += ["", "Targets: " + "; ".join(f"{target}: {'met' if ok else 'NOT met'}"
                                           for target, ok in figures["targets"].items())]
    if not all(figures["targets"].values()):
        lines += ["", "(A harness that cost nothing would make an epoch `common / floor (epoch)` times "
                  "faster than the common way: a speed-up target above that column cannot be met "
                  "without changing the model's arithmetic.)"]
    return "\n".join(lines) + "\n"
