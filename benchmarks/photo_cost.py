"""Cost of decomposing at a working size, ON PAPER (no GPU measured): prints the tables of
benchmarks/PHOTO_RESULTS.md. The model and its assumptions: evaluation/photo_cost.py.

    python -m benchmarks.photo_cost
"""
from evaluation.photo_cost import main

if __name__ == "__main__":
    main()
