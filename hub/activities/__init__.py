"""Health activities recorded by insurers and gyms: points within per-day and per-week caps (the Vitality model)."""
