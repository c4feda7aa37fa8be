"""Customers: per-customer engine state, identity links, stage history; the customers API."""
