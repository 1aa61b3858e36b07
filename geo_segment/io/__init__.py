"""Readers and writers: voter files, signals, precincts, atomic writes and the run manifest."""
