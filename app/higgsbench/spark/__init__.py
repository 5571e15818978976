"""The local Spark standalone cluster (`higgsbench cluster`): its saved state, the one
client of a master's web UI, its security settings and secret, and up/status/down."""
