"""Layout adapters: one FLUX block's own submodules under the vocabulary of `qba.py`."""
