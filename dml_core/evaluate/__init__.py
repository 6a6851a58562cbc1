"""Evaluation: nDCG@K, mean label distance@K, Spearman ρ and gap closed, over all queries or one at a
time, and per-query orderings of the whole gallery."""
