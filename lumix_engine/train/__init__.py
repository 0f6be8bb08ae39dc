"""Training LumiX adapters (and the tiny base the demo ships): see `python -m lumix_engine.train -h`.

- objective.py: the rectified-flow loss on 5-map batches (shared noise, one timestep per scene,
  held conditions);
- loop.py: the training loop (log, checkpoint, exact resume);
- tiny.py: data, latent mapping and its learned decoder, base and adapters of the tiny model;
- flux_dev.py: the same adapter training on a full-size FLUX.1-dev (diffusers folder + GPU).
"""
from .loop import LoopConfig, Trainer
from .objective import ConditionPolicy, flow_loss, logit_normal_timesteps, lumix_batch_loss, noisy

__all__ = ["LoopConfig", "Trainer", "ConditionPolicy", "flow_loss", "logit_normal_timesteps", "lumix_batch_loss",
           "noisy"]
