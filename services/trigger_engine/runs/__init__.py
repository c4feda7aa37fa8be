"""Run records: what every rule run did (entered, sent, held out, exited, converted)."""
