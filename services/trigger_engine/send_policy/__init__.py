"""The send policy (consent modes, frequency caps, quiet hours): versions stored, the current
one served and applied to every send; ``GET/PUT /v1/send-policy``."""
