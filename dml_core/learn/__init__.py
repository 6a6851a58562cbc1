"""Learning: declarative method configs, losses, mining, the compact CNN, the training loop with its
checkpoints, and distributed training."""
