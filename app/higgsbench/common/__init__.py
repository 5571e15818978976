"""The bottom layer: what any command needs and nothing about HIGGS or training — errors,
files written whole (atomic, paths), signals, redaction of secrets, progress bars, the
checker of the JSON files the kit reads back (shapes), limits on options, plot style."""
