"""Durable timers: waits, inactivity clocks and time-based stage changes."""
