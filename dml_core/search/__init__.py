"""Search: one interface over FAISS (in-process) and Milvus (Lite file or server), the exact embedding
distances, derived gallery copies per backend, and UMAP projections."""
