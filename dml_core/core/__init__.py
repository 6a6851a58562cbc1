"""The bottom stage: the artifact store (manifests, atomic writes, checksums, path confinement), worker
processes, safe image decoding, sentence embeddings, and the vocabulary (names, colours, order)."""
