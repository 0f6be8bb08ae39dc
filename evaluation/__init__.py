"""The one evaluation home: what measures LumiX, never what users run.

Float64 references of the block math (`reference`), adversarial map sets (`doctored`),
held-out scenes, scores and reference rows of the tiny model (`tiny_ablation`,
`tiny_targets`), the ablation's seed statistics (`ablation_stats`), the on-paper photo cost
model (`photo_cost`) and the benchmarks' timing rule (`timing`).

Imported by tests/, benchmarks/ (scripts run by hand) and tools/; it may import lumix_engine.
lumix_engine/ and nodes/ never import it (tests/test_architecture.py enforces both), so
nothing here ships inside the engine's import graph.
"""
