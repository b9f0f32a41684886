"""Synthetic inputs for the demo and the tests: the tiny model and the word datasets (written
to disk). Imports spec/ and the standard library (torch, from the train extra, when called)."""
