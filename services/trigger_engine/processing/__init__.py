"""Running the pure core over a batch: plan the customers, fold in memory, write once."""
