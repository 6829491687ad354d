"""Tiers: growth value in the programme's window, upgrades at once, downgrades after grace, every change explained."""
