"""The partitions of clm.events as the engine sees them: how far each has been consumed."""
