"""The adversarial table of docs/coherence.md: structural alignment of the true maps and of
every doctored set (evaluation.doctored) over render_scene seeds, scene by
scene. Run by hand: python -m benchmarks.coherence_adversarial [--size 160] [--scenes 12]
(a few minutes on two cores); prints a markdown table."""
from __future__ import annotations

import argparse

from evaluation.doctored import doctored_sets
from lumix_engine.intrinsics import coherence_report, render_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--scenes", type=int, default=12)
    args = parser.parse_args()
    seeds = list(range(args.scenes))
    maps = {seed: render_scene(seed, args.size, args.size).images() for seed in seeds}
    truth = {seed: coherence_report(**maps[seed]).structural_alignment for seed in seeds}
    print(f"| maps ({args.scenes} scenes, {args.size} px) | mean | min | worst margin below truth | "
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


if __name__ == "__main__":
    main()
