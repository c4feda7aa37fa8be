"""The partition owner: the engine instance that owns a clm.events partition keeps its
customers' states in memory, folds their events and timers through the core, and
checkpoints the result with the partition's offsets (see ``runner.py``)."""
