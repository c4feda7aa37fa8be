"""The lifecycle model: versions stored, the current one served; the lifecycle API."""
