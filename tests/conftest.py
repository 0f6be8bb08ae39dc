import torch

# Tests compare against float64 references; keep CPU thread count fixed so timings of
# the 2-core CI machine are not oversubscribed by nested parallelism.
torch.set_num_threads(2)
