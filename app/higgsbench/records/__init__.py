"""The records the kit writes and reads back: a run's result.json and RESULT line
(result.py), a sweep's bench.json (bench.py)."""
