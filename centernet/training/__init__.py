"""Training with PyTorch Lightning: the LightningModule, the LightningCLI, callbacks, EMA, checkpoint IO and the
optimiser."""
