"""The dispatcher: claims due deliveries, sends them fairly, records the outcomes."""
