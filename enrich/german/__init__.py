"""newsflow's own German NER pipeline ``de_newsflow_ner``: corpora, features, training, vote, rules."""

# The meta train.py writes into the shipped pipeline, and what enrich.entities expects when loading it.
MODEL_NAME = "newsflow_ner"
MODEL_VERSION = "2.0.0"
