"""engine=spark: the driver (engine.py) and the code each DDP rank runs (rank.py)."""
