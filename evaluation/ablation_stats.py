"""Seed statistics of the tiny ablation: pure functions on plain numbers (no torch, no files).

Input: `runs[variant][seed]` = one model's evaluation, {part: {metric: value}} with parts
"generation" (text -> maps coherence), "decomposition" (errors against exact ground truth)
and "decomposition_coherence". Seeds are stage-2 training seeds on one frozen base, so the
spread over seeds is the training noise a difference between variants has to beat.

Rule for "exceeds seed noise": Welch's t statistic
    |mean_x - mean_y| / sqrt(sd_x^2 / n_x + sd_y^2 / n_y) > 2,
sd the sample standard deviation over seeds. It is a screening rule, not a significance
test: with 3 seeds a t of 2 is far from a 5 % level, and it says nothing about other bases.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

PARTS = ("generation", "decomposition", "decomposition_coherence")
THRESHOLD = 2.0
RULE = ("A difference exceeds seed noise when Welch's t = |mean_x − mean_y| / sqrt(sd_x²/n_x + sd_y²/n_y) "
        f"> {THRESHOLD:g}, sd the sample standard deviation over stage-2 seeds; not tested when either "
        "variant has fewer than 2 seeds. A screening rule, not a significance test.")

# (part, metric, column label, higher is better): the columns of the results table.
COLUMNS = (("generation", "structural_alignment", "align. ↑", True),
           ("generation", "recomposition_rmse", "recomp. RMSE ↓", False),
           ("generation", "normal_depth_degrees", "normal-depth ° ↓", False),
           ("decomposition", "albedo_si_rmse", "albedo si-RMSE ↓", False),
           ("decomposition", "irradiance_si_rmse", "irradiance si-RMSE ↓", False),
           ("decomposition", "depth_absrel", "depth AbsRel ↓", False),
           ("decomposition", "normal_degrees", "normal ° ↓", False))
LABELS = {"a": "(a) QBA + Tensor LoRA", "b": "(b) Tensor LoRA, no QBA", "c": "(c) per-map LoRA + QBA",
          "d": "(d) independent per-map LoRAs",
          "e": "(e) QBA + Tensor LoRA, text-only training", "f": "(f) Tensor LoRA, no QBA, text-only training"}
# The pairs that test a claim: (x, y, what the difference between them isolates).
COMPARISONS = (("a", "b", "QBA, with held-map training"),
               ("e", "f", "QBA, zero-shot decomposition (text-only training)"),
               ("a", "c", "cross-map Tensor LoRA, with QBA"),
               ("b", "d", "cross-map Tensor LoRA and shared noise, no QBA"),
               ("a", "d", "the method against independent per-map LoRAs"),
               ("a", "e", "held-map training (decomposition seen in training)"))
NOT_TESTED, EXCEEDS, WITHIN = "not tested (n < 2)", "exceeds seed noise", "within seed noise"


def summarize(values: Sequence[float]) -> dict:
    """mean, sample standard deviation (None for one value), n and the values themselves."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("summarize needs at least one value")
    n = len(values)
    # Equal values give exactly sd 0 (fsum / n may round a hair off the common value).
    mean = values[0] if min(values) == max(values) else math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "n": n, "values": values}


def aggregate(runs: Mapping[str, Mapping[object, Mapping]]) -> dict:
    """{variant: {part: {metric: summarize(values over seeds, in seed order)}}}."""
    summary = {}
    for name, seeds in runs.items():
        ordered = [seeds[s] for s in sorted(seeds, key=int)]
        summary[name] = {part: {metric: summarize([run[part][metric] for run in ordered])
                                for metric in ordered[0][part]}
                         for part in PARTS if all(part in run for run in ordered)}
    return summary


def welch_t(x: Mapping, y: Mapping) -> Optional[float]:
    """|mean_x - mean_y| / sqrt(sd_x^2/n_x + sd_y^2/n_y), None when either n < 2. Zero spread
    on both sides: infinite for any difference, 0 for none."""
    if x["n"] < 2 or y["n"] < 2:
        return None
    difference = abs(x["mean"] - y["mean"])
    error = math.sqrt(x["sd"] ** 2 / x["n"] + y["sd"] ** 2 / y["n"])
    if error == 0:
        return math.inf if difference > 0 else 0.0
    return difference / error


def verdict(t: Optional[float], threshold: float = THRESHOLD) -> str:
    if t is None:
        return NOT_TESTED
    return EXCEEDS if t > threshold else WITHIN


def compare(summary: Mapping, pairs: Sequence[tuple[str, str, str]] = COMPARISONS,
            threshold: float = THRESHOLD) -> list[dict]:
    """For each pair present in `summary` and each table column: mean_x - mean_y, Welch's t,
    the verdict and, when it exceeds seed noise, which variant is better."""
    found = []
    for x, y, claim in pairs:
        if x not in summary or y not in summary:
            continue
        metrics = {}
        for part, metric, _, higher_better in COLUMNS:
            if metric not in summary[x].get(part, {}) or metric not in summary[y].get(part, {}):
                continue
            sx, sy = summary[x][part][metric], summary[y][part][metric]
            t = welch_t(sx, sy)
            entry = {"difference": sx["mean"] - sy["mean"], "t": t, "verdict": verdict(t, threshold)}
            if entry["verdict"] == EXCEEDS:
                entry["better"] = x if (sx["mean"] > sy["mean"]) == higher_better else y
            metrics[metric] = entry
        found.append({"x": x, "y": y, "claim": claim, "metrics": metrics})
    return found


def beats_trivial(runs: Mapping[str, Mapping[object, Mapping]], trivial: Mapping[str, float]) -> dict[str, list[str]]:
    """{decomposition metric: variants whose error is below the trivial decomposition's on
    every seed} (all decomposition metrics are errors: lower is better)."""
    return {metric: [name for name, seeds in runs.items()
                     if seeds and all(run["decomposition"][metric] < bound for run in seeds.values())]
            for metric, bound in trivial.items()}


def _number(value: float) -> str:
    return f"{value:.4g}".replace("-", "−")


def cell(summary: Optional[Mapping]) -> str:
    """'mean ± sd' (sd over seeds); the mean alone for one seed."""
    if summary is None:
        return ""
    if summary["sd"] is None:
        return _number(summary["mean"])
    return f"{_number(summary['mean'])} ± {summary['sd']:.2g}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "") + _number(value)


def comparison_cell(entry: Optional[Mapping]) -> str:
    if entry is None:
        return ""
    if entry["verdict"] == NOT_TESTED:
        return f"{_signed(entry['difference'])} (not tested, n < 2)"
    t = "∞" if math.isinf(entry["t"]) else f"{entry['t']:.1f}"
    if entry["verdict"] == EXCEEDS:
        return f"{_signed(entry['difference'])} (t = {t}, exceeds; ({entry['better']}) better)"
    return f"{_signed(entry['difference'])} (t = {t}, within)"


def _head(first: str, labels: Sequence[str]) -> str:
    return f"| {first} | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(labels) + "\n"


def markdown(summary: Mapping, references: Mapping[str, Mapping], comparisons: Sequence[Mapping],
             trivial_beaten: Mapping[str, Sequence[str]], trivial_label: str = "the trivial decomposition") -> str:
    """The results table (mean ± sd over seeds, n seeds), reference rows, the comparisons and
    which variants beat the trivial decomposition on every seed."""
    lines = [_head("", ["seeds"] + [label for _, _, label, _ in COLUMNS]).rstrip("\n")]
    for name, parts in summary.items():
        n = max((s["n"] for metrics in parts.values() for s in metrics.values()), default=0)
        cells = [cell(parts.get(part, {}).get(metric)) for part, metric, _, _ in COLUMNS]
        lines.append(f"| {LABELS.get(name, name)} | {n} | " + " | ".join(cells) + " |")
    for label, entry in references.items():
        cells = [_number(entry[part][metric]) if metric in entry.get(part, {}) else ""
                 for part, metric, _, _ in COLUMNS]
        lines.append(f"| {label} | | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n\nCells: mean ± sample standard deviation over stage-2 seeds (one frozen base).\n"
    if comparisons:
        text += "\n**Comparisons** (difference of means, x − y). " + RULE + "\n\n"
        text += _head("x vs y: what it tests", [label for _, _, label, _ in COLUMNS])
        for pair in comparisons:
            cells = [comparison_cell(pair["metrics"].get(metric)) for _, metric, _, _ in COLUMNS]
            text += f"| ({pair['x']}) vs ({pair['y']}): {pair['claim']} | " + " | ".join(cells) + " |\n"
    if trivial_beaten:
        text += f"\n**Below {trivial_label} on every seed:**\n"
        for _, metric, label, _ in COLUMNS:
            if metric in trivial_beaten:
                names = ", ".join(f"({n})" for n in trivial_beaten[metric]) or "none"
                text += f"- {label}: {names}\n"
    return text
