"""Data: the tasks (generators, labels, label distances, real-format loaders), stored splits, the query ×
gallery label distances, imported data sets and contact sheets."""
