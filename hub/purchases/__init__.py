"""Purchases at partner pharmacies: the points and growth value they earn, refunds, and summaries."""
