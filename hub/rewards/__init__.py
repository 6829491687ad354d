"""Rewards: a sponsor's catalogue, members' claims with coupon codes, the till's quote, and claim settlement."""
