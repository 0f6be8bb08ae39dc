"""The adversarial tables of docs/coherence.md over render_scene seeds, scene by scene.
Run by hand (a few minutes on two cores each; both print a markdown table):

    python -m benchmarks.coherence_adversarial [--size 160] [--scenes 12]
        structural alignment of the true maps and of every doctored set (failures the
        checks detect: evaluation.doctored.doctored_sets)
    python -m benchmarks.coherence_adversarial --blind-spots [--scenes 20]
        all three checks on wrong decompositions built to satisfy them
        (doctored.wrong_but_consistent): what no reference-free check can see
"""
from __future__ import annotations

import argparse

from evaluation.doctored import doctored_sets, wrong_but_consistent
from lumix_engine.intrinsics import coherence_report, render_scene


def alignment_table(maps: dict, seeds: list[int], size: int) -> None:
    truth = {seed: coherence_report(**maps[seed]).structural_alignment for seed in seeds}
    print(f"| maps ({len(seeds)} scenes, {size} px) | mean | min | worst margin below truth | "
          f"scenes below truth |")
    print("|---|---|---|---|---|")
    mean = sum(truth.values()) / len(seeds)
    print(f"| ground truth | {mean:.3f} | {min(truth.values()):.3f} | - | - |")
    for name, doctor in doctored_sets().items():
        values = {seed: coherence_report(**doctor(maps[seed], maps[(seed + 1) % len(seeds)])).structural_alignment
                  for seed in seeds}
        margins = [truth[seed] - values[seed] for seed in seeds]
        below = sum(m > 0 for m in margins)
        print(f"| {name} | {sum(values.values()) / len(seeds):.3f} | {min(values.values()):.3f} | "
              f"{min(margins):+.3f} | {below}/{len(seeds)} |", flush=True)


def blind_spot_table(maps: dict, seeds: list[int], size: int) -> None:
    truth = {seed: coherence_report(**maps[seed]) for seed in seeds}
    print(f"| maps ({len(seeds)} scenes, {size} px) | structural alignment, mean | scenes at or above truth | "
          f"recomposition RMSE, mean | normal-depth error, mean (deg) |")
    print("|---|---|---|---|---|")
    rows = {"ground truth": lambda t, o: t, **wrong_but_consistent()}
    for name, doctor in rows.items():
        reports = {seed: coherence_report(**doctor(maps[seed], maps[(seed + 1) % len(seeds)])) for seed in seeds}
        above = sum(reports[s].structural_alignment >= truth[s].structural_alignment for s in seeds)
        count = len(seeds)
        print(f"| {name} | {sum(r.structural_alignment for r in reports.values()) / count:.3f} | "
              f"{'-' if name == 'ground truth' else f'{above}/{count}'} | "
              f"{sum(r.recomposition_rmse for r in reports.values()) / count:.4f} | "
              f"{sum(r.normal_depth_error_degrees for r in reports.values()) / count:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--blind-spots", action="store_true", help="the wrong-but-consistent table instead")
    args = parser.parse_args()
    seeds = list(range(args.scenes))
    maps = {seed: render_scene(seed, args.size, args.size).images() for seed in seeds}
    (blind_spot_table if args.blind_spots else alignment_table)(maps, seeds, args.size)


if __name__ == "__main__":
    main()
