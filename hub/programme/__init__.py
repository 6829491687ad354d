"""The programme: what a purchase or an activity earns, and the tier ladder (`config.py` loads the file)."""
