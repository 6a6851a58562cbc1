"""Teaching toys for the Learn pages: small data, tiny models, training loops and metrics.

Everything is computed live on the CPU (hundreds of points, MLPs with a few thousand
weights, a few hundred steps, well under a second each); the pages in ``pages/learn_*.py``
only draw the results. Every function is deterministic for its seed.

- ``continuous``   page 1, beyond binary: bar-angle toy, binary triplet vs log-ratio, Spearman rho
- ``classes``      pages 2, 3, 8: class toy; contrastive vs triplet, mining strategies, ProxyNCA vs triplet
- ``mahalanobis``  page 4: learning A of d_A(x, y) from similar / dissimilar pairs (Xing et al. 2002)
- ``siamese``      page 5: one shared network verifying glyph pairs, also of unseen classes
- ``identity``     page 6: persons from the pose renderer; enrolment, verification (ROC, FAR/FRR), identification
- ``crossmodal``   page 7: image / caption alignment with the bidirectional triplet loss, zero-shot retrieval
- ``common``       seeded MLPs, distances, spread / recall / ROC helpers, single-thread context
"""
