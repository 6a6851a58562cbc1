"""Serving built artifacts: the catalog of a task (models, indexes, maps, loaded once), queries by stored
index, image file or text, the out-of-domain score and exports."""
